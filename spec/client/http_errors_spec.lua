-- Error tables for 400/401/403/404/409/429/5xx, as the emulator answers them (5xx and some
-- 429s injected with the emulator's faults), including a non-JSON (HTML) error body.
local S = require "client.support"
local klaviyo = S.klaviyo

local function check_line(err, ...)
  local line = tostring(err)
  assert.is_nil(line:find("\n"), "one line")
  for _, part in ipairs({ ... }) do
    assert.is_truthy(line:find(part, 1, true), "missing " .. part .. " in " .. line)
  end
  return line
end

describe("error tables", function()
  local client, acct
  -- retries off: each test reads the error table of one answer (spec/retry covers retries)
  before_each(function() client, acct = S.client(nil, { retry = { attempts = 1 } }) end)
  after_each(function() S.emu.faults(nil); client:close() end)

  it("400 invalid names the pointer", function()
    -- the emulator's answer is under test: the local body check (which refuses it) is off
    local ok, err = client:call("create_profile", { body = S.profile_body { email = "not an email" } },
      { validate = false })
    assert.is_nil(ok)
    assert.equal(400, err.status)
    assert.equal("invalid", err.code)
    assert.equal("http", err.kind)
    assert.equal("create_profile", err.operation)
    assert.is_string(err.detail)
    assert.is_string(err.pointer)
    assert.equal(klaviyo.errors.mt, getmetatable(err))
    check_line(err, "create_profile", "HTTP 400", "invalid", err.pointer)
  end)

  it("400 on a filter the operation does not allow names the parameter", function()
    -- any() takes a list: the field and operator pass the local check, the value does not
    -- pass Klaviyo's
    local ok, err = client:call("get_profiles", { filter = 'any(email,"x")' })
    assert.is_nil(ok)
    assert.equal(400, err.status)
    assert.equal("filter", err.parameter)
    check_line(err, "(parameter filter)")
  end)

  it("401 not_authenticated", function()
    local c = assert(klaviyo.new { api_key = "pk_wrong_wrong_wrong", base_url = S.emu.url })
    local ok, err = c:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal(401, err.status)
    assert.equal("not_authenticated", err.code)
    check_line(err, "get_profiles", "HTTP 401", "not_authenticated")
    c:close()
  end)

  it("403 permission_denied when the key lacks the scope", function()
    local c = S.client(nil, { scopes = { "profiles:read" } })
    local ok, err = c:call("create_event", { body = S.event_body("scope@example.com") })
    assert.is_nil(ok)
    assert.equal(403, err.status)
    assert.equal("permission_denied", err.code)
    check_line(err, "create_event", "HTTP 403")
    c:close()
  end)

  it("404 not_found", function()
    local ok, err = client:call("get_profile", { id = "01NOSUCHPROFILE0000000000A" })
    assert.is_nil(ok)
    assert.equal(404, err.status)
    assert.equal("not_found", err.code)
    check_line(err, "get_profile", "HTTP 404", "not_found")
  end)

  it("409 duplicate_profile carries meta.duplicate_profile_id", function()
    local first = assert(client:call("create_profile",
      { body = S.profile_body { email = "dup@example.com" } }))
    local ok, err = client:call("create_profile", { body = S.profile_body { email = "dup@example.com" } })
    assert.is_nil(ok)
    assert.equal(409, err.status)
    assert.equal("duplicate_profile", err.code)
    assert.is_table(err.meta)
    assert.equal(first.data.id, err.meta.duplicate_profile_id)
    check_line(err, "HTTP 409", "duplicate_profile")
  end)

  it("429 carries Retry-After", function()
    S.emu.faults { { operation = "get_profiles", status = 429, retry_after = 7, count = 1 } }
    local ok, err = client:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal(429, err.status)
    assert.equal(7, err.retry_after)
    check_line(err, "HTTP 429", "[retry after 7s]")
  end)

  it("429 from the emulator's rate limiter", function()
    S.emu.limits({ get_profiles = { burst = 1, steady = 1 } }, acct)
    finally(function() S.emu.limits({ get_profiles = "default" }, acct) end)
    -- the client-side limiter off: with it, RateLimit-Remaining: 0 makes the client wait
    -- instead of drawing the 429 this test reads
    local c = S.client(nil, { limiter = false, retry = { attempts = 1 } }, acct)
    assert.is_table((c:call("get_profiles", {})))
    local ok, err = c:call("get_profiles", {})
    c:close()
    assert.is_nil(ok)
    assert.equal(429, err.status)
    assert.equal("throttled", err.code)
    assert.is_number(err.retry_after)
  end)

  for _, status in ipairs({ 500, 502, 503, 504 }) do
    it(status .. " from the server", function()
      S.emu.faults { { operation = "get_lists", status = status, count = 1 } }
      local ok, err = client:call("get_lists", {})
      assert.is_nil(ok)
      assert.equal(status, err.status)
      assert.equal("http", err.kind)
      check_line(err, "get_lists", "HTTP " .. status)
    end)
  end

  it("an HTML error page still gives a clear error", function()
    if not S.fault_body_supported() then
      return pending("the emulator's faults do not take a raw `body` yet")
    end
    S.emu.faults { { operation = "get_lists", status = 520, count = 1,
      body = "<html><head><title>520: Web server is returning an unknown error</title></head></html>" } }
    local ok, err = client:call("get_lists", {})
    assert.is_nil(ok)
    assert.equal(520, err.status)
    assert.equal("edge_error", err.code)   -- Cloudflare's HTML 52x, named by the core
    check_line(err, "get_lists", "HTTP 520")
  end)

  it("a connection reset before the answer is a transport error", function()
    S.emu.faults { { operation = "get_lists", reset = "before", count = 1 } }
    local ok, err = client:call("get_lists", {})
    assert.is_nil(ok)
    assert.equal("transport", err.kind)
    assert.is_nil(err.status)
    check_line(err, "get_lists", "transport error")
    -- the client recovers on the next call
    assert.is_table((client:call("get_lists", {})))
  end)
end)
