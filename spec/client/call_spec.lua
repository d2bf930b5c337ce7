-- client:call against the emulator: decoded documents, empty 202s, the response meta, and
-- programmer errors that raise before anything is sent.
local S = require "client.support"
local klaviyo = S.klaviyo


-- pcall(fn, ...) must fail with a message matching `pattern`.
local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, err)
end
describe("klaviyo.new", function()
  it("has a version, the operation table, the filter builder and markers", function()
    assert.is_string(klaviyo._VERSION)
    assert.is_table(klaviyo.operations.create_event)
    assert.is_function(klaviyo.filter.equals)
    assert.equal("null", tostring(klaviyo.null))
    local a = klaviyo.array()
    assert.equal("array", getmetatable(a).__jsontype)
  end)

  it("raises on unknown options and wrong types, naming them", function()
    raises("unknown option apikey", klaviyo.new, { api_key = "pk_x", apikey = "pk_y" })
    raises("option api_key must be a string, got number", klaviyo.new, { api_key = 12 })
    raises("option timeout must be a number", klaviyo.new, { api_key = "pk_x", timeout = "5" })
    raises("positive number of seconds", klaviyo.new, { api_key = "pk_x", timeout = -1 })
    raises("option refresh must be a function", klaviyo.new, { access_token = "t", refresh = "yes" })
    raises("refresh needs access_token", klaviyo.new, { api_key = "pk_x", refresh = function() end })
    raises("not both", klaviyo.new, { api_key = "pk_x", access_token = "t" })
    raises("expected a table of options", klaviyo.new, "pk_x")
    raises("klaviyo.array: expected a table", klaviyo.array, 3)
    raises("already has a metatable", klaviyo.array, setmetatable({}, {}))
  end)
end)

