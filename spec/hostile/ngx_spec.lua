-- The hostile catalogue (spec/hostile/catalogue.lua) through the cosocket transport: every
-- case is called inside nginx (the test bed's /call and /paginate, LuaJIT, cosockets) against
-- the hostile server, and its result checked against the case's expectation. Cases whose
-- input cannot travel as JSON to the test bed (NaN, cycles, functions) say so and are left to
-- the libcurl runner, which goes through the same Lua and C layers.
local T = require "ngx.support"
local S = require "hostile.support"
local socket = require "socket"
local http = require "socket.http"

-- The result of one case as support.check reads it.
local function run(case, url)
  local opts = S.client_opts(case, url)
  local op, params = S.call_of(case)
  local t0 = socket.gettime()
  local res = {}
  if case.pages then
    local status, out, raw = T.request("POST", "/paginate", { client = opts, op = op, params = params })
    assert(status == 200 and out, "POST /paginate: " .. tostring(status) .. " " .. tostring(raw))
    if out.raised then res.raised = out.raised
    elseif out.err then res.err = out.err
    else res.ok = true end
  else
    local calls = { { op, params } }
    if case.twice then calls[2] = calls[1] end
    local out = T.call(opts, calls)
    if out.raised then res.raised = out.raised
    elseif out.new_err then res.err = out.new_err
    else
      local r = out.results[#calls]
      if r.err then res.err = r.err else res.ok = true end
    end
  end
  res.elapsed = socket.gettime() - t0
  return res
end

describe("hostile catalogue, cosocket transport in nginx", function()
  local url, old_timeout
  setup(function()
    T.start()
    url = S.start()
    old_timeout = http.TIMEOUT
    http.TIMEOUT = 30   -- a case that hangs nginx's call fails instead of stalling the run
  end)
  teardown(function()
    http.TIMEOUT = old_timeout
    S.stop()
    T.stop()
  end)

  for _, case in ipairs(S.catalogue) do
    if not case.ngx_skip then
      it(case.name, function()
        S.play(case)
        local ok, why = S.check(case, run(case, url), "ngx")
        assert(ok, why)
        -- /paginate walks the pages twice (paginate, then pages)
        if case.requests then
          assert.equal(case.pages and 2 * case.requests or case.requests, S.count(),
            "requests the server received")
        end
      end)
    end
  end
end)
