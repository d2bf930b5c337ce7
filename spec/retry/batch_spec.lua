-- client:batch: many calls at once over libcurl's multi interface, results in order, through
-- the same limiter and retry rules as client:call.
local S = require "retry.support"
local emu = S.emu

local function profile(email)
  return { data = { type = "profile", attributes = { email = email } } }
end

describe("client:batch", function()
  after_each(function() emu.faults(nil) end)

  it("returns each result or error in the order of the requests", function()
    local c, acct = S.client { retry = { attempts = 1 } }
    local reqs = {}
    for i = 1, 12 do
      reqs[i] = { "create_profile", { body = profile(("batch%02d@example.com"):format(i)) } }
    end
    -- the server's 400 for one item is under test: the local body check is off for it
    reqs[5] = { "create_profile", { body = profile("not an email") }, { validate = false } }
    local out = c:batch(reqs, { concurrency = 4 })
    assert.equal(12, #out)
    for i = 1, 12 do
      local doc, err = out[i][1], out[i][2]
      if i == 5 then
        assert.is_nil(doc)
        assert.equal(400, err.status)
        assert.equal("create_profile", err.operation)
      else
        assert.is_table(doc, tostring(err))
        assert.equal(("batch%02d@example.com"):format(i), doc.data.attributes.email)
        assert.equal(201, err.status) -- second value of a success: the response
      end
    end
    local st = c:stats().create_profile
    assert.equal(12, st.requests)
    assert.equal(1, st.errors[400])
    -- several connections carried them
    local conns = {}
    for _, r in ipairs(S.requests(acct, "create_profile")) do conns[r.connection] = true end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.is_true(n > 1)
    c:close()
  end)

  -- The connections of a batch outlive it: the next batch and the next call go over them,
  -- with no new connection (and over TLS, no new handshake).
  it("reuses its connections in the next batch and the next call", function()
    local c, acct = S.client { retry = { attempts = 1 } }
    local function conns_of(n)
      local reqs = {}
      for i = 1, 4 do reqs[i] = { "get_lists", {} } end
      for _, r in ipairs(c:batch(reqs, { concurrency = 4 })) do assert.is_table(r[1], tostring(r[2])) end
      local seen, all = {}, S.requests(acct, "get_lists")
      assert.equal(n, #all)
      for i = n - 3, n do seen[all[i].connection] = true end
      return seen
    end
    local first, second = conns_of(4), conns_of(8)
    for conn in pairs(second) do assert.is_true(first[conn], "a new connection: " .. tostring(conn)) end
    assert.is_table((c:call("get_lists", {})))
    local all = S.requests(acct, "get_lists")
    assert.is_true(first[all[#all].connection], "the call after the batches opened a connection")
    c:close()
  end)

  it("retries inside the batch", function()
    local c, acct = S.client()
    emu.faults { { operation = "get_lists", status = 503, count = 2 } }
    local reqs = {}
    for i = 1, 6 do reqs[i] = { "get_lists", {} } end
    local out = c:batch(reqs, { concurrency = 3 })
    for i = 1, 6 do assert.is_table(out[i][1], tostring(out[i][2])) end
    assert.equal(8, #S.requests(acct, "get_lists"))
    assert.equal(2, c:stats().get_lists.retries)
    c:close()
  end)

  it("waits for the limiter: a burst of get_flows (3/s) at concurrency 6 draws no 429", function()
    local c, acct = S.client { retry = { attempts = 1 } }
    local reqs = {}
    for i = 1, 7 do reqs[i] = { "get_flows", {} } end
    local out = c:batch(reqs, { concurrency = 6 })
    for i = 1, 7 do assert.is_table(out[i][1], tostring(out[i][2])) end
    assert.equal(0, S.count_status(acct, "get_flows", 429))
    assert.is_true(c:stats().get_flows.waited > 0)
    c:close()
  end)

  it("gives every event of a batch its unique_id", function()
    local c, acct = S.client()
    local out = c:batch({ { "create_event", { body = S.event("b1@example.com") } },
                          { "create_event", { body = S.event("b2@example.com") } } })
    assert.is_true(out[1][1])
    local ids = {}
    for _, r in ipairs(S.requests(acct, "create_event")) do
      ids[#ids + 1] = require("cjson").decode(r.request_body).data.attributes.unique_id
    end
    assert.equal(2, #ids)
    assert.is_string(ids[1])
    assert.are_not.equal(ids[1], ids[2])
    c:close()
  end)

  it("raises on a bad request before sending anything", function()
    local c, acct = S.client()
    assert.has_error(function()
      c:batch({ { "get_lists", {} }, { "no_such_operation", {} } })
    end)
    assert.has_error(function() c:batch({ { "get_lists", {} } }, { concurrency = 0 }) end)
    -- a body only the core's encoder refuses (the third request): named, and nothing sent
    local ok, err = pcall(function()
      c:batch({ { "get_lists", {} }, { "create_event", { body = S.event("e@x.io") } },
                { "create_profile", { body = { data = { n = 0 / 0 } } } } })
    end)
    assert.is_false(ok)
    assert.matches("batch_spec.lua:%d+: klaviyo: create_profile: parameter body: data%.n: NaN", err)
    assert.equal(0, #S.requests(acct, "get_lists"))
    assert.equal(0, #S.requests(acct, "create_event"))
    assert.same({}, c:batch({}))
    c:close()
  end)
end)
