-- The tracker inside nginx (LuaJIT in the worker, whatever interpreter runs busted): one
-- spool per worker (`%w`), one ngx.timer.every flusher per worker, /track only appends;
-- every event reaches the emulator once, and a stopping worker closes its tracker (lock
-- released, events left in the spool for the next worker with the same id).
local S = require "tracker.support"
local socket = require "socket"
local http = require "socket.http"
local nginx = require "helpers.nginx"
local exists = require("helpers.files").exists

local NGX = [[
  init_worker_by_lua_block { require("tracker.ngx_app").init_worker(%q, %q, "@PREFIX@/spool") }
  server {
    listen 127.0.0.1:@PORT@;
    location = /track { content_by_lua_block { require("tracker.ngx_app").track() } }
  }
]]

describe("tracker in OpenResty", function()
  it("spools per worker, delivers from each worker's timer, and closes on worker exit", function()
    local acct, flow = S.account()
    local n = nginx.start(NGX:format(S.emu.url, acct.private_key), { workers = 2, dirs = { "spool" } })
    local prefix, stop = n.prefix, n.stop
    local ok, err = pcall(function()
      local url = n.url .. "/track?seq="
      local up
      for _ = 1, 100 do
        up = http.request(url .. "0")
        if up then break end
        socket.sleep(0.05)
      end
      assert(up, "nginx did not answer: " .. n.log())
      local expected, workers = { [0] = true }, {}
      for i = 1, 300 do
        local body, status = http.request(url .. i)
        assert(status == 200, tostring(body) .. n.log():sub(-2000))
        workers[body:match("%d+")] = true
        expected[i] = true
      end
      -- the timers deliver on their own: wait until the emulator holds all of them
      local r
      for _ = 1, 200 do
        r = S.check_exact(acct, flow, expected)
        if r.held >= 301 then break end
        socket.sleep(0.1)
      end
      assert.are.same({ held = 301, missing = 0, extra = 0, twice = 0, runs_bad = 0 }, r)
      for w in pairs(workers) do
        assert.is_true(exists(prefix .. "/spool/events." .. w .. ".spool"))
        assert.is_true(exists(prefix .. "/spool/events." .. w .. ".spool.lock"))
      end
      stop()
      for w in pairs(workers) do
        assert.is_false(exists(prefix .. "/spool/events." .. w .. ".spool.lock"))
      end
      assert.are_not.matches("%[error%]", n.log())
    end)
    n.remove()
    assert(ok, err)
  end)
end)
