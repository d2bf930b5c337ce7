-- Retries in the send path against the emulator's fault injection: what is repeated, what is
-- not, and that a repeated create_event is recorded once (unique_id) and fires its flow once.
local S = require "retry.support"
local cjson = require "cjson"
local emu, klaviyo = S.emu, S.klaviyo
local live_flow = require "helpers.live_flow"

local function profile(email)
  return { data = { type = "profile", attributes = { email = email } } }
end

describe("retries", function()
  after_each(function() emu.faults(nil) end)

  it("repeat a 503 and return the success", function()
    local c, acct = S.client()
    emu.faults { { operation = "get_lists", status = 503, count = 1 } }
    local doc = assert(c:call("get_lists", {}))
    assert.is_table(doc.data)
    local reqs = S.requests(acct, "get_lists")
    assert.equal(2, #reqs)
    assert.equal(503, reqs[1].status)
    assert.equal(200, reqs[2].status)
    local st = c:stats().get_lists
    assert.same({ requests = 1, attempts = 2, retries = 1, throttled = 0 },
      { requests = st.requests, attempts = st.attempts, retries = st.retries, throttled = st.throttled })
    assert.same({}, st.errors)
    c:close()
  end)

  it("are off for a call with retry = {attempts = 1}", function()
    local c, acct = S.client()
    emu.faults { { operation = "get_lists", status = 503, count = 1 } }
    local ok, err = c:call("get_lists", {}, { retry = { attempts = 1 } })
    assert.is_nil(ok)
    assert.equal(503, err.status)
    assert.equal(1, #S.requests(acct, "get_lists"))
    assert.equal(1, c:stats().get_lists.errors[503])
    c:close()
  end)

  it("stop when the attempts are used up and report the last failure", function()
    local c, acct = S.client { retry = { attempts = 3, base = 0.01, cap = 0.05 } }
    emu.faults { { operation = "get_lists", status = 503, count = 5 } }
    local ok, err = c:call("get_lists", {})
    assert.is_nil(ok)
    assert.equal(503, err.status)
    assert.equal(3, #S.requests(acct, "get_lists"))
    local st = c:stats().get_lists
    assert.equal(2, st.retries)
    assert.equal(1, st.errors[503])
    c:close()
  end)

  it("repeat create_event after a reset: one event recorded, one flow run", function()
    local c, acct = S.client()
    emu.limits({ create_flow = "off" }, acct)
    local metric = "Retry Reset"
    local fid, mid = live_flow(c, metric, "On reset")

    -- a new client: its first request opens a connection, so the repeat is this library's,
    -- not libcurl's own resend on a reused connection that died
    local c2 = S.client(nil, acct)
    emu.faults { { operation = "create_event", reset = "after", count = 1 } }
    local params = { body = S.event("reset@example.com", metric) }
    assert(c2:call("create_event", params))
    assert.is_nil(params.body.data.attributes.unique_id) -- the caller's table is not changed

    local reqs = S.requests(acct, "create_event")
    assert.equal(3, #reqs)                        -- seed, the reset one, the repeat
    assert.is_true(reqs[2].fault)                 -- processed, then the connection reset
    local u1 = cjson.decode(reqs[2].request_body).data.attributes.unique_id
    local u2 = cjson.decode(reqs[3].request_body).data.attributes.unique_id
    assert.is_string(u1)
    assert.equal(u1, u2)

    local evs = assert(c:call("get_events", { filter = klaviyo.filter.equals("metric_id", mid) }))
    assert.equal(2, #evs.data)                    -- the seed and one event, not two
    local runs = {}
    for _, r in ipairs(emu.flow_runs(acct)) do
      if r.flow_id == fid then runs[#runs + 1] = r end
    end
    assert.equal(1, #runs)
    assert.equal(1, c2:stats().create_event.retries)
    c:close()
    c2:close()
  end)

  it("do not repeat create_profile after a timeout (it may have been created)", function()
    local c, acct = S.client { timeout = 0.5 }
    emu.faults { { operation = "create_profile", delay_ms = 1500, count = 1 } }
    local ok, err = c:call("create_profile", { body = profile("slow@example.com") })
    assert.is_nil(ok)
    assert.equal("timeout", err.code)
    -- the emulator records the request once its delay is over; no second copy comes after it
    assert.equal(1, #emu.wait_requests(acct, "create_profile", 1))
    S.socket.sleep(0.5)
    assert.equal(1, #S.requests(acct, "create_profile"))
    local st = c:stats().create_profile
    assert.equal(0, st.retries)
    assert.equal(1, st.errors["transport:timeout"])
    c:close()
  end)

  it("never let libcurl resend create_profile when its connection dies after the server acted",
    function()
    local c, acct = S.client()
    -- warm a connection, so libcurl has one to reuse
    assert(c:call("get_lists", {}))
    emu.faults { { operation = "create_profile", reset = "after", count = 1 } }
    local ok, err = c:call("create_profile", { body = profile("reused@example.com") })
    assert.is_nil(ok)
    assert.equal("transport", err.kind)
    -- one copy reached the emulator and created the profile; no second copy drew a 409
    assert.equal(1, #S.requests(acct, "create_profile"))
    c:close()
  end)

  it("repeat a GET after a timeout (safe to repeat)", function()
    local c, acct = S.client { timeout = 0.5 }
    emu.faults { { operation = "get_lists", delay_ms = 1500, count = 1 } }
    assert(c:call("get_lists", {}))
    assert.equal(2, #emu.wait_requests(acct, "get_lists", 2))
    c:close()
  end)

  it("repeat a POST with {idempotent = true} after a timeout", function()
    local c, acct = S.client { timeout = 0.5 }
    emu.faults { { operation = "create_list", delay_ms = 1500, count = 1 } }
    local body = { data = { type = "list", attributes = { name = "Idem" } } }
    local ok, err = c:call("create_list", { body = body }, { idempotent = true })
    assert.is_table(ok, err)
    assert.equal(2, #emu.wait_requests(acct, "create_list", 2))
    c:close()
  end)

  it("honour Retry-After: 3 (the second attempt comes at least 3 s later)", function()
    local c, acct = S.client()
    emu.faults { { operation = "get_metrics", status = 429, retry_after = 3, count = 1 } }
    local t0 = S.socket.gettime()
    assert(c:call("get_metrics", {}))
    local elapsed = S.socket.gettime() - t0
    local reqs = S.requests(acct, "get_metrics")
    assert.equal(2, #reqs)
    assert.equal(429, reqs[1].status)
    assert.equal(200, reqs[2].status)
    assert.is_true(elapsed >= 3, "repeated after " .. elapsed .. " s")
    local st = c:stats().get_metrics
    assert.equal(1, st.throttled)
    assert.is_true(st.backoff >= 3)
    c:close()
  end)
end)
