-- The spool's owner lock: two processes, and two trackers in one process, racing for one
-- spool. Exactly one opens it each time, the other is refused with a message naming the
-- holder, and no record the winner was given is lost or overwritten.
local S = require "tracker.support"
local F = require "helpers.files"
local P = require "helpers.process"
local spool = require "klaviyo.tracker.spool"
local tracker = require "klaviyo.tracker"
local socket = require "socket"

local ROUNDS = 50

local slurp, q = F.read, P.quote

local function ev(seq) return S.event("l", seq) end

describe("spool lock", function()
  local path
  before_each(function() path = S.spool_path("lock") end)
  after_each(function() S.cleanup(path) end)

  it("two processes racing for one spool, 50 rounds: exactly one opens, nothing is lost", function()
    local outs = { path .. ".out1", path .. ".out2" }
    local go = path .. ".go"
    finally(function()
      os.remove(outs[1]) os.remove(outs[2]) os.remove(go)
    end)
    local model = {} -- what the spool must hold: records not acknowledged, oldest first
    for round = 1, ROUNDS do -- round 1 on a fresh spool (no file yet), then an existing one
      os.remove(outs[1]) os.remove(outs[2]) os.remove(go)
      local start = socket.gettime() + 0.15
      local cmds = {}
      for k = 1, 2 do
        cmds[k] = string.format("%s %s %s %s %s %d %.3f %s %s >>%s.err 2>&1 &", S.interpreter(),
          q(S.root .. "/spec/tracker/child_lock.lua"), q(S.root), q(S.build_dir()), q(path),
          round, start, q(go), q(outs[k]), q(path))
      end
      os.execute(cmds[1] .. " " .. cmds[2])
      local answers
      local deadline = socket.gettime() + 20
      repeat
        socket.sleep(0.005)
        answers = { slurp(outs[1]) or "", slurp(outs[2]) or "" }
      until (answers[1]:find("\n") and answers[2]:find("\n")) or socket.gettime() > deadline
      local opened, refused, winner = 0, 0, nil
      for k = 1, 2 do
        if answers[k]:match("^opened\n") then opened, winner = opened + 1, k
        elseif answers[k]:match("^refused spool .* is in use by [%w ]*process") then
          refused = refused + 1
        end
      end
      assert.are.same({ round = round, opened = 1, refused = 1 },
        { round = round, opened = opened, refused = refused },
        answers[1] .. answers[2] .. (slurp(path .. ".err") or ""))
      io.open(go, "wb"):close()
      deadline = socket.gettime() + 20
      while not (slurp(outs[winner]) or ""):find("done\n", 1, true) and
        socket.gettime() < deadline do socket.sleep(0.005) end
      assert.matches("done\n", slurp(outs[winner]))
      table.remove(model, 1)
      table.remove(model, 1)
      for i = 1, 4 do model[#model + 1] = string.format('{"round":%d,"i":%d}', round, i) end
    end
    os.remove(path .. ".err")
    local sp = assert(spool.open(path))
    assert.are.equal(#model, sp.pending)
    assert.are.same(model, (sp:read(1e6, 1e9)))
    sp:release()
  end)

  it("two trackers on one path in one process, 50 rounds: one opens, every event arrives once",
    function()
    local acct, flow = S.account()
    local client = S.client(acct)
    local expected, seq = {}, 0
    for round = 1, ROUNDS do
      local first = assert(tracker.new(client, { spool = path, auto = false }))
      local second, err = tracker.new(client, { spool = path, auto = false })
      assert.is_nil(second)
      assert.are.equal("spool", err.kind)
      assert.matches("in use by process %d+ %(this one", tostring(err))
      -- a spool opened directly is refused too
      local sp, serr = spool.open(path)
      assert.is_nil(sp)
      assert.matches("in use by process", serr)
      for _ = 1, 2 do
        seq = seq + 1
        assert(first:track(ev(seq)))
        expected[seq] = true
      end
      -- every other round delivers at close; the others leave their events to the next
      if round % 2 == 0 then assert.is_true(first:close(30)) else first:close(0) end
    end
    local last = assert(tracker.new(client, { spool = path }))
    assert.is_true(last:close(30))
    assert.are.same({ held = 2 * ROUNDS, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, expected))
  end)

  it("releases the lock when a spool is collected without release", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    assert(sp:append('{"n":1}'))
    assert.is_nil((spool.open(path)))
    sp = nil -- luacheck: ignore 311
    collectgarbage()
    collectgarbage()
    local again = assert(spool.open(path))
    assert.are.same({ '{"n":1}' }, (again:read(10, 1e6)))
    again:release()
  end)
end)
