-- The contract of klaviyo.core (src/lua_klaviyo.c) that the Lua layer is written against:
-- results and error tables, local refusals (nothing reaches the emulator), misuse raising,
-- build/interpret for other transports, token replacement, close.  Against the emulator.
local emu = require "helpers.emulator"
local core = require "klaviyo.core"

local function mark()
  local _, _, doc = emu.request { path = "/__emulator/requests", query = { limit = 1 } }
  local r = doc.requests[1]
  return r and r.seq or 0
end

local function records_since(m)
  local _, _, doc = emu.request { path = "/__emulator/requests", query = { limit = 200 } }
  local out = {}
  for _, r in ipairs(doc.requests) do
    if r.seq and r.seq > m then out[#out + 1] = r end
  end
  return out
end

local free_port = require("helpers.process").free_port

local EVENT = '{"data":{"type":"event","attributes":{"properties":{},' ..
  '"metric":{"data":{"type":"metric","attributes":{"name":"Binding Spec"}}},' ..
  '"profile":{"data":{"type":"profile","attributes":{"email":"binding@example.com"}}}}}}'

describe("klaviyo.core", function()
  local acct, c
  before_each(function()
    acct = emu.account()
    c = assert(core.new { base_url = emu.url, api_key = acct.private_key, public_key = acct.public_key })
  end)
  after_each(function() c:close() end)

  it("has a version and the JSON encoder", function()
    assert.equal("0.1.0", core._VERSION)
    assert.equal("function", type(core.encode))
    assert.equal('{"a":[1,2]}', core.encode({ a = { 1, 2 } }))
  end)

  it("returns status, lowercase headers, body and rate-limit facts", function()
    local res = assert(c:request { operation = "create_event", method = "POST", path = "/api/events",
      body = EVENT })
    assert.equal(202, res.status)
    assert.equal("string", type(res.body))
    for name in pairs(res.headers) do assert.equal(name:lower(), name) end
    assert.is_table(res.ratelimit)
    assert.equal(tonumber(res.headers["ratelimit-limit"]), res.ratelimit.limit)
    assert.equal(tonumber(res.headers["ratelimit-remaining"]), res.ratelimit.remaining)
    assert.equal(tonumber(res.headers["ratelimit-reset"]), res.ratelimit.reset)
  end)

  it("keeps each response's own headers until they are first read", function()
    local first = assert(c:request { operation = "create_event", method = "POST", path = "/api/events",
      body = EVENT })
    local second = assert(c:request { method = "GET", path = "/api/metrics" })
    -- the first response's headers were not read before the second request replaced the
    -- client's last response: they are still its own (the create_event limit, not get_metrics')
    assert.equal(tostring(first.ratelimit.limit), first.headers["ratelimit-limit"])
    assert.equal(tostring(second.ratelimit.limit), second.headers["ratelimit-limit"])
    assert.are_not.equal(first.headers["ratelimit-limit"], second.headers["ratelimit-limit"])
    assert.equal(first.headers, first.headers)                 -- made once
    local keys = {}
    for k in pairs(first) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    assert.same({ "body", "headers", "ratelimit", "status" }, keys)
  end)

  it("encodes a table body itself, stamping unique_ids, in c:request and c:batch", function()
    local function event(email)
      return { data = { type = "event", attributes = {
        properties = { total = 12.5, items = { "a", "b" } },
        metric = { data = { type = "metric", attributes = { name = "Binding Table" } } },
        profile = { data = { type = "profile", attributes = { email = email } } } } } }
    end
    local m = mark()
    local body = event("table@example.com")
    assert(c:request { operation = "create_event", method = "POST", path = "/api/events",
                       body = body, unique_ids = true })
    local out = c:batch({
      { operation = "create_event", method = "POST", path = "/api/events", safe = true,
        body = event("batch1@example.com"), unique_ids = true },
      { operation = "create_event", method = "POST", path = "/api/events", safe = true,
        body = event("batch2@example.com"), unique_ids = true },
    }, 2)
    assert.equal(202, out[1][1].status)
    assert.equal(202, out[2][1].status)
    local cjson = require "cjson"
    local ids = {}
    for _, r in ipairs(records_since(m)) do
      local attrs = cjson.decode(r.request_body).data.attributes
      assert.equal(12.5, attrs.properties.total)
      assert.same({ "a", "b" }, attrs.properties.items)
      ids[#ids + 1] = attrs.unique_id
    end
    assert.equal(3, #ids)
    assert.are_not.equal(ids[1], ids[2])
    assert.are_not.equal(ids[2], ids[3])
    assert.is_nil(body.data.attributes.unique_id)
    -- a batch with a body that cannot be encoded sends nothing and names the request
    m = mark()
    local res, err = c:batch({
      { operation = "create_event", method = "POST", path = "/api/events", body = event("x@example.com") },
      { operation = "create_event", method = "POST", path = "/api/events", body = { bad = 0 / 0 } },
    }, 2)
    assert.is_nil(res)
    assert.same({ "encode", "invalid_body", 2 }, { err.kind, err.code, err.index })
    assert.matches("^bad: NaN", err.message)
    assert.same({}, records_since(m))
  end)

  describe("a request's body, revision and limits", function()
    local function event(email)
      return { data = { type = "event", attributes = { properties = { n = 1 },
        metric = { data = { type = "metric", attributes = { name = "Binding Prepared" } } },
        profile = { data = { type = "profile", attributes = { email = email } } } } } }
    end
    local function ev_req(body, unique_ids)
      return { operation = "create_event", method = "POST", path = "/api/events", body = body,
               unique_ids = unique_ids, safe = true }
    end

    it("sends each call's body: a table stamped with a unique_id when asked, a string as it is", function()
      local m = mark()
      local body = event("prepared@example.com")
      local res, err, plain = c:request(ev_req(body, true))
      assert.equal(202, res.status)
      assert.is_nil(err)
      assert.is_true(plain)
      assert(c:request(ev_req(body, true)))
      assert(c:request(ev_req(body)))             -- no unique_ids asked: none stamped
      assert(c:request(ev_req(EVENT, true)))      -- a string is sent as it is
      local recs = records_since(m)
      assert.equal(4, #recs)
      local cjson = require "cjson"
      local attrs = {}
      for i, r in ipairs(recs) do
        assert.equal("create_event", r.operation)
        assert.equal("2026-07-15", r.headers.revision)
        assert.matches("^Klaviyo%-API%-Key ", r.headers.authorization)
        attrs[i] = cjson.decode(r.request_body).data.attributes
      end
      assert.is_string(attrs[1].unique_id)
      assert.is_string(attrs[2].unique_id)
      assert.are_not.equal(attrs[1].unique_id, attrs[2].unique_id)
      assert.is_nil(attrs[3].unique_id)
      assert.equal(EVENT, recs[4].request_body)
      assert.is_nil(body.data.attributes.unique_id)  -- the caller's table is not changed
    end)

    it("keeps its revision and its limits", function()
      local req = { operation = "get_metrics", method = "GET", path = "/api/metrics",
                    revision = "2025-10-15", limits = { burst = 2 } }
      local m = mark()
      local plains = {}
      for i = 1, 3 do
        local res, _, plain = c:request(req)
        assert.equal(200, res.status)
        plains[i] = plain
      end
      assert.same({ true, true, false }, plains)  -- the third waited for the burst window
      assert.is_true(c:info().waited > 0)
      for _, r in ipairs(records_since(m)) do assert.equal("2025-10-15", r.headers.revision) end
    end)

    it("refuses a self that is not a client and a body it cannot encode; nothing is sent", function()
      local m = mark()
      assert.has_error(function() c:request { method = "GET", path = "/api/metrics", bogus = 1 } end,
        "klaviyo.core: unknown request field bogus")
      -- a method's self is checked against the client metatable
      for _, self in ipairs { {}, io.stdout } do
        local ok, msg = pcall(c.request, self, ev_req(EVENT))
        assert.is_false(ok)
        assert.matches("klaviyo.core.client expected, got " .. type(self), msg, 1, true)
      end
      local res, err = c:request(ev_req({ bad = 0 / 0 }, true))
      assert.is_nil(res)
      assert.same({ "encode", "invalid_body" }, { err.kind, err.code })
      assert.matches("^bad: NaN", err.message)
      assert.same({}, records_since(m))
    end)
  end)

  it("sends the headers Klaviyo expects and encodes path and query", function()
    local m = mark()
    local _, err = c:request { operation = "get_profile", method = "GET", path = "/api/profiles/{id}",
      path_params = { "a b é#?&" },
      query = { { "fields[profile]", { "email", "first_name" } }, { "page[size]", 5 },
                { "filter", 'equals(email,"x+y & z#@é.com")' } } }
    assert.equal(404, err.status)
    local rec = records_since(m)[1]
    -- the emulator records the decoded path: '#', '?' and '&' arrived inside the segment (not
    -- cut off as fragment or query) and it routed to get_profile
    assert.equal("/api/profiles/a b é#?&", rec.path)
    assert.equal("get_profile", rec.operation)
    assert.equal("fields%5Bprofile%5D=email,first_name&page%5Bsize%5D=5" ..
      "&filter=equals%28email%2C%22x%2By%20%26%20z%23%40%C3%A9.com%22%29", rec.query)
    assert.equal("2026-07-15", rec.headers.revision)
    assert.equal("lua-klaviyo/0.1.0", rec.headers["user-agent"])
    assert.equal("application/vnd.api+json", rec.headers.accept)
    assert.matches("gzip", rec.headers["accept-encoding"])
    assert.matches("^Klaviyo%-API%-Key ", rec.headers.authorization)
    m = mark()
    c:request { method = "GET", path = "/api/profiles/{id}", path_params = { 12345 },
      query = { { "fields[profile]", { "email", 7 } }, { "x", true } } }
    rec = records_since(m)[1]
    assert.equal("/api/profiles/12345", rec.path)
    assert.equal("fields%5Bprofile%5D=email,7&x=true", rec.query)
  end)

  it("gives a plain error table for HTTP errors", function()
    local res, err = c:request { operation = "get_profile", method = "GET", path = "/api/profiles/{id}",
      path_params = { "NOPE" } }
    assert.is_nil(res)
    assert.is_nil(getmetatable(err))
    assert.equal("http", err.kind)
    assert.equal(404, err.status)
    assert.equal("not_found", err.code)
    assert.equal("get_profile", err.operation)
    assert.is_string(err.title)
    assert.is_string(err.request_id)
    assert.is_string(err.body)
    assert.is_table(err.headers)
    assert.matches("^get_profile: HTTP 404 not_found", err.message)
  end)

  it("reads meta of a 409 duplicate_profile", function()
    local body = '{"data":{"type":"profile","attributes":{"email":"dup-binding@example.com"}}}'
    local req = { operation = "create_profile", method = "POST", path = "/api/profiles", body = body }
    local first = assert(c:request(req))
    local id = require("cjson").decode(first.body).data.id
    local _, err = c:request(req)
    assert.equal(409, err.status)
    assert.equal("duplicate_profile", err.code)
    assert.equal(id, err.meta.duplicate_profile_id)
  end)

  it("reads Retry-After of a 429", function()
    emu.faults { { operation = "get_metrics", status = 429, retry_after = 3, count = 1 } }
    local _, err = c:request { operation = "get_metrics", method = "GET", path = "/api/metrics",
                               retry_attempts = 1 }
    emu.faults()
    assert.equal(429, err.status)
    assert.equal(3, err.retry_after)
  end)

  it("tells transport failures apart from HTTP errors", function()
    local dead = assert(core.new { base_url = "http://127.0.0.1:" .. free_port(),
      api_key = acct.private_key })
    local res, err = dead:request { operation = "get_metrics", method = "GET", path = "/api/metrics" }
    dead:close()
    assert.is_nil(res)
    assert.equal("transport", err.kind)
    assert.equal("connect_failed", err.code)
    assert.is_nil(err.status)
    assert.is_false(err.sent)
    assert.equal("get_metrics", err.operation)
  end)

  it("refuses locally what must not be sent, and nothing reaches the emulator", function()
    local m = mark()
    local cases = {
      { { method = "GET", path = "/client/segments" }, "private_key_to_client" },
      { { method = "GET", path = "/api/metrics", auth = "public" }, "public_key_to_api" },
      { { method = "GET", path = "/api/metrics", revision = "2026-02-30" }, "invalid_revision" },
      { { method = "GET", path = "/api/metrics", revision = "2026-07-15\r\nx: y" }, "invalid_revision" },
      { { method = "GET", url = "http://127.0.0.1:1/api/metrics" }, "foreign_url" },
      { { method = "GET", url = "https://a.klaviyo.com/api/metrics" }, "foreign_url" },
      { { method = "GET", url = emu.url .. "/api/%2e%2e/client/x" }, "invalid_path" },
    }
    for _, case in ipairs(cases) do
      local res, err = c:request(case[1])
      assert.is_nil(res)
      assert.equal("refused", err.kind)
      assert.equal(case[2], err.code)
      assert.is_nil(err.message:find(acct.private_key, 1, true))
    end
    assert.same({}, records_since(m))
  end)

  it("follows a links.next URL on the same host", function()
    local res = assert(c:request { operation = "get_metrics", method = "GET",
      url = emu.url .. "/api/metrics?page%5Bsize%5D=1" })
    assert.equal(200, res.status)
  end)

  it("refuses bad settings with nil, err and never shows a secret", function()
    local secret = "pk_secret_0123456789"
    local cases = {
      { { base_url = "http://example.com", api_key = secret }, "insecure_transport" },
      { { api_key = secret .. "\r\nX-Evil: 1" }, "invalid_credential" },
      { { api_key = "pk_with space" }, "invalid_credential" },
      { { access_token = "tok\n" }, "invalid_credential" },
      { { revision = "2026-13-01", api_key = secret }, "invalid_revision" },
      { { base_url = "ftp://a.klaviyo.com", api_key = secret }, "invalid_base_url" },
    }
    for _, case in ipairs(cases) do
      local cl, err = core.new(case[1])
      assert.is_nil(cl)
      assert.equal("refused", err.kind)
      assert.equal(case[2], err.code)
      assert.is_nil(err.message:find(secret, 1, true))
      assert.is_nil(err.detail:find(secret, 1, true))
    end
    local ok = assert(core.new { api_key = secret })
    assert.is_nil(tostring(ok):find(secret, 1, true))
    ok:close()
  end)

  it("leaves what a setting may be to the core: nil, err, not a raise", function()
    for _, o in ipairs { { limiter_safety = 2 }, { limiter_safety = 0 / 0 }, { retry_base = -1 },
                         { retry_max_time = 0 / 0 } } do
      o.api_key = "pk_x"
      local cl, err = core.new(o)
      assert.is_nil(cl)
      assert.same({ "refused", "invalid_option" }, { err.kind, err.code })
    end
  end)

  it("raises on misuse", function()
    assert.has_error(function() core.new { api_kye = "x" } end, "klaviyo.core.new: unknown option api_kye")
    assert.has_error(function() core.new { api_key = 1 } end)
    assert.has_error(function() core.new { timeout = -1 } end)
    assert.has_error(function() core.new("x") end)
    assert.has_error(function() c:request { method = "GET", path = "/api/metrics", bogus = 1 } end,
      "klaviyo.core: unknown request field bogus")
    assert.has_error(function() c:request { method = "GET" } end)
    assert.has_error(function() c:request { method = "GET", path = "/api/x", url = emu.url .. "/api/x" } end)
    assert.has_error(function() c:request { method = 1, path = "/api/metrics" } end)
    assert.has_error(function() c:request { method = "GET", path = "/api/metrics", auth = "secret" } end)
    assert.has_error(function() c:request { method = "GET", path = "/api/metrics", query = { "x" } } end)
    assert.has_error(function()
      c:request { method = "GET", path = "/api/metrics", query = { { 1, "v" } } }
    end)
    assert.has_error(function() c:request { method = "GET", path = "/api/profiles/{id}" } end)
    assert.has_error(function()
      c:request { method = "GET", path = "/api/profiles/{id}", path_params = { true } }
    end)
    assert.has_error(function()
      c:request { method = "GET", path = "/api/metrics", headers = { { "Authorization", "x" } } }
    end)
    assert.has_error(function() c:request { method = "FETCH", path = "/api/metrics" } end)
  end)

  it("builds requests for other transports without sending", function()
    local m = mark()
    local b = assert(c:build { operation = "create_client_subscription", method = "POST",
      path = "/client/subscriptions", auth = "public", body = "{}", headers = { { "X-Extra", "1" } } })
    assert.equal("POST", b.method)
    assert.equal(emu.url .. "/client/subscriptions?company_id=" .. acct.public_key, b.url)
    assert.equal("{}", b.body)
    local names = {}
    for _, h in ipairs(b.headers) do names[h[1]] = h[2] end
    assert.equal("application/vnd.api+json", names["Content-Type"])
    assert.equal("2026-07-15", names.revision)
    assert.equal("1", names["X-Extra"])
    assert.is_nil(names.Authorization)
    local _, err = c:build { method = "GET", path = "/client/x" }
    assert.equal("private_key_to_client", err.code)
    assert.same({}, records_since(m))
  end)

  it("auth client: an OAuth endpoint's own Basic credential, Accept and Content-Type, no key", function()
    local m = mark()
    local b = assert(c:build { operation = "oauth_token", method = "POST", path = "/oauth/token",
      auth = "client", body = "grant_type=x", headers = { { "Authorization", "Basic aWQ6cw==" },
        { "Content-Type", "application/x-www-form-urlencoded" }, { "Accept", "application/json" } } })
    assert.equal(emu.url .. "/oauth/token", b.url)
    local names = {}
    for _, h in ipairs(b.headers) do names[h[1]] = h[2] end
    assert.equal("Basic aWQ6cw==", names.Authorization)
    assert.equal("application/x-www-form-urlencoded", names["Content-Type"])
    assert.equal("application/json", names.Accept)
    assert.is_nil(names.revision)
    local _, err = c:build { method = "POST", path = "/api/profiles", auth = "client",
      headers = { { "Authorization", "Basic aWQ6cw==" } } }
    assert.equal("client_auth_not_oauth", err.code)
    assert.has_error(function() c:build { method = "POST", path = "/oauth/token", auth = "basic" } end,
      'klaviyo.core: request field auth must be "private", "public" or "client"')
    assert.same({}, records_since(m))
  end)

  it("interprets answers received elsewhere", function()
    local res = assert(c:interpret(200, { ["RateLimit-Limit"] = "10", ["RateLimit-Remaining"] = "9",
      ["RateLimit-Reset"] = "59", ["Set-Cookie"] = { "a=1", "b=2" } }, '{"data":[]}', "get_lists"))
    assert.equal(200, res.status)
    assert.equal('{"data":[]}', res.body)
    assert.same({ limit = 10, remaining = 9, reset = 59 }, res.ratelimit)
    assert.equal("a=1, b=2", res.headers["set-cookie"])
    local _, err = c:interpret(429, { ["Retry-After"] = "5" },
      '{"errors":[{"id":"x","status":429,"code":"throttled","title":"Request was throttled.",' ..
      '"detail":"Request was throttled. Expected available in 5 seconds."}]}',
      "get_lists")
    assert.equal("throttled", err.code)
    assert.equal(5, err.retry_after)
    assert.equal("get_lists", err.operation)
    _, err = c:interpret(403, { ["Content-Type"] = "text/html" },
      "<html><head><title>Attention Required! | Cloudflare</title></head></html>")
    assert.equal("edge_blocked", err.code)
    assert.equal("Attention Required! | Cloudflare", err.detail)
    _, err = c:interpret(524, nil, "")
    assert.equal("edge_error", err.code)
    assert.equal(524, err.status)
  end)

  it("gives every header of an answer, in responses and in error tables alike", function()
    -- the headers travel as one block of name/value pairs: empty values, repeated names and
    -- no headers at all must come out as they went in
    local res = assert(c:interpret(200, { ["X-Empty"] = "", ["X-B"] = "b", ["X-Rep"] = { "1", "2", "3" },
      ["X-Last"] = "z" }, "", "get_lists"))
    assert.same({ ["x-empty"] = "", ["x-b"] = "b", ["x-rep"] = "1, 2, 3", ["x-last"] = "z" }, res.headers)
    res = assert(c:interpret(204, {}, "", "get_lists"))
    assert.same({}, res.headers)
    local _, err = c:interpret(429,
      { ["Retry-After"] = "7", ["X-Empty"] = "", ["Set-Cookie"] = { "a=1", "b=2" } },
      '{"errors":[{"id":"x","status":429,"code":"throttled","title":"t","detail":"d"}]}', "get_lists")
    assert.same({ ["retry-after"] = "7", ["x-empty"] = "", ["set-cookie"] = "a=1, b=2" }, err.headers)
    _, err = c:interpret(500, {}, "", "get_lists")
    assert.same({}, err.headers)
  end)

  it("replaces the bearer token at run time", function()
    local o = assert(core.new { base_url = emu.url, access_token = acct.access_token })
    assert.equal(200, assert(o:request { method = "GET", path = "/api/metrics" }).status)
    assert.is_true(o:set_access_token("emu_at_not_a_real_token"))
    local _, err = o:request { method = "GET", path = "/api/metrics" }
    assert.equal(401, err.status)
    assert.is_nil(err.message:find("emu_at_not_a_real_token", 1, true))
    local ok, rerr = o:set_access_token("bad token")
    assert.is_nil(ok)
    assert.equal("invalid_credential", rerr.code)
    assert.is_true(o:set_access_token(acct.access_token))
    assert.equal(200, assert(o:request { method = "GET", path = "/api/metrics" }).status)
    o:close()
  end)

  it("serves many requests over one connection", function()
    emu.limits({ ["*"] = "off" }, acct)
    local m = mark()
    for _ = 1, 25 do assert(c:request { method = "GET", path = "/api/metrics" }) end
    local recs = records_since(m)
    assert.equal(25, #recs)
    for _, r in ipairs(recs) do assert.equal(recs[1].connection, r.connection) end
  end)

  it("closes idempotently; a closed client raises", function()
    local o = assert(core.new { base_url = emu.url, api_key = acct.private_key })
    o:close()
    o:close()
    assert.has_error(function() o:request { method = "GET", path = "/api/metrics" } end,
      "klaviyo.core: client is closed")
    assert.matches("closed", tostring(o))
  end)
end)
