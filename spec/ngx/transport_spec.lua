-- The ngx transport, run inside nginx through the test bed's /call location against the
-- emulator: the client specs that make sense in nginx (call, auth, revision, errors,
-- encoding, pagination) and what only this transport does (keepalive pools, chunked bodies,
-- failures mid-exchange, timeouts, TLS verification, the shared-dict limiter).
local T = require "ngx.support"
local S, emu = T.S, T.emu
local klaviyo = require "klaviyo"

local function event(email, extra) return { body = S.event_body(email, nil, extra) } end
-- retries off, for the tests that read one failure (spec/retry covers repeating them)
local ONCE = { retry = { attempts = 1 } }

describe("ngx transport outside nginx", function()
  it("is not chosen by default, and refuses to be chosen or to get a limiter", function()
    local c = assert(klaviyo.new { api_key = "pk_x", base_url = emu.url })
    assert.is_falsy(c.transport)   -- the core's libcurl
    c:close()
    assert.has_error(function() klaviyo.new { api_key = "pk_x", transport = "ngx" } end,
      'klaviyo.new: transport "ngx" needs nginx with ngx_http_lua_module (ngx.socket.tcp)')
    assert.has_error(function() klaviyo.new { api_key = "pk_x", transport = "libcurl" } end,
      'klaviyo.new: option transport must be "curl" or "ngx", got "libcurl"')
    assert.has_error(function()
      klaviyo.new { api_key = "pk_x", limiter = { store = "shdict", dict = "d" } }
    end, 'klaviyo.new: option limiter (store "shdict") needs transport "ngx"')
  end)
end)

