-- on_request / on_response with the libcurl transport (kl_send and kl_batch): every attempt of
-- a retried call is seen, with its URL, status, attempt number, waits and duration, and no
-- captured hook argument, log line or error holds the private key or the access token.
local N = require "net.support"
local klaviyo = require "klaviyo"
local cjson = require "cjson"

local emu = N.emu

local strings = N.strings

local function assert_no_secret(captured, secrets)
  for _, s in ipairs(strings(captured, {})) do
    for _, secret in ipairs(secrets) do
      assert.is_nil(s:find(secret, 1, true), "a captured string holds a secret: " .. s)
    end
  end
end

local function hooked(opts)
  local seen = {}
  opts.transport = "curl"
  opts.on_request = function(i) seen[#seen + 1] = { "request", i } end
  opts.on_response = function(i) seen[#seen + 1] = { "response", i } end
  return assert(klaviyo.new(opts)), seen
end

describe("hooks (libcurl transport)", function()
  after_each(function() emu.faults(nil) end)

  it("see every attempt of a retried call", function()
    local acct = emu.account()
    local c, seen = hooked { api_key = acct.private_key, base_url = emu.url,
                             retry = { base = 0.05, cap = 0.05 } }
    emu.faults { { operation = "get_lists", status = 503, count = 2 } }
    assert(c:call("get_lists", {}))
    assert.equal(6, #seen)
    for n = 1, 3 do
      local req, res = seen[2 * n - 1], seen[2 * n]
      assert.same({ "request", "response" }, { req[1], res[1] })
      assert.equal(n, req[2].attempt)
      assert.equal(n, res[2].attempt)
      for _, i in ipairs({ req[2], res[2] }) do
        assert.equal("get_lists", i.operation)
        assert.equal("GET", i.method)
        assert.equal(emu.url .. "/api/lists", i.url)
        assert.equal("[redacted]", i.headers.Authorization)
        assert.equal(emu.REVISION, i.headers.revision)
      end
      assert.equal(n < 3 and 503 or 200, res[2].status)
      assert.equal(n < 3 and "fault_injected" or nil, res[2].error)
      assert.is_true(res[2].duration >= 0 and res[2].duration < 5)
      assert.is_nil(req[2].status)
    end
    assert.equal(0, seen[1][2].waited)
    assert.is_true(seen[3][2].waited > 0)              -- the backoff before attempt 2
    assert.is_true(seen[5][2].waited > seen[3][2].waited)
    assert_no_secret(seen, { acct.private_key })
    c:close()
  end)

  it("see a transport failure with its code and no status", function()
    local c, seen = hooked { api_key = "pk_spec_hook_secret", retry = { attempts = 1 },
                             base_url = "http://127.0.0.1:" .. emu.free_port() }
    local ok, err = c:call("get_lists", {})
    assert.is_nil(ok)
    assert.equal(2, #seen)
    assert.equal(0, seen[2][2].status)
    assert.equal("connect_failed", seen[2][2].error)
    assert_no_secret({ seen, err, tostring(err) }, { "pk_spec_hook_secret" })
  end)

  it("see every attempt of every request of a batch", function()
    local acct = emu.account()
    local c, seen = hooked { api_key = acct.private_key, base_url = emu.url,
                             retry = { base = 0.05, cap = 0.05 } }
    emu.faults { { operation = "get_lists", status = 503, count = 1 } }
    local out = c:batch({ { "get_lists", {} }, { "get_metrics", {} } }, { concurrency = 2 })
    assert.is_table(out[1][1])
    assert.is_table(out[2][1])
    local n = { get_lists = 0, get_metrics = 0 }
    for _, s in ipairs(seen) do
      if s[1] == "response" then n[s[2].operation] = n[s[2].operation] + 1 end
    end
    assert.same({ get_lists = 2, get_metrics = 1 }, n)
    assert.is_nil(out.hook_error)
    assert_no_secret(seen, { acct.private_key })
  end)

  it("that raise in a batch do not stop it: the first error comes with the results", function()
    local acct = emu.account()
    local c = assert(klaviyo.new { api_key = acct.private_key, base_url = emu.url, transport = "curl",
      on_response = function(i) error("broke on " .. i.operation) end })
    local out = c:batch({ { "get_lists", {} }, { "get_lists", {} } })
    assert.is_table(out[1][1])
    assert.is_table(out[2][1])
    assert.matches("^on_response: .*broke on get_lists", out.hook_error)
  end)

  it("never see the access token, and a refused token is not in the error either", function()
    local acct = emu.account()
    local c, seen = hooked { access_token = acct.access_token, base_url = emu.url }
    assert(c:call("get_lists", {}))
    local c2, seen2 = hooked { access_token = "spec-wrong-token-0123", base_url = emu.url,
                               retry = { attempts = 1 } }
    local ok, err = c2:call("get_lists", {})
    assert.is_nil(ok)
    assert.equal(401, err.status)
    assert.equal(2, #seen)
    assert.equal("[redacted]", seen[1][2].headers.Authorization)
    assert_no_secret({ seen, seen2, err, tostring(err), cjson.encode(err) },
      { acct.access_token, "spec-wrong-token-0123" })
  end)

  it("that raise do not stop the call: the first error comes with the result", function()
    local acct = emu.account()
    local calls = 0
    local c = assert(klaviyo.new { api_key = acct.private_key, base_url = emu.url, transport = "curl",
      on_request = function() calls = calls + 1 error("hook broke") end,
      on_response = function() calls = calls + 1 error("second") end })
    local doc, res = c:call("get_lists", {})
    assert.is_table(doc)
    assert.equal(2, calls)
    assert.matches("^on_request: .*hook broke", res.hook_error)
    emu.faults { { operation = "get_lists", status = 400, count = 1 } }
    local ok, err = c:call("get_lists", {})
    assert.is_nil(ok)
    assert.equal(400, err.status)
    assert.matches("hook broke", err.hook_error)
    c:close()
    local quiet = assert(klaviyo.new { api_key = acct.private_key, base_url = emu.url, transport = "curl",
      on_response = function() end })
    local doc2, res2 = quiet:call("get_lists", {})
    assert.is_table(doc2)
    assert.is_nil(res2.hook_error)
  end)

  it("cannot use their own client: the call goes on, the error is reported", function()
    local acct = emu.account()
    local c
    c = assert(klaviyo.new { api_key = acct.private_key, base_url = emu.url, transport = "curl",
      on_request = function() c:call("get_metrics", {}) end })
    local doc, res = c:call("get_lists", {})
    assert.is_table(doc)
    assert.matches("a hook cannot use the client that called it", res.hook_error, 1, true)
    local ops = {}
    for _, r in ipairs(emu.requests(acct)) do ops[#ops + 1] = r.operation end
    assert.same({ "get_lists" }, ops)
    local c2
    c2 = assert(klaviyo.new { api_key = acct.private_key, base_url = emu.url, transport = "curl",
      on_response = function() c2:close() end })
    local doc2, res2 = c2:call("get_lists", {})
    assert.is_table(doc2)
    assert.matches("a hook cannot close the client that called it", res2.hook_error, 1, true)
    c2:close()
  end)

  it("must be functions", function()
    assert.has_error(function() klaviyo.new { api_key = "pk_x", on_request = "log" } end,
      "klaviyo.new: option on_request must be a function, got string")
  end)
end)
