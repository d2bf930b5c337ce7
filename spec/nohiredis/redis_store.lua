-- A core built without hiredis (make HIREDIS=0; `make spec-nohiredis` builds one in
-- build/nohiredis and runs this file there): it links no hiredis, works with its in-process
-- limiter, and a client asking for the Redis store on the libcurl transport is refused with
-- a clear reason, nothing sent. Not named *_spec.lua: a default build has the Redis store.
local S = require "client.support"
local klaviyo = S.klaviyo

local NO_STORE = "this build has no Redis store: built without hiredis"

describe("a core built without hiredis", function()
  it("links no hiredis", function()
    local so = assert(package.searchpath("klaviyo.core", package.cpath))
    local p = assert(io.popen("ldd " .. so))
    local deps = p:read("*a")
    p:close()
    assert.matches("libcurl", deps)
    assert.is_nil(deps:find("hiredis", 1, true), deps)
  end)

  it("sends with its in-process limiter", function()
    local c = S.client(nil, { limiter = { store = "local" } })
    local doc, err = c:call("get_lists", {})
    assert.is_table(doc, tostring(err))
    assert.is_table(doc.data)
    c:close()
  end)

  for _, limiter in ipairs({
    { store = "redis" },
    { store = "redis", url = "redis://127.0.0.1:6379/2", prefix = "app:" },
  }) do
    it("refuses limiter store redis" .. (limiter.url and " with a url" or "") .. ", nothing sent", function()
      local acct = S.emu.account()
      local mark = S.mark()
      local c, err = klaviyo.new { base_url = S.emu.url, api_key = acct.private_key, limiter = limiter }
      assert.is_nil(c)
      assert.equal("refused", err.kind)
      assert.equal("invalid_option", err.code)
      assert.equal(NO_STORE, err.detail)
      assert.matches(NO_STORE, tostring(err), 1, true)
      assert.same({}, S.since(mark))
    end)
  end

  it("still names a bad url first", function()
    local acct = S.emu.account()
    local c, err = klaviyo.new { base_url = S.emu.url, api_key = acct.private_key,
                                 limiter = { store = "redis", url = "http://127.0.0.1" } }
    assert.is_nil(c)
    assert.equal("invalid_option", err.code)
    assert.matches("redis url must look like", err.detail)
  end)
end)
