-- The spool on a disk that fills up: under a file size limit (`ulimit -f`) smaller than the
-- spool's allocation window, `track` answers nil, err instead of dying of SIGXFSZ; on a full
-- file system (a 1 MiB tmpfs, where the machine lets this process mount one), a spool whose
-- events were all delivered is emptied in place and opens again, and a compaction that
-- cannot get room is reported while the tracker keeps working.
local S = require "tracker.support"
local P = require "helpers.process"
local tracker = require "klaviyo.tracker"

local q, sh = P.quote, P.sh

local all = S.all

local function ev(seq) return S.event("z", seq) end

-- A 1 MiB tmpfs at a fresh directory, or nil and why not.
local function small_fs()
  local dir = os.tmpname()
  os.remove(dir)
  if not os.execute("mkdir " .. q(dir)) then return nil, "cannot make a directory" end
  local out = sh("mount -t tmpfs -o size=1m tmpfs " .. q(dir) .. " 2>&1 && echo MOUNTED")
  if not out:find("MOUNTED", 1, true) then
    os.execute("rmdir " .. q(dir))
    return nil, "cannot mount a tmpfs here (" .. out:gsub("%s+$", "") .. ")"
  end
  return dir
end

local function unmount(dir)
  os.execute("umount " .. q(dir) .. " && rmdir " .. q(dir))
end

-- For a test on a full disk: a spool path on a small tmpfs (unmounted when the test ends), a
-- fresh account with its flow, and a client for it; nil (the test skipped, saying why) where
-- no tmpfs can be mounted.
local function on_small_fs()
  local dir, why = small_fs()
  if not dir then
    print("\nskipped: " .. why)
    return nil
  end
  finally(function() unmount(dir) end)
  local acct, flow = S.account()
  return dir .. "/spool", dir, acct, flow, S.client(acct)
end

-- Writes to path until the file system is full; returns the bytes written.
local function fill(path)
  local f = assert(io.open(path, "wb"))
  f:setvbuf("no")
  local n, block = 0, string.rep("f", 4096)
  while f:write(block) do n = n + #block end
  f:close()
  return n
end

describe("spool on a full disk", function()
  it("answers nil, err under a file size limit smaller than its window, never SIGXFSZ", function()
    local acct, flow, client, path = S.fixture("fsize")
    finally(function() S.cleanup(path) end)
    -- 64 blocks (of 512 or 1024 bytes, as the shell counts them), SIGXFSZ left as it is
    local cmd = string.format("ulimit -f 64; exec %s %s %s %s %s %s %s", S.interpreter(),
      q(S.root .. "/spec/tracker/child_fsize.lua"), q(S.root), q(S.build_dir()), q(S.emu.url),
      q(acct.private_key), q(path))
    local out = sh("sh -c " .. q(cmd) .. " 2>&1; echo \"exit $?\"")
    local n = tonumber(out:match("stored (%d+)\n"))
    assert(n, out)
    assert.is_true(n >= 20, out) -- 32 KiB at least: dozens of events fit
    assert.matches("refused [^\n]*File too large", out)
    assert.matches("closed true acks_unwritten %d+\nexit 0\n$", out)
    -- every stored event arrived once (an ack without room only makes an event go again,
    -- which its unique_id makes harmless): nothing is left in the spool
    local t = assert(tracker.new(client, { spool = path, auto = false }))
    assert.is_true(t:close(30))
    assert.are.same({ held = n, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, all(n)))
  end)

  it("empties in place and reopens a spool that filled the disk once all is delivered", function()
    local path, dir, acct, flow, client = on_small_fs()
    if not path then return end
    local t = assert(tracker.new(client, { spool = path, auto = false }))
    local n = 0
    while true do
      local uid, err = t:track(ev(n + 1))
      if not uid then
        assert.matches("No space left", tostring(err))
        break
      end
      n = n + 1
    end
    assert.is_true(n >= 100)
    fill(dir .. "/filler") -- what room the last record left is taken too
    -- delivered, and the spool emptied in place (a copy would find no room)
    local ok, err = t:flush(30)
    assert.is_true(ok, tostring(err))
    local st = t:stats()
    assert.are.equal(0, st.pending)
    assert.are.equal(0, st.compaction_failures)
    assert.is_true(st.compactions >= 1)
    t:close()
    -- it opens again on the full disk, and takes events once there is room
    t = assert(tracker.new(client, { spool = path, auto = false }))
    os.remove(dir .. "/filler")
    assert(t:track(ev(n + 1)))
    assert.is_true(t:close(30))
    assert.are.same({ held = n + 1, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, all(n + 1)))
  end)

  it("reports a compaction it has no room for and keeps working", function()
    local path, dir, acct, flow, client = on_small_fs()
    if not path then return end
    local t = assert(tracker.new(client, { spool = path, auto = false, batch = 100,
      compact_bytes = 1 }))
    for i = 1, 150 do assert(t:track(ev(i))) end
    fill(dir .. "/filler")
    -- one full batch goes; the compaction after it (half the file dead) has no room
    assert.is_true(t:deliver(false))
    local st = t:stats()
    assert.are.equal(50, st.pending)
    assert.is_true(st.compaction_failures >= 1)
    assert.matches("cannot compact", st.last_error)
    -- the tracker goes on: the rest is delivered, and the spool emptied in place
    assert.is_true(t:flush(30))
    assert.are.equal(0, t:stats().pending)
    os.remove(dir .. "/filler")
    assert(t:track(ev(151)))
    assert.is_true(t:close(30))
    assert.are.same({ held = 151, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, all(151)))
  end)
end)
