-- What a hostile token endpoint answers (spec/oauth/token_server.lua, a loopback child that
-- answers what each test names): an answer the library cannot keep safely is refused with
-- nil, err, nothing raised; the store keeps a refresh token it can still use; no token sent
-- comes back in an error.
local oauth = require "klaviyo.oauth"
local klaviyo = require "klaviyo"
local socket = require "socket"
local cjson = require "cjson"

local SECRET = "cs_answers_secret_0123456789"

describe("klaviyo.oauth against a token endpoint's hostile answers", function()
  local url, stop, answer_file, log_file

  -- The next answers: status and the raw body.
  local function answer(status, body)
    local f = assert(io.open(answer_file, "wb"))
    f:write(status, "\n", body)
    f:close()
  end

  -- The request bodies the server received.
  local function received()
    local out = {}
    local f = io.open(log_file, "rb")
    if f then
      for l in f:lines() do out[#out + 1] = l end
      f:close()
    end
    return out
  end

  local function creds(extra)
    local o = { client_id = "cid_answers", client_secret = SECRET, base_url = url,
                refresh_token = "rt_old_0123456789" }
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end

  local function tmpname()
    local p = os.tmpname()
    os.remove(p)
    return p
  end

  setup(function()
    answer_file, log_file = tmpname(), tmpname()
    local port
    port, stop = require("oauth.loopback").start("token_server.lua", answer_file, log_file)
    url = "http://127.0.0.1:" .. port
  end)
  teardown(function()
    stop()
    for _, p in ipairs({ answer_file, log_file }) do os.remove(p) end
  end)
  before_each(function() os.remove(log_file) end)

  it("an expires_in that is not a finite number gives a finite expiry", function()
    for _, e in ipairs({ "1e999", "-1e999", "NaN", "\"soon\"", "[]", "-5" }) do
      answer(200, '{"access_token":"at_new","refresh_token":"rt_new","expires_in":' .. e .. "}")
      local t = assert(oauth.refresh(creds()))
      local now = socket.gettime()
      assert.is_number(t.expires_at, e)
      assert.is_true(t.expires_at == t.expires_at and t.expires_at >= now - 5
        and t.expires_at < now + 366 * 86400, e .. ": " .. tostring(t.expires_at))
    end
  end)

  it("a client with a file store survives an infinite expires_in and keeps the new tokens", function()
    local path = tmpname()
    local store = oauth.stores.file(path, { access_token = "at_old", refresh_token = "rt_old_0123456789",
                                            expires_at = 0 })
    local c = assert(klaviyo.new { base_url = url, limiter = false,
      oauth = { client_id = "cid_answers", client_secret = SECRET, tokens = store } })
    answer(200, '{"access_token":"at_new","refresh_token":"rt_new","expires_in":1e999}')
    local ok, r = pcall(c.call, c, "get_profiles", {})
    assert.is_true(ok, tostring(r))
    local t = store:get()
    assert.equal("rt_new", t.refresh_token)
    assert.equal("at_new", t.access_token)
    -- the lock was released: the next refresh is not kept waiting
    store:set { access_token = "at_new", refresh_token = "rt_new", expires_at = 0 }
    answer(200, '{"access_token":"at_3","refresh_token":"rt_3","expires_in":3600}')
    assert(c:call("get_profiles", {}))
    assert.equal("rt_3", store:get().refresh_token)
    c:close()
    os.remove(path); os.remove(path .. ".lock")
  end)

  it("refuses a token that could not go in a header or is absurdly long", function()
    local bad = { "at\r\nX-Evil: 1", "at\0nul", "at with space", "", string.rep("a", 100000) }
    for _, at in ipairs(bad) do
      answer(200, cjson.encode { access_token = at, refresh_token = "rt_new", expires_in = 3600 })
      local t, err = oauth.refresh(creds())
      assert.is_nil(t, ("%q"):format(at:sub(1, 20)))
      assert.equal("oauth", err.kind)
      assert.equal("oauth_refresh", err.operation)
    end
    for _, rt in ipairs({ "rt\r\nx", 5, cjson.encode({}), "" }) do
      answer(200, '{"access_token":"at_new","expires_in":3600,"refresh_token":' ..
        (type(rt) == "string" and rt:sub(1, 1) == "{" and rt or cjson.encode(rt)) .. "}")
      local t, err = oauth.refresh(creds())
      assert.is_nil(t, tostring(rt))
      assert.equal("oauth", err.kind)
    end
    -- an absent or null refresh token: the one sent is kept
    for _, body in ipairs({ '{"access_token":"at_new"}',
                            '{"access_token":"at_new","refresh_token":null}' }) do
      answer(200, body)
      local t = assert(oauth.refresh(creds()))
      assert.equal("rt_old_0123456789", t.refresh_token)
    end
  end)

  it("a client never sends a hostile token, and its store keeps the old refresh token", function()
    local store = oauth.stores.memory { access_token = "at_old", refresh_token = "rt_old_0123456789",
                                        expires_at = 0 }
    local c = assert(klaviyo.new { base_url = url, limiter = false,
      oauth = { client_id = "cid_answers", client_secret = SECRET, tokens = store } })
    answer(200, cjson.encode { access_token = "at\r\nX-Evil: 1", refresh_token = "rt_new" })
    local ok, err = c:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal("oauth", err.kind)
    assert.equal(1, #received(), "only the refresh went out")
    assert.equal("rt_old_0123456789", store:get().refresh_token)
    c:close()
  end)

  it("no error holds the refresh token, code, verifier or token it sent", function()
    local rt, code, verifier, tok = "rt_echoed_0123456789", "code/echoed+0123456789", string.rep("v", 50),
      "tok_echoed_0123456789"
    local calls = {
      { function() return oauth.refresh(creds { refresh_token = rt }) end, { rt } },
      { function()
          return oauth.exchange(creds { code = code, verifier = verifier, redirect_uri = "https://x/cb" })
        end, { code, "code%2Fechoed%2B0123456789", verifier } },
      { function() return oauth.revoke(creds { token = tok }) end, { tok }, { 400 } },
    }
    for i, call in ipairs(calls) do
      for _, status in ipairs(call[3] or { 400, 200 }) do   -- a 200 with an error member
        answer(status, cjson.encode { error = "invalid_request",
          error_description = "you sent " .. table.concat(call[2], " ") })
        local r, err = call[1]()
        assert.is_nil(r, "call " .. i)
        local text = tostring(err) .. tostring(err.detail)
        assert.truthy(text:find("[redacted]", 1, true), text)
        for _, s in ipairs(call[2]) do assert.is_nil(text:find(s, 1, true), text) end
      end
    end
  end)

  it("tokens the store did not keep fail the call, and are written once it keeps them", function()
    local mem = oauth.stores.memory { access_token = "at_old", refresh_token = "rt_old_0123456789",
                                      expires_at = 0 }
    local full = true   -- a store whose medium refuses writes, as Redis on a read-only replica
    local store = { get = function() return mem:get() end, lock = function() return mem:lock() end,
      unlock = function() return mem:unlock() end,
      set = function(_, t) if full then return nil, "no space" end return mem:set(t) end }
    local c = assert(klaviyo.new { base_url = url, limiter = false,
      oauth = { client_id = "cid_answers", client_secret = SECRET, tokens = store } })
    answer(200, '{"access_token":"at_new","refresh_token":"rt_new","expires_in":3600}')
    local ok, err = c:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal("oauth", err.kind)
    assert.truthy(tostring(err):find("no space", 1, true), tostring(err))
    assert.equal(1, #received(), "only the refresh went out")
    assert.equal("rt_old_0123456789", mem:get().refresh_token)
    full = false
    assert(c:call("get_profiles", {}))
    assert.equal("rt_new", mem:get().refresh_token, "the refreshed tokens were kept")
    assert.equal(2, #received(), "no second refresh: the kept tokens were used")
    c:close()
  end)

  it("refuses a malformed verifier or state before anything is sent", function()
    answer(200, '{"access_token":"at_new","refresh_token":"rt_new"}')
    for _, v in ipairs({ string.rep("v", 42), string.rep("v", 129), string.rep("v", 50) .. "+",
                         string.rep("v", 50) .. "\n", string.rep("\195\169", 30) }) do
      assert.has_error(function()
        oauth.exchange(creds { code = "code_0123456789", verifier = v, redirect_uri = "https://x/cb" })
      end, "klaviyo.oauth.exchange: verifier must be 43 to 128 characters of A-Z a-z 0-9 . _ ~ -")
    end
    assert.equal(0, #received(), "nothing was sent")
    for _, st in ipairs({ {}, 5, "" }) do
      assert.has_error(function()
        oauth.authorize_url { client_id = "cid", redirect_uri = "https://x/cb", scope = "a:read", state = st }
      end, "klaviyo.oauth.authorize_url: state must be a non-empty string")
    end
  end)

  it("refuses a margin or lock_timeout that is not a finite number of seconds", function()
    local store = oauth.stores.memory { access_token = "at", refresh_token = "rt", expires_at = 0 }
    local bads = { margin = { 0 / 0, -1, math.huge }, lock_timeout = { 0 / 0, 0, -1, math.huge } }
    for name, bad in pairs(bads) do
      for _, v in ipairs(bad) do
        local o = { client_id = "cid", client_secret = SECRET, tokens = store }
        o[name] = v
        assert.has_error(function() klaviyo.new { base_url = url, limiter = false, oauth = o } end,
          "klaviyo.new: oauth option " .. name .. " must be a " ..
          (name == "margin" and "non-negative" or "positive") .. " number of seconds")
      end
    end
  end)

  it("an expires_in of zero or less does not make every call refresh", function()
    for _, e in ipairs({ "0", "-5" }) do
      os.remove(log_file)
      local store = oauth.stores.memory { access_token = "at_old", refresh_token = "rt_old_0123456789",
                                          expires_at = 0 }
      local c = assert(klaviyo.new { base_url = url, limiter = false,
        oauth = { client_id = "cid_answers", client_secret = SECRET, tokens = store } })
      answer(200, '{"access_token":"at_new","refresh_token":"rt_new","expires_in":' .. e .. "}")
      for _ = 1, 3 do assert(c:call("get_profiles", {})) end
      assert.equal(4, #received(), e .. ": one refresh, then three calls")
      c:close()
    end
  end)
end)
