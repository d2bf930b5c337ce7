-- The limiter store in Redis, chosen by klaviyo.new's options, against a redis-server this
-- spec starts (and the emulator).
local S = require "retry.support"
local emu = S.emu

describe("limiter store in Redis", function()
  local port, stop
  setup(function() port, stop = S.redis() end)
  teardown(function() if stop then stop() end end)

  it("is used with limiter = {store = \"redis\", url = ...}", function()
    local acct = emu.account()
    local c = S.client({ limiter = { store = "redis", url = "redis://127.0.0.1:" .. port,
                                     prefix = "spec-a:" } }, acct)
    assert(c:call("get_lists", {}))
    local keys = S.redis_cmd(port, "KEYS", "spec-a:*")
    assert.is_true(#keys >= 1)
    for _, k in ipairs(keys) do
      assert.truthy(k:find("/get_lists", 1, true))
      assert.falsy(k:find(acct.private_key, 1, true)) -- never the key itself
    end
    c:close()
  end)

  it("rejects a malformed URL and a store that needs nginx", function()
    local ok, err = S.klaviyo.new { base_url = emu.url, api_key = "pk_x",
      limiter = { store = "redis", url = "http://nope" } }
    assert.is_nil(ok)
    assert.matches("redis", tostring(err))
    assert.has_error(function()
      S.klaviyo.new { base_url = emu.url, api_key = "pk_x", transport = "curl",
        limiter = { store = "shdict", dict = "x" } }
    end, 'klaviyo.new: option limiter (store "shdict") needs transport "ngx"')
  end)
end)