describe("client:call", function()
  local client, acct
  before_each(function() client, acct = S.client() end)
  after_each(function() client:close() end)

  it("returns true for an empty 202 and the response meta second", function()
    local ok, res = client:call("create_event", { body = S.event_body("call@example.com") })
    assert.is_true(ok)
    assert.equal(202, res.status)
    assert.is_table(res.headers)
  end)

  it("returns the decoded document with ratelimit figures", function()
    local doc, res = client:call("create_profile", {
      body = S.profile_body { email = "doc@example.com", first_name = "Zoë" } })
    assert.is_table(doc, tostring(res))
    assert.equal("profile", doc.data.type)
    assert.equal("Zoë", doc.data.attributes.first_name)
    assert.equal(201, res.status)
    assert.is_table(res.ratelimit)
    assert.is_number(res.ratelimit.limit)
    local got = assert(client:call("get_profile", { id = doc.data.id }))
    assert.equal("doc@example.com", got.data.attributes.email)
  end)

  it("decodes nulls as klaviyo.json_null, without touching the caller's cjson", function()
    local cjson = require "cjson"
    local doc = assert(client:call("create_profile", {
      body = S.profile_body { email = "nulls@example.com" } }))
    assert.equal(klaviyo.json_null, doc.data.attributes.phone_number)
    assert.equal(cjson.null, klaviyo.json_null)
  end)

  it("sends klaviyo.null as null and klaviyo.array() as []", function()
    local doc = assert(client:call("create_profile", {
      body = S.profile_body { email = "arr@example.com", first_name = "A",
        properties = { tags = klaviyo.array(), gone = klaviyo.null } } }))
    local rec = S.last()
    assert.equal("create_profile", rec.operation)
    assert.matches('"tags":%[%]', rec.request_body)
    assert.matches('"gone":null', rec.request_body)
    assert.is_string(doc.data.id)
  end)

  it("raises on unknown operations and parameters, and sends nothing", function()
    local mark = S.mark()
    raises('unknown operation "create_evnt"', client.call, client, "create_evnt", {})
    raises("get_profiles: parameter page%[size%]: 1000 is above the maximum 100",
      client.call, client, "get_profiles", { ["page[size]"] = 1000 })
    raises("get_profile: parameter id: is required", client.call, client, "get_profile", {})
    raises("create_event: parameter body: .*NaN",
      client.call, client, "create_event", { body = { data = { x = 0 / 0 } } })
    assert.equal(mark, S.mark())
  end)

  it("reports the raising line as the caller's", function()
    raises("call_spec.lua:%d+: klaviyo: unknown operation", function() client:call("nope") end)
    -- a body only the core's encoder refuses is blamed on the caller's line too
    raises("call_spec.lua:%d+: klaviyo: create_event: parameter body: data%.f: function cannot",
      function() client:call("create_event", { body = { data = { f = print } } }) end)
  end)

  it("accepts a pre-encoded JSON body", function()
    local body = '{"data":{"type":"profile","attributes":{"email":"raw@example.com"}}}'
    local doc = assert(client:call("create_profile", { body = body }))
    assert.equal("raw@example.com", doc.data.attributes.email)
    assert.equal(body, S.last().request_body)
  end)

  it("gives a decode error for a 2xx body that is not JSON", function()
    if not S.fault_body_supported() then
      return pending("the emulator's faults do not take a raw `body` yet")
    end
    S.emu.faults { { operation = "get_profiles", status = 200, body = "<html>ok</html>", count = 1 } }
    finally(function() S.emu.faults(nil) end)
    local doc, err = client:call("get_profiles", {})
    assert.is_nil(doc)
    assert.equal("decode", err.kind)
    assert.equal(200, err.status)
    assert.matches("get_profiles: HTTP 200 %- response body is not JSON", tostring(err))
  end)

  it("passes the timeout option to the transport", function()
    local c = S.client(nil, { timeout = 0.3 }, acct)
    S.emu.faults { { operation = "get_lists", delay_ms = 2000, count = 1 } }
    finally(function() S.emu.faults(nil) end)
    local ok, err = c:call("get_lists", {}, { retry = { attempts = 1 } })
    assert.is_nil(ok)
    assert.equal("transport", err.kind)
    assert.equal("timeout", err.code)
    c:close()
    -- the held-back request is recorded when its delay ends: wait for it here, not in a later test
    assert.equal(1, #S.emu.wait_requests(acct, "get_lists", 1))
  end)

  it("sends the user_agent option", function()
    local c = S.client(nil, { user_agent = "my-app/1.2 lua-klaviyo" }, acct)
    assert.is_table((c:call("get_lists", {})))
    assert.equal("my-app/1.2 lua-klaviyo", S.header(S.last(), "user-agent"))
    c:close()
  end)

  -- client:call refills one request table per operation instead of making one per call: no
  -- parameter, body or option of a call may reach the next call of the same operation.
  it("sends nothing of an earlier call of the same operation", function()
    local mark = S.mark()
    assert.is_table((client:call("get_profiles", { ["page[size]"] = 3,
      ["fields[profile]"] = { "email" }, filter = klaviyo.filter.equals("email", "x@example.com") })))
    assert.is_table((client:call("get_profiles", {})))
    local recs = S.since(mark)
    assert.equal(2, #recs)
    assert.equal("3", S.query_value(recs[1].query, "page[size]"))
    assert.is_nil(S.query_value(recs[2].query, "page[size]"))
    assert.is_nil(S.query_value(recs[2].query, "filter"))
    assert.is_nil(S.query_value(recs[2].query, "fields[profile]"))
    -- a per-call retry limit holds for that call only
    S.emu.faults { { operation = "get_lists", status = 503, count = 2 } }
    assert.is_nil((client:call("get_lists", {}, { retry = { attempts = 1 } })))
    assert.is_table((client:call("get_lists", {})))   -- the second 503 is retried
  end)

  it("keeps no reference to a call's body once it returned", function()
    local weak = setmetatable({}, { __mode = "k" })
    do
      local body = S.event_body("weak@example.com", "Weak Ref")
      weak[body] = true
      assert.is_true((client:call("create_event", { body = body })))
    end
    collectgarbage(); collectgarbage()
    assert.is_nil(next(weak))
  end)

  it("counts each plain call as one request and one attempt", function()
    local c = S.client(nil, nil, acct)
    for _ = 1, 3 do assert.is_table((c:call("get_metrics", {}))) end
    local st = c:stats().get_metrics
    assert.same({ requests = 3, attempts = 3, retries = 0, throttled = 0, waited = 0, backoff = 0 },
      { requests = st.requests, attempts = st.attempts, retries = st.retries,
        throttled = st.throttled, waited = st.waited, backoff = st.backoff })
    c:close()
  end)

  it("close is safe to repeat", function()
    assert.is_true(client:close())
    assert.is_true(client:close())
    client = S.client(nil, nil, acct)
  end)
end)
