-- Limits shared by all workers: two nginx workers, one lua_shared_dict limiter, a burst of
-- concurrent /event requests spread over both workers (listen ... reuseport) against an
-- emulator account whose limit is as tight as the client's: every event is accepted, no 429.
local T = require "ngx.support"
local S, emu = T.S, T.emu

describe("ngx transport, shared-dict limiter across workers", function()
  setup(function() T.start { workers = 2 } end)
  teardown(function() T.stop() end)

  -- n concurrent GET /event requests from separate processes; their answers' bodies.
  local function concurrent_events(n)
    local f = io.popen(string.format(
      "for i in $(seq 1 %d); do curl -s --max-time 60 '%s/event?n='$i & done; wait", n, T.url))
    local out = f:read("*a")
    f:close()
    local answers = {}
    for line in out:gmatch("[^\n]+") do answers[#answers + 1] = T.cjson.decode(line) end
    return answers
  end

  it("keeps both workers' sends together under the limit", function()
    local acct = emu.account()
    emu.limits({ create_event = { burst = 3, steady = 100 } }, acct)
    local status, _, raw = T.request("POST", "/configure", T.opts(acct, nil, { limiter = {
      store = "shdict", dict = "klaviyo_limits", limits = { create_event = { burst = 3, steady = 100 } } } }))
    assert.equal(200, status, raw)
    local mark = S.mark()
    local answers = concurrent_events(12)
    assert.equal(12, #answers)
    local workers, nworkers = {}, 0
    for _, a in ipairs(answers) do
      assert.is_true(a.ok, T.cjson.encode(a))
      if not workers[a.worker] then workers[a.worker] = true; nworkers = nworkers + 1 end
    end
    assert.equal(2, nworkers)   -- both workers sent: the dict, not one worker, kept the limit
    local recs = T.since(mark, "create_event")
    assert.equal(12, #recs)
    for _, r in ipairs(recs) do assert.equal(202, r.status) end
  end)
end)
