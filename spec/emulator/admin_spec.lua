-- The admin API under /__emulator/ and the OAuth endpoints.
local emu = require "helpers.emulator"
local cjson = require "cjson.safe"

local function event(email, unique_id)
  return { data = { type = "event", attributes = {
    properties = { n = 1 }, unique_id = unique_id,
    metric = { data = { type = "metric", attributes = { name = "Admin" } } },
    profile = { data = { type = "profile", attributes = { email = email or "admin@example.com" } } },
  } } }
end

local function b64(s)
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((s:gsub(".", function(x)
    local r, byte = "", x:byte()
    for i = 8, 1, -1 do r = r .. (byte % 2 ^ i - byte % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end

local function oauth(path, acct, form, secret)
  return emu.request { method = "POST", path = path, body = form, headers = {
    ["content-type"] = "application/x-www-form-urlencoded",
    authorization = "Basic " .. b64(acct.client_id .. ":" .. (secret or acct.client_secret)),
  } }
end

local function events_of(acct)
  local st, _, body = emu.api(acct, "GET", "/api/events")
  assert.are.equal(200, st)
  return body.data
end

describe("admin API", function()
  local acct
  before_each(function()
    emu.reset()
    acct = emu.account()
  end)

  it("creates accounts with keys, tokens and client credentials", function()
    assert.matches("^pk_%x+$", acct.private_key)
    assert.are.equal(6, #acct.public_key)
    for _, k in ipairs { "account_id", "access_token", "refresh_token", "client_id", "client_secret" } do
      assert.is_string(acct[k])
    end
    local other = emu.account()
    assert.are_not.equal(acct.private_key, other.private_key)
    assert.are_not.equal(acct.account_id, other.account_id)
  end)

  it("limits an account's keys to the scopes asked for", function()
    local ro = emu.account { scopes = { "events:read" } }
    assert.are.equal(200, (emu.api(ro, "GET", "/api/events")))
    assert.are.equal(403, (emu.api(ro, "POST", "/api/events", { body = event() })))
    local st = emu.admin("POST", "accounts", { scopes = "events:read" })
    assert.are.equal(400, st)
  end)

  it("reset forgets accounts and state", function()
    assert.are.equal(202, (emu.api(acct, "POST", "/api/events", { body = event() })))
    emu.reset()
    local st, _, body = emu.api(acct, "GET", "/api/events")
    assert.are.equal(401, st)
    assert.are.equal("not_authenticated", body.errors[1].code)
    local fresh = emu.account()
    assert.are.equal(0, #events_of(fresh))
  end)

  describe("OAuth", function()
    it("issues a new access token for a refresh token", function()
      local st, _, body = oauth("/oauth/token", acct,
        "grant_type=refresh_token&refresh_token=" .. emu.escape(acct.refresh_token))
      assert.are.equal(200, st)
      assert.are.equal("Bearer", body.token_type)
      assert.is_number(body.expires_in)
      assert.are_not.equal(acct.access_token, body.access_token)
      assert.are.equal(200, (emu.api(acct, "GET", "/api/events",
        { headers = { authorization = "Bearer " .. body.access_token } })))
    end)

    it("answers invalid_grant for a bad refresh token and invalid_client for bad credentials", function()
      local st, _, body = oauth("/oauth/token", acct, "grant_type=refresh_token&refresh_token=nope")
      assert.are.equal(400, st)
      assert.are.equal("invalid_grant", body.error)
      st, _, body = oauth("/oauth/token", acct,
        "grant_type=refresh_token&refresh_token=" .. acct.refresh_token, "wrong-secret")
      assert.are.equal(401, st)
      assert.are.equal("invalid_client", body.error)
      st, _, body = oauth("/oauth/token", acct, "grant_type=password")
      assert.are.equal(400, st)
      assert.are.equal("unsupported_grant_type", body.error)
    end)

    it("revoking the refresh token uninstalls: refresh fails, tokens answer 401", function()
      local st = oauth("/oauth/revoke", acct, "token=" .. acct.refresh_token)
      assert.are.equal(200, st)
      local st2, _, body = oauth("/oauth/token", acct,
        "grant_type=refresh_token&refresh_token=" .. acct.refresh_token)
      assert.are.equal(400, st2)
      assert.are.equal("invalid_grant", body.error)
      assert.are.equal(401, (emu.api(acct, "GET", "/api/events",
        { headers = { authorization = "Bearer " .. acct.access_token } })))
    end)

    it("expire-tokens makes current access tokens answer 401, refresh still works", function()
      local bearer = { headers = { authorization = "Bearer " .. acct.access_token } }
      assert.are.equal(200, (emu.api(acct, "GET", "/api/events", bearer)))
      local st = emu.admin("POST", "expire-tokens", { account = acct.account_id })
      assert.are.equal(200, st)
      assert.are.equal(401, (emu.api(acct, "GET", "/api/events", bearer)))
      -- private keys are not tokens
      assert.are.equal(200, (emu.api(acct, "GET", "/api/events")))
      local st2, _, body = oauth("/oauth/token", acct,
        "grant_type=refresh_token&refresh_token=" .. acct.refresh_token)
      assert.are.equal(200, st2)
      assert.are.equal(200, (emu.api(acct, "GET", "/api/events",
        { headers = { authorization = "Bearer " .. body.access_token } })))
    end)
  end)

  describe("faults", function()
    after_each(function() emu.faults(nil) end)

    it("answers an injected status for the next N matching requests, with Retry-After", function()
      emu.faults { { operation = "create_event", status = 503, retry_after = 3, count = 2 } }
      for _ = 1, 2 do
        local st, h, body = emu.api(acct, "POST", "/api/events", { body = event() })
        assert.are.equal(503, st)
        assert.are.equal("3", h["retry-after"])
        assert.is_string(body.errors[1].detail)
      end
      -- other operations are untouched, and the rule is spent
      assert.are.equal(200, (emu.api(acct, "GET", "/api/events")))
      assert.are.equal(202, (emu.api(acct, "POST", "/api/events", { body = event() })))
      assert.are.equal(1, #events_of(acct))
    end)

    it("never fires with probability 0 and always with probability 1", function()
      emu.faults { { operation = "*", status = 500, probability = 0 } }
      assert.are.equal(200, (emu.api(acct, "GET", "/api/events")))
      emu.faults { { operation = "*", status = 500, probability = 1 } }
      assert.are.equal(500, (emu.api(acct, "GET", "/api/events")))
    end)

    it("resets the connection before processing: nothing is recorded", function()
      emu.faults { { operation = "create_event", reset = "before", count = 1 } }
      local st, err = emu.api(acct, "POST", "/api/events", { body = event() })
      assert.is_nil(st)
      assert.is_string(err)
      assert.are.equal(0, #events_of(acct))
    end)

    it("resets the connection after processing: the event is recorded", function()
      emu.faults { { operation = "create_event", reset = "after", count = 1 } }
      local st = emu.api(acct, "POST", "/api/events", { body = event() })
      assert.is_nil(st)
      assert.are.equal(1, #events_of(acct))
    end)

    it("truncates a body: the client gets less than Content-Length promised", function()
      emu.api(acct, "POST", "/api/events", { body = event() })
      emu.faults { { operation = "get_events", truncate = true, count = 1 } }
      local st, _, decoded, raw = emu.api(acct, "GET", "/api/events")
      -- LuaSocket reports the short read as an error or hands back a cut body
      assert.is_true(st == nil or (decoded == nil and #raw > 0))
      assert.are.equal(200, (emu.api(acct, "GET", "/api/events")))
    end)

    it("delays, then answers normally, and counts what fired", function()
      emu.faults { { operation = "get_events", delay_ms = 50, count = 3 } }
      assert.are.equal(200, (emu.api(acct, "GET", "/api/events")))
      local _, doc = emu.admin("GET", "faults")
      assert.are.equal(1, doc.rules[1].fired)
      assert.are.equal(2, doc.rules[1].count)
    end)

    it("answers a raw body: an HTML edge page, or a JSON body of the test's choosing", function()
      local html = "<html><body>Error 520: Web server is returning an unknown error</body></html>"
      emu.faults { { operation = "get_events", status = 520, body = html, count = 1 },
                   { operation = "get_metrics", status = 200, body = '{"data": "odd"}', count = 1 },
                   { operation = "get_profiles", status = 403, body = "blocked", content_type = "text/plain",
                     count = 1 } }
      local st, h, decoded, raw = emu.api(acct, "GET", "/api/events")
      assert.are.equal(520, st)
      assert.are.equal(html, raw)
      assert.is_nil(decoded)
      assert.matches("^text/html", h["content-type"])
      st, h, decoded = emu.api(acct, "GET", "/api/metrics")
      assert.are.equal(200, st)
      assert.are.equal("odd", decoded.data)
      assert.matches("^application/vnd.api%+json", h["content-type"])
      local _
      st, h, _, raw = emu.api(acct, "GET", "/api/profiles")
      assert.are.equal(403, st)
      assert.are.equal("blocked", raw)
      assert.are.equal("text/plain", h["content-type"])
    end)

    it("numbers every recorded request, also one reset before an answer", function()
      emu.faults { { operation = "get_events", reset = "before", count = 1 } }
      emu.api(acct, "GET", "/api/events")
      emu.api(acct, "GET", "/api/events")
      local list = emu.requests(acct)
      assert.are.equal(0, list[1].status)
      assert.is_true(list[1].fault) -- the contract check skips what a fault changed
      assert.are.equal(200, list[2].status)
      assert.is_nil(list[2].fault)
      assert.is_number(list[1].seq)
      assert.are.equal(list[1].seq + 1, list[2].seq)
    end)

    it("refuses malformed rules", function()
      for _, rules in ipairs {
        { { operation = "nope", status = 500 } },
        { { status = 42 } },
        { { reset = "sometimes" } },
        { { operation = "*" } },
        { { status = 500, probability = 2 } },
        { { body = "<html/>" } },
        { { status = 500, body = 42 } },
        { { status = 500, content_type = "text/html" } },
      } do
        local st, body = emu.admin("POST", "faults", { rules = rules })
        assert.are.equal(400, st)
        assert.is_string(body.error)
      end
    end)
  end)

  describe("requests", function()
    it("lists what was received, newest last, with secrets masked", function()
      emu.api(acct, "POST", "/api/events", { body = event("req@example.com") })
      emu.api(acct, "GET", "/api/events", { query = { ["page[size]"] = 5 } })
      local list = emu.requests(acct)
      assert.are.equal(2, #list)
      local first, last = list[1], list[2]
      assert.are.equal("create_event", first.operation)
      assert.are.equal("POST", first.method)
      assert.are.equal("/api/events", first.path)
      assert.are.equal(202, first.status)
      assert.matches("req@example.com", first.request_body, 1, true)
      assert.are.equal("Klaviyo-API-Key ***", first.headers.authorization)
      assert.are.equal("2026-07-15", first.headers.revision)
      assert.are.equal("get_events", last.operation)
      assert.are.equal("page%5Bsize%5D=5", last.query)
      assert.is_table(cjson.decode(last.response_body).data)
      local _, _, _, raw = emu.request { path = "/__emulator/requests" }
      assert.is_nil(raw:find(acct.private_key, 1, true))
    end)

    it("tells connections apart", function()
      emu.api(acct, "GET", "/api/events")
      emu.api(acct, "GET", "/api/events")
      local list = emu.requests(acct)
      assert.is_string(list[1].connection)
      -- LuaSocket opens one connection per request
      assert.are_not.equal(list[1].connection, list[2].connection)
    end)

    it("filters by account", function()
      local other = emu.account()
      emu.api(acct, "GET", "/api/events")
      emu.api(other, "GET", "/api/metrics")
      local mine = emu.requests(acct)
      assert.are.equal(1, #mine)
      assert.are.equal("get_events", mine[1].operation)
      assert.are.equal(2, #emu.requests())
    end)
  end)

  it("stats count answers and 429s per operation", function()
    emu.limits({ get_metrics = { daily = 1 } }, acct)
    emu.api(acct, "GET", "/api/metrics")
    emu.api(acct, "GET", "/api/metrics")
    emu.api(acct, "GET", "/api/events")
    local s = emu.stats()
    assert.are.equal(1, s.operations.get_metrics.answers)
    assert.are.equal(1, s.operations.get_metrics.throttled)
    assert.are.equal(1, s.operations.get_events.answers)
    assert.are.equal(2, s.answers)
    assert.are.equal(1, s.throttled)
  end)

  it("flow-runs starts empty and names the account's runs", function()
    local runs = emu.flow_runs(acct)
    assert.are.same({}, runs)
  end)

  it("lists bulk jobs of an account", function()
    local st, body = emu.admin("GET", "jobs")
    assert.are.equal(400, st)
    assert.is_string(body.error)
    st, body = emu.admin("GET", "jobs?account=" .. acct.account_id)
    assert.are.equal(200, st)
    assert.are.same({}, body.jobs)
  end)

  it("defines segments for an account", function()
    local p_st, _, p = emu.api(acct, "POST", "/api/profiles",
      { body = { data = { type = "profile", attributes = { email = "seg@example.com" } } } })
    assert.are.equal(201, p_st)
    local st, body = emu.admin("POST", "segments",
      { account = acct.account_id, name = "VIPs", profile_ids = { p.data.id } })
    assert.are.equal(201, st)
    assert.is_string(body.id)
    st = emu.admin("POST", "segments", { account = acct.account_id, name = "Bad", profile_ids = { "NOPE" } })
    assert.are.equal(400, st)
    st = emu.admin("POST", "segments", { name = "No account", profile_ids = {} })
    assert.are.equal(400, st)
  end)

  it("answers unknown admin endpoints 404 and wrong methods 405", function()
    assert.are.equal(404, (emu.admin("GET", "nope")))
    assert.are.equal(405, (emu.admin("GET", "reset")))
  end)
end)

describe("journal", function()
  local launcher = emu.root .. "/emulator/klaviyo-emulator"
  it("appends every exchange to a file, across resets", function()
    local socket = require "socket"
    local s = assert(socket.bind("127.0.0.1", 0))
    local _, port = s:getsockname()
    s:close()
    local path = os.tmpname()
    local f = io.popen(launcher .. " start --port " .. port .. " --journal " .. path .. " 2>&1")
    local url = f:read("*a"):match("(http://[%d%.:]+)")
    f:close()
    assert.is_string(url)
    local ok, err = pcall(function()
      local function admin(method, p, body)
        local st, _, d = emu.request { url = url .. "/__emulator/" .. p, method = method, body = body }
        return st, d
      end
      local _, a = admin("POST", "accounts", {})
      local function call(method, p)
        return emu.request { url = url .. p, method = method, headers = {
          authorization = "Klaviyo-API-Key " .. a.private_key, revision = emu.REVISION } }
      end
      call("GET", "/api/metrics")
      admin("POST", "reset", {})
      call("GET", "/api/events")
      local lines = {}
      for line in io.lines(path) do lines[#lines + 1] = cjson.decode(line) end
      assert.are.equal(2, #lines)
      assert.are.equal("get_metrics", lines[1].operation)
      assert.are.equal(200, lines[1].status)
      assert.is_string(lines[1].response_body)
      assert.are.equal("get_events", lines[2].operation)
      assert.are.equal(401, lines[2].status)
    end)
    os.execute(launcher .. " stop --port " .. port .. " >/dev/null 2>&1")
    os.remove(path)
    assert(ok, err)
  end)
end)
