-- Pure parts of the send path: which calls are safe to repeat, unique_ids for events, the
-- retry rule as the core exposes it (core.retry_decide, fixed random numbers), option checks.
local policy = require "klaviyo.policy"
local core = require "klaviyo.core"
local klaviyo = require "klaviyo"

local function event(extra)
  local attrs = { metric = { data = { type = "metric", attributes = { name = "M" } } } }
  for k, v in pairs(extra or {}) do attrs[k] = v end
  return { body = { data = { type = "event", attributes = attrs } } }
end

describe("policy.unique_ids", function()
  it("says a create_event body with an attributes table will carry a unique_id", function()
    assert.is_true(policy.unique_ids("create_event", event()))
    assert.is_true(policy.unique_ids("create_event", event { unique_id = "mine" }))
    assert.is_false(policy.unique_ids("create_event", { body = { data = { type = "event" } } }))
    assert.is_false(policy.unique_ids("create_event", {}))
  end)

  it("checks every event of a bulk_create_events job", function()
    local function params(second)
      return { body = { data = { type = "event-bulk-create-job", attributes = {
        ["events-bulk-create"] = { data = { { type = "event-bulk-create", attributes = {
          events = { data = { { type = "event", attributes = {} }, second } } } } } } } } } }
    end
    assert.is_true(policy.unique_ids("bulk_create_events", params({ type = "event", attributes = {} })))
    assert.is_false(policy.unique_ids("bulk_create_events", params({ type = "event" })))
    assert.is_false(policy.unique_ids("bulk_create_events", params("not an event")))
  end)

  it("leaves a body given as JSON text alone (then not safe by itself)", function()
    local ok = policy.unique_ids("create_event", { body = '{"data":{}}' })
    assert.is_false(ok)
    assert.is_false(policy.safe("create_event", "POST", ok, false))
    assert.is_true(policy.safe("create_event", "POST", ok, true))
  end)
end)

describe("the core's unique_id stamping (c:build, no network)", function()
  local cjson = require "cjson"
  local c = assert(core.new { base_url = "http://127.0.0.1:9", api_key = "pk_unit_key" })
  local function build(op, path, body)
    return cjson.decode(assert(c:build { operation = op, method = "POST", path = path,
                                         unique_ids = true, body = body }).body)
  end

  it("writes a unique_id into a create_event body's bytes only, new on every build", function()
    local params = event()
    local a = build("create_event", "/api/events", params.body)
    local b = build("create_event", "/api/events", params.body)
    local uuid = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
    assert.matches(uuid, a.data.attributes.unique_id)
    assert.matches(uuid, b.data.attributes.unique_id)
    assert.are_not.equal(a.data.attributes.unique_id, b.data.attributes.unique_id)
    assert.is_nil(params.body.data.attributes.unique_id)   -- the caller's table is untouched
    assert.equal("M", a.data.attributes.metric.data.attributes.name)
  end)

  it("keeps the caller's unique_id, and stamps nothing without unique_ids", function()
    assert.equal("mine", build("create_event", "/api/events", event { unique_id = "mine" }.body)
      .data.attributes.unique_id)
    local plain = cjson.decode(assert(c:build { operation = "create_event", method = "POST",
      path = "/api/events", body = event().body }).body)
    assert.is_nil(plain.data.attributes.unique_id)
  end)

  it("gives every event of a bulk_create_events job one", function()
    local function entry(uid)
      return { type = "event-bulk-create", attributes = {
        profile = { data = { type = "profile", attributes = { email = "a@b.c" } } },
        events = { data = { { type = "event", attributes = { unique_id = uid } },
                            { type = "event", attributes = {} } } } } }
    end
    local body = { data = { type = "event-bulk-create-job", attributes = {
      ["events-bulk-create"] = { data = { entry("x1"), entry(nil) } } } } }
    local doc = build("bulk_create_events", "/api/event-bulk-create-jobs", body)
    local seen, n = {}, 0
    for _, e in ipairs(doc.data.attributes["events-bulk-create"].data) do
      assert.is_nil(e.attributes.unique_id)           -- only the events, not the entries
      assert.is_nil(e.attributes.profile.data.attributes.unique_id)
      for _, ev in ipairs(e.attributes.events.data) do
        assert.is_string(ev.attributes.unique_id)
        assert.is_nil(seen[ev.attributes.unique_id])
        seen[ev.attributes.unique_id] = true
        n = n + 1
      end
    end
    assert.equal(4, n)
    assert.is_true(seen.x1)
    local orig = body.data.attributes["events-bulk-create"].data
    assert.is_nil(orig[1].attributes.events.data[2].attributes.unique_id)
    assert.is_nil(orig[2].attributes.events.data[1].attributes.unique_id)
  end)

  it("reports a body that cannot be encoded by its path and sends nothing", function()
    local res, err = c:request { operation = "create_event", method = "POST", path = "/api/events",
                                 body = { data = { attributes = { value = 0 / 0 } } } }
    assert.is_nil(res)
    assert.equal("encode", err.kind)
    assert.equal("invalid_body", err.code)
    assert.matches("data%.attributes%.value: NaN", err.message)
  end)
end)