describe("ngx transport in nginx", function()
  setup(function() T.start() end)
  teardown(function() T.stop() end)

  local acct
  before_each(function()
    emu.faults(nil)
    acct = emu.account()
  end)

  describe("call", function()
    it("is the transport chosen inside nginx; curl when asked", function()
      local out = T.call(T.opts(acct), {})
      assert.equal("ngx", out.transport)
      out = T.call(T.opts(acct, nil, { transport = "curl" }), {})
      assert.equal("curl", out.transport)
    end)

    it("sends an event: true for the empty 202, the request as the core built it", function()
      local mark = S.mark()
      local doc, r = T.call1(T.opts(acct), "create_event", event("ngx-call@example.com"))
      assert.is_true(doc, T.cjson.encode(r))
      assert.equal(202, r.status)
      local recs = T.since(mark, "create_event")
      assert.equal(1, #recs)
      assert.equal(202, recs[1].status)
      assert.equal("Klaviyo-API-Key ***", S.header(recs[1], "authorization"))
      assert.equal("2026-07-15", S.header(recs[1], "revision"))
      assert.equal("application/vnd.api+json", S.header(recs[1], "content-type"))
      assert.matches("^lua%-klaviyo/", S.header(recs[1], "user-agent"))
      assert.matches("ngx%-call@example%.com", recs[1].request_body)
    end)

    it("returns decoded documents with the ratelimit figures, UTF-8 intact", function()
      local doc, r = T.call1(T.opts(acct), "create_profile",
        { body = S.profile_body { email = "ngx-doc@example.com", first_name = "Zoë" } })
      assert.is_table(doc, T.cjson.encode(r))
      assert.equal(201, r.status)
      assert.equal("Zoë", doc.data.attributes.first_name)
      assert.is_number(r.ratelimit.limit)
      assert.is_number(r.ratelimit.remaining)
      local got = T.call1(T.opts(acct), "get_profile", { id = doc.data.id })
      assert.equal("ngx-doc@example.com", got.data.attributes.email)
    end)

    it("encodes query parameters as the core does (filter, fields, page size)", function()
      local mark = S.mark()
      local doc = T.call1(T.opts(acct), "get_profiles", {
        filter = 'equals(email,"a+b&c@example.com")', ["fields[profile]"] = { "email", "first_name" },
        ["page[size]"] = 7 })
      assert.is_table(doc)
      local rec = T.since(mark, "get_profiles")[1]
      assert.equal('equals(email,"a+b&c@example.com")', S.query_value(rec.query, "filter"))
      assert.equal("email,first_name", S.query_value(rec.query, "fields[profile]"))
      assert.equal("7", S.query_value(rec.query, "page[size]"))
    end)
  end)

  describe("auth", function()
    it("sends an OAuth token as Bearer and a public key as company_id only", function()
      local mark = S.mark()
      assert.is_table((T.call1(T.opts(acct, "oauth"), "get_profiles")))
      local doc, r = T.call1(T.opts(acct, "public"), "create_client_event", event("pub-ngx@example.com"))
      assert.is_true(doc, T.cjson.encode(r))
      local recs = T.since(mark)
      assert.equal("Bearer ***", S.header(recs[1], "authorization"))
      assert.equal("create_client_event", recs[2].operation)
      assert.equal(acct.public_key, S.query_value(recs[2].query, "company_id"))
      assert.is_nil(S.header(recs[2], "authorization"))
    end)

    it("refuses locally what the core refuses, sending nothing", function()
      local mark = S.mark()
      -- a private key over plain http to a host that is not loopback
      local out = T.call({ api_key = acct.private_key, base_url = "http://example.com" }, {})
      assert.equal("refused", out.new_err.kind)
      -- a private operation with only a public key
      local _, r = T.call1(T.opts(acct, "public"), "get_profiles")
      assert.equal("refused", r.err.kind)
      assert.equal(mark, S.mark())
      assert.is_nil(r.err.text:find(acct.public_key .. "x", 1, true))
    end)

    it("passes the emulator's 401 and 403, never showing the key", function()
      local _, r = T.call1({ api_key = "pk_not_a_real_key_00000000000", base_url = emu.url }, "get_profiles")
      assert.equal(401, r.err.status)
      local narrow = emu.account { scopes = { "profiles:read" } }
      _, r = T.call1(T.opts(narrow), "create_event", event("scope@example.com"))
      assert.equal(403, r.err.status)
      assert.is_nil(r.err.text:find(narrow.private_key, 1, true))
    end)
  end)

  describe("revision", function()
    it("sends the per-client and per-call revision, refuses a malformed one locally", function()
      local mark = S.mark()
      assert.is_table((T.call1(T.opts(acct, nil, { revision = "2025-10-15" }), "get_profiles")))
      T.call1(T.opts(acct), "get_profiles", { revision = "2026-07-15.pre" })
      local recs = T.since(mark)
      assert.equal("2025-10-15", S.header(recs[1], "revision"))
      assert.equal("2026-07-15.pre", S.header(recs[2], "revision"))
      mark = S.mark()
      local _, r = T.call1(T.opts(acct), "get_profiles", { revision = "2026-13-01" })
      assert.equal("refused", r.err.kind)
      assert.equal(mark, S.mark())
    end)
  end)

  describe("errors", function()
    it("gives the JSON:API error fields of a 404 and a 400", function()
      local _, r = T.call1(T.opts(acct), "get_profile", { id = "01NOPE" })
      assert.equal(404, r.err.status)
      assert.equal("http", r.err.kind)
      assert.equal("get_profile", r.err.operation)
      assert.is_string(r.err.request_id)
      -- the server's 400 is under test: the local body check (which refuses it) is off
      _, r = T.call1(T.opts(acct, nil, { validate = false }), "create_event",
        { body = { data = { type = "event", attributes = {} } } })
      assert.equal(400, r.err.status)
      assert.is_string(r.err.pointer)
    end)

    it("gives a 429's Retry-After", function()
      emu.limits({ get_profiles = { burst = 1, steady = 100 } }, acct)
      -- retries off: the 429 itself is under test (spec/retry covers repeating it)
      local out = T.call(T.opts(acct, nil, ONCE), { { "get_profiles", {} }, { "get_profiles", {} } })
      assert.equal(200, out.results[1].status)
      assert.equal(429, out.results[2].err.status)
      assert.is_number(out.results[2].err.retry_after)
    end)

    it("raises programmer errors in the handler, naming them", function()
      local out = T.call(T.opts(acct), { { "get_profile", {} } })
      assert.matches("get_profile: parameter id: is required", out.raised)
    end)
  end)

  describe("pagination", function()
    it("follows next links over cosockets", function()
      local mark = S.mark()
      for i = 1, 5 do
        T.call1(T.opts(acct), "create_profile",
          { body = S.profile_body { email = "page" .. i .. "@example.com" } })
      end
      local status, out = T.request("POST", "/paginate",
        { client = T.opts(acct), op = "get_profiles", params = { ["page[size]"] = 2 } })
      assert.equal(200, status)
      assert.is_nil(out.raised)
      assert.is_nil(out.err)
      assert.equal(5, #out.items)
      assert.equal(3, out.pages)
      assert.equal(5 + 3 + 3, #T.since(mark))
    end)
  end)

  describe("connections", function()
    it("reuses one pooled keepalive connection for consecutive calls", function()
      local mark = S.mark()
      local calls = {}
      for i = 1, 5 do calls[i] = { "get_profiles", {} } end
      local out = T.call(T.opts(acct), calls)
      for i = 1, 5 do assert.equal(200, out.results[i].status) end
      local recs = T.since(mark, "get_profiles")
      assert.equal(5, #recs)
      for i = 2, 5 do assert.equal(recs[1].connection, recs[i].connection) end
    end)

    it("reads chunked bodies (Transfer-Encoding: chunked)", function()
      T.call1(T.opts(acct), "create_profile", { body = S.profile_body { email = "chunk@example.com" } })
      local doc, r = T.call1(T.opts(acct, nil, { base_url = T.url .. "/chunked" }), "get_profiles")
      assert.is_table(doc, T.cjson.encode(r))
      assert.equal("chunked", r.headers["transfer-encoding"])
      assert.equal(1, #doc.data)
      assert.equal("chunk@example.com", doc.data[1].attributes.email)
    end)

    it("says a body was cut short, and never pools that connection", function()
      emu.faults { { operation = "get_profiles", truncate = true, count = 1 } }
      local mark = S.mark()
      local out = T.call(T.opts(acct, nil, ONCE), { { "get_profiles", {} }, { "get_profiles", {} } })
      local e = out.results[1].err
      assert.equal("transport", e.kind)
      assert.equal("truncated", e.code)
      assert.is_true(e.sent)
      assert.equal(200, out.results[2].status)
      local recs = T.since(mark, "get_profiles")
      assert.equal(2, #recs)
      assert.are_not.equal(recs[1].connection, recs[2].connection)
    end)

    -- create_profile: a POST not safe to repeat (create_event is, with its unique_id)
    it("says a POST's connection was dropped before an answer, and does not repeat it", function()
      T.call1(T.opts(acct), "get_profiles")   -- leaves a pooled connection
      emu.faults { { operation = "create_profile", reset = "after", count = 1 } }
      local mark = S.mark()
      local _, r = T.call1(T.opts(acct), "create_profile",
        { body = S.profile_body { email = "reset@example.com" } })
      assert.equal("transport", r.err.kind)
      assert.is_true(r.err.code == "empty_reply" or r.err.code == "connection_reset", r.err.code)
      assert.is_true(r.err.sent)
      assert.equal(1, #T.since(mark, "create_profile"))
    end)

    it("repeats a GET once on a fresh connection when a pooled one was dropped", function()
      T.call1(T.opts(acct), "get_profiles")   -- leaves a pooled connection
      emu.faults { { operation = "get_profiles", reset = "before", count = 1 } }
      local mark = S.mark()
      local doc, r = T.call1(T.opts(acct), "get_profiles")
      assert.is_table(doc, T.cjson.encode(r))
      local recs = T.since(mark, "get_profiles")
      assert.equal(2, #recs)
      assert.equal(200, recs[2].status)
      assert.are_not.equal(recs[1].connection, recs[2].connection)
    end)

    it("times out reading an answer slower than the client's timeout", function()
      emu.faults { { operation = "get_profiles", delay_ms = 1500, count = 1 } }
      local _, r = T.call1(T.opts(acct, nil, { timeout = 0.3, retry = ONCE.retry }), "get_profiles")
      assert.equal("timeout", r.err.code)
      assert.is_true(r.err.sent)
      assert.matches("timed out waiting for the response", r.err.text)
      -- the held-back request is recorded when its delay ends: wait for it here
      assert.equal(1, #emu.wait_requests(acct, "get_profiles", 1))
    end)

    it("says it could not connect, nothing sent", function()
      local port = T.emu.url:match(":(%d+)$")
      local closed = tonumber(port) == 1 and 2 or 1
      local _, r = T.call1({ api_key = acct.private_key, base_url = "http://127.0.0.1:" .. closed },
        "get_profiles")
      assert.equal("connect_failed", r.err.code)
      assert.is_false(r.err.sent)
    end)
  end)

  describe("TLS", function()
    it("refuses a peer whose certificate it cannot verify, sending nothing", function()
      local mark = S.mark()
      local _, r = T.call1(T.opts(acct, nil, { base_url = T.tls_url }), "get_profiles")
      assert.equal("tls_failed", r.err.code)
      assert.is_false(r.err.sent)
      assert.matches("certificate verification failed", r.err.text)
      assert.matches("lua_ssl_trusted_certificate", r.err.text)
      assert.equal(mark, S.mark())
    end)

    it("talks to it where lua_ssl_trusted_certificate names its certificate", function()
      local mark = S.mark()
      local calls = { { "get_profiles", {} }, { "get_profiles", {} } }
      local out = T.call(T.opts(acct, nil, { base_url = T.tls_url }), calls, "/call-trusted")
      assert.equal(200, out.results[1].status, T.cjson.encode(out))
      assert.equal(200, out.results[2].status)
      assert.equal(2, #T.since(mark, "get_profiles"))
    end)
  end)

  describe("shared-dict limiter", function()
    local function limited(extra)
      local l = { store = "shdict", dict = "klaviyo_limits",
                  limits = { create_event = { burst = 1, steady = 100 } } }
      for k, v in pairs(extra or {}) do l[k] = v end
      return T.opts(acct, nil, { limiter = l, retry = { attempts = 1 } }) -- the 429s are under test
    end

    it("waits for its turn instead of drawing a 429", function()
      emu.limits({ create_event = { burst = 1, steady = 100 } }, acct)
      local calls = {}
      for i = 1, 3 do calls[i] = { "create_event", event("lim" .. i .. "@example.com") } end
      local out = T.call(T.opts(acct, nil, ONCE), calls)   -- no limiter: the second one is throttled
      assert.equal(429, out.results[2].err.status)
      local ok = emu.account()
      emu.limits({ create_event = { burst = 1, steady = 100 } }, ok)
      acct = ok
      local mark = S.mark()
      out = T.call(limited(), calls)
      for i = 1, 3 do assert.equal(202, out.results[i].status, T.cjson.encode(out.results[i])) end
      local recs = T.since(mark, "create_event")
      assert.equal(3, #recs)
      for i = 1, 3 do assert.equal(202, recs[i].status) end
    end)

    it("records each send in the shared dict, and a 429's Retry-After blocks the operation", function()
      local name = "spec-block-" .. acct.account_id
      emu.faults { { operation = "create_event", status = 429, retry_after = 30, count = 1 } }
      local out = T.call(limited { account = name }, {
        { "create_event", event("block1@example.com") }, { "get_profiles", {} } })
      assert.equal(429, out.results[1].err.status)
      assert.equal(200, out.results[2].status)   -- other operations are not held back
      local _, state = T.request("GET", "/limiter?key=" .. name .. "/create_event")
      assert.is_number(state.blocked)
      assert.is_true(state.blocked > state.now + 20 * 1e6, T.cjson.encode(state))
      assert.equal(1, state.head)                 -- the 429'd send was recorded
      _, state = T.request("GET", "/limiter?key=" .. name .. "/get_profiles")
      assert.is_nil(state.blocked)
      assert.equal(1, state.head)
    end)

    it("names its keys as the curl transport does: the account option, else a hash of the key", function()
      local fresh = emu.account()
      local name = "spec-account-" .. fresh.account_id
      local shared = { store = "shdict", dict = "klaviyo_limits" }
      local out = T.call(T.opts(fresh, nil, { limiter = shared, account = name }), { { "get_profiles", {} } })
      assert.equal(200, out.results[1].status, T.cjson.encode(out))
      local _, state = T.request("GET", "/limiter?key=" .. name .. "/get_profiles")
      assert.equal(1, state.head, T.cjson.encode(state))
      out = T.call(T.opts(fresh, nil, { limiter = shared }), { { "get_profiles", {} } })
      assert.equal(200, out.results[1].status)
      local key = require("klaviyo.core").account_key(fresh.private_key)
      _, state = T.request("GET", "/limiter?key=" .. key .. "/get_profiles")
      assert.equal(1, state.head, T.cjson.encode(state))
    end)

    it("lowers its belief to the server's RateLimit-Remaining when someone else sends", function()
      local name = "spec-observe-" .. acct.account_id
      emu.limits({ create_event = { burst = 100, steady = 8 } }, acct)
      for i = 1, 5 do   -- another sender, not using the dict, on the same account
        assert.equal(202, (emu.api(acct, "POST", "/api/events",
          { body = S.event_body("other" .. i .. "@example.com") })))
      end
      local opts = limited { account = name, limits = { create_event = { burst = 100, steady = 8 } } }
      local out = T.call(opts, { { "create_event", event("mine1@example.com") } })
      assert.equal(202, out.results[1].status)
      assert.equal(2, out.results[1].ratelimit.remaining)
      local _, state = T.request("GET", "/limiter?key=" .. name .. "/create_event")
      assert.equal(2, state.cap_left, T.cjson.encode(state))   -- not the 7 it would believe
      assert.is_true(state.cap_until > state.now)
      out = T.call(opts, { { "create_event", event("mine2@example.com") },
                           { "create_event", event("mine3@example.com") } })
      assert.equal(202, out.results[2].status)
      _, state = T.request("GET", "/limiter?key=" .. name .. "/create_event")
      assert.equal(0, state.cap_left)
    end)

    it("refuses bad limiter options with a clear error", function()
      local out = T.call(limited { dict = "no_such_dict" }, {})
      assert.matches("no lua_shared_dict named no_such_dict", out.raised)
      out = T.call(limited { store = "memcached" }, {})
      assert.matches("limiter store memcached is not available with the ngx transport", out.raised)
      out = T.call(limited { safety = 3 }, {})
      assert.matches("klaviyo.new: limiter: option safety must be a number in %(0, 1%]", out.raised)
      out = T.call(limited { limits = { no_such_op = { burst = 1 } } }, {})
      assert.matches("limiter limits: unknown operation no_such_op", out.raised)
      out = T.call(limited { limits = { create_event = { burst = -1 } } }, {})
      assert.matches("limiter limits.create_event: limit burst must be a whole number >= 0, got %-1",
        out.raised)
      out = T.call(limited { limits = { create_event = { rate = 1 } } }, {})
      assert.matches("limiter limits.create_event: unknown limit rate", out.raised)
    end)
  end)
end)