describe("policy.safe", function()
  it("knows what may be repeated", function()
    assert.is_true(policy.safe("get_profiles", "GET"))
    assert.is_true(policy.safe("update_profile", "PATCH"))
    assert.is_true(policy.safe("delete_list", "DELETE"))
    assert.is_true(policy.safe("create_event", "POST", true))
    assert.is_true(policy.safe("bulk_create_events", "POST", true))
    assert.is_true(policy.safe("create_or_update_profile", "POST"))
    for _, op in ipairs({ "bulk_subscribe_profiles", "bulk_unsubscribe_profiles",
                          "bulk_suppress_profiles", "bulk_unsuppress_profiles" }) do
      assert.is_true(policy.safe(op, "POST"), op)
    end
    assert.is_false(policy.safe("create_profile", "POST"))
    assert.is_false(policy.safe("create_list", "POST"))
    assert.is_true(policy.safe("create_list", "POST", false, true))
  end)
end)

describe("core.retry_decide", function()
  local function d(t) return core.retry_decide(t) end
  it("always repeats 429, 503 and failures before sending", function()
    assert.equal(0.25, (d { status = 503, random = 0.5, base = 0.5 }))
    assert.is_number((d { status = 429, random = 0 }))
    assert.is_number((d { failure = "not_sent", random = 0 }))
  end)
  it("repeats 500/502/504/524 and maybe-sent failures only when safe", function()
    for _, st in ipairs({ 500, 502, 504, 524 }) do
      assert.is_false((d { status = st, random = 0 }))
      assert.is_number((d { status = st, random = 0, safe = true }))
    end
    local no, why = d { failure = "maybe_sent", random = 0 }
    assert.is_false(no)
    assert.matches("not safe", why)
    assert.is_number((d { failure = "maybe_sent", random = 0, safe = true }))
  end)
  it("never repeats other statuses", function()
    assert.is_false((d { status = 400, random = 0, safe = true }))
    assert.is_false((d { status = 409, random = 0, safe = true }))
  end)
  it("backs off with full jitter and never before Retry-After", function()
    assert.equal(2, (d { status = 503, attempt = 3, random = 0.5, base = 1, cap = 100 })) -- 0.5 * 4
    assert.equal(5, (d { status = 503, attempt = 9, attempts = 20, random = 0.5, base = 1, cap = 10 }))
    assert.equal(3, (d { status = 429, retry_after = 3, random = 0.1 }))
  end)
  it("stops when attempts or time are used up", function()
    local no, why = d { status = 503, attempt = 4, attempts = 4, random = 0 }
    assert.is_false(no)
    assert.equal("attempts used up", why)
    no, why = d { status = 429, retry_after = 30, elapsed = 40, max_time = 60, random = 0 }
    assert.is_false(no)
    assert.matches("Retry%-After", why)
  end)
end)

describe("klaviyo.new checks the send-path options", function()
  local base = { base_url = "http://127.0.0.1:1", api_key = "pk_x" }
  local function new(extra)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(extra) do o[k] = v end
    return klaviyo.new(o)
  end
  it("refuses bad retry, limits and limiter options", function()
    assert.has_error(function() new { retry = { attempts = 0 } } end)
    assert.has_error(function() new { retry = { tries = 2 } } end)
    assert.has_error(function() new { limits = { no_such_op = { burst = 1 } } } end)
    assert.has_error(function() new { limits = { create_event = { hourly = 1 } } } end)
    assert.has_error(function() new { limits = { create_event = { burst = -1 } } } end)
    assert.has_error(function() new { limiter = { store = "memcached" } } end)
    assert.has_error(function() new { limiter = { safety = 1.5 } } end)
    assert.has_error(function() new { limiter = true } end)
  end)
  it("accepts the documented forms", function()
    assert.is_table(new { limiter = false })
    assert.is_table(new { limiter = { store = "local", safety = 0.9 } })
    assert.is_table(new { limits = { create_event = { burst = 10, steady = 100 } },
                          retry = { attempts = 2, max_time = 5, base = 0.1, cap = 1 } })
  end)
  it("refuses bad per-call options", function()
    local c = new {}
    assert.has_error(function() c:call("get_lists", {}, { retry = { base = 1 } }) end)
    assert.has_error(function() c:call("get_lists", {}, { idempotent = "yes" }) end)
    assert.has_error(function() c:call("get_lists", {}, { later = true }) end)
  end)
end)
