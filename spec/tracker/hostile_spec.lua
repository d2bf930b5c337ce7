-- Hostile answers, files and callbacks met by the tracker: whatever they are, nothing
-- accepted is lost, nothing is acknowledged that was not accepted, and delivery goes on.
local S = require "tracker.support"
local tracker = require "klaviyo.tracker"

local emu = S.emu

local function ev(seq, extra) return S.event("h", seq, extra) end

describe("tracker against hostile answers", function()
  local acct, flow, client, path
  before_each(function()
    emu.faults(nil)
    acct, flow, client, path = S.fixture("hostile")
  end)
  after_each(function()
    emu.faults(nil)
    S.cleanup(path)
  end)

  -- a fault rule answering `count` requests with a 400 whose pointer names an entry by `index`
  local function blaming(index, count)
    local doc = { errors = { { status = "400", code = "invalid", title = "Invalid input.",
      detail = "bad entry", source = { pointer = "/data/attributes/events-bulk-create/data/" ..
      index .. "/attributes/profile" } } } }
    return { operation = "bulk_create_events", status = 400, count = count or 3,
             body = require("cjson").encode(doc) }
  end

  it("settles concurrent jobs after a batch that rejected an event, then failed", function()
    -- [1, 2] answered 400 blaming 1 (rejected), then 2 alone 503: the batch stays, with a
    -- rejection on record; the next pass sends it beside another job and both are accepted
    -- whole
    emu.faults { blaming(0, 1), { operation = "bulk_create_events", status = 503, count = 1 } }
    local t = assert(tracker.new(client, { spool = path, auto = false, batch = 2,
      concurrency = 2, backoff_base = 0.01, backoff_cap = 0.02 }))
    assert(t:track(ev(1)))
    assert(t:track(ev(2)))
    local ok, err, what = t:deliver(true)
    assert.is_nil(ok)
    assert.are.equal("retry", what, tostring(err))
    assert.are.equal(1, t:stats().rejected)
    assert(t:track(ev(3)))
    assert(t:track(ev(4)))
    require("socket").sleep(0.05)
    ok, err = t:deliver(true)
    local st = t:stats()
    assert.is_true(ok, tostring(err))
    assert.are.equal(0, st.delivery_errors, st.last_error)
    assert.are.equal(0, st.pending)
    assert.is_true(t:close())
    assert.are.same({ held = 4, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, { [2] = true, [3] = true, [4] = true }, { [1] = true }))
  end)

  -- Klaviyo accepts a bulk job with 202; a proxy or a broken server may answer another
  -- success status without recording anything (the emulator's fault processes nothing)
  for _, rule in ipairs({
    { status = 200, body = "{}" }, { status = 200, body = "" }, { status = 204 },
    { status = 201, body = '{"data":{"type":"event-bulk-create-job","id":"x"}}' },
    { status = 202, body = "<html>accepted</html>" },
  }) do
    it("takes no " .. rule.status .. " answer (" .. tostring(rule.body) .. ") for acceptance",
      function()
      rule.operation, rule.count = "bulk_create_events", 2
      emu.faults { rule }
      local t = assert(tracker.new(client, { spool = path, auto = false, batch = 2,
        concurrency = 2, backoff_base = 0.01, backoff_cap = 0.02 }))
      for i = 1, 4 do assert(t:track(ev(i))) end
      assert.is_nil((t:deliver(true)))
      assert.are.equal(4, t:stats().pending)
      assert.is_true(t:flush(10))
      assert.are.same({ 4, 0 }, { t:stats().delivered, t:stats().pending })
      t:close()
      assert.are.same({ held = 4, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
        S.check_exact(acct, flow, S.all(4)))
    end)
  end

  it("keeps flush within its timeout against a server that answers slowly", function()
    -- one job at a time: client:batch bounds the retries of each job by what is left, but
    -- not yet the time of an attempt already under way
    local c = S.client(acct, true) -- the client's own retries on
    emu.faults { { operation = "bulk_create_events", delay_ms = 4000, status = 503 } }
    local t = assert(tracker.new(c, { spool = path, auto = false, batch = 1, concurrency = 1 }))
    assert(t:track(ev(1)))
    assert(t:track(ev(2)))
    local socket = require "socket"
    local t0 = socket.gettime()
    local ok, err = t:flush(1)
    local took = socket.gettime() - t0
    assert.is_nil(ok)
    assert.are.equal(2, err.pending)
    assert.is_true(took < 2.5, "flush(1) took " .. took .. " s")
    emu.faults(nil)
    assert.is_true(t:close(10))
    assert.are.same({ held = 2, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, S.all(2)))
  end)

  -- Two events tracked while the fault rules set answer `status`: flushes meet only that
  -- status until the rules run out, then both events are delivered, none rejected, each once.
  local function delivers_both_after(status)
    local t = assert(tracker.new(client, { spool = path, auto = false, backoff_base = 0.01,
      backoff_cap = 0.02 }))
    assert(t:track(ev(1)))
    assert(t:track(ev(2)))
    for _ = 1, 4 do
      local ok, err = t:flush(10)
      if ok then break end
      assert.are.equal(status, err.cause.status)
    end
    local st = t:stats()
    assert.are.same({ 0, 0, 2 }, { st.rejected, st.pending, st.delivered })
    t:close()
    assert.are.same({ held = 2, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, S.all(2)))
  end

  it("rejects no event answered 413 alone while it is within the request limit", function()
    -- a proxy in the way (or a broken server) answering 413 to small requests: the event
    -- is not too large for Klaviyo, so it stays
    emu.faults { { operation = "bulk_create_events", status = 413, count = 3 } }
    delivers_both_after(413)
  end)


  for _, index in ipairs({ "2", "7", "99999999999999999999", "-1", "x", "" }) do
    it("rejects no event for a 400 blaming entry '" .. index .. "' of a batch of 2", function()
      emu.faults { blaming(index) }
      delivers_both_after(400)
    end)
  end
end)

describe("tracker spool records that are not event entries", function()
  local acct, flow, client, path
  before_each(function() acct, flow, client, path = S.fixture("entries") end)
  after_each(function() S.cleanup(path) end)

  -- a spool of a good event, each of `texts` as a record with a valid trailer, and another
  -- good event
  local function spool_with(texts)
    local core = require "klaviyo.core"
    local t = assert(tracker.new(client, { spool = path, auto = false }))
    assert(t:track(ev(1)))
    t:close(0)
    local f = assert(io.open(path, "ab"))
    for _, s in ipairs(texts) do f:write(s, core.spool_trailer(s)) end
    f:close()
    t = assert(tracker.new(client, { spool = path, auto = false }))
    assert(t:track(ev(2)))
    return t
  end

  for _, case in ipairs({
    { "text that is not JSON", { "not json at all" } },
    { "JSON that is not an object", { "[1,2]", "42", '"s"', "null" } },
    { "an object that is not an event entry", { '{"type":"profile"}', "{}" } },
    { "an entry over the request size limit", { '{"pad":"' .. string.rep("x", 6 * 1024 * 1024) .. '"}' } },
  }) do
    it("delivers the events around " .. case[1] .. " and sets it aside", function()
      local t = spool_with(case[2])
      local ok, err = t:flush(10)
      local st = t:stats()
      assert.is_true(ok, tostring(err))
      assert.are.equal(2, st.delivered)
      assert.are.equal(0, st.pending)
      assert.are.equal(#case[2], st.rejected + st.quarantined)
      t:close()
      assert.are.same({ held = 2, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
        S.check_exact(acct, flow, { [1] = true, [2] = true }))
    end)
  end
end)

-- A spool record line holding {"n": n} (and `pad` bytes of padding when given), its
-- trailer included.
local function record_line(n, pad)
  local json = '{"n":' .. n .. (pad and (',"pad":"' .. string.rep("p", pad) .. '"') or "") .. '}'
  return json .. require("klaviyo.core").spool_trailer(json)
end

-- The spool at `path` written with `bytes` and opened: the spool, and the n of each record
-- it reads back (all of them pending).
local function open_holding(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
  local sp = assert(require("klaviyo.tracker.spool").open(path, { sync = "none" }))
  local n = {}
  for i, l in ipairs(sp:read(100, 1e9)) do n[i] = tonumber(l:match('"n":(%d+)')) end
  assert.are.equal(#n, sp.pending)
  return sp, n
end

describe("tracker spool acks changed on disk", function()
  local spool = require "klaviyo.tracker.spool"
  local path
  before_each(function() path = S.spool_path("acks") end)
  after_each(function() S.cleanup(path) end)

  local line = record_line

  -- a spool of 3 records of which the first was acknowledged, its ack's offset written as
  -- `ack` (the true one: the end of the first record); the records still pending when opened
  local function pending_with(ack)
    local sp, n = open_holding(path, spool.HEADER .. line(1) .. line(2) .. line(3) .. "#ack " ..
      ack(#spool.HEADER + #line(1)) .. "\n")
    local corrupt = sp.corrupt
    sp:release()
    return n, corrupt
  end

  it("takes a good ack", function()
    assert.are.same({ { 2, 3 }, 0 }, { pending_with(function(at) return at end) })
  end)

  it("never lets an ack that names no record's end drop a record", function()
    for _, ack in ipairs({
      function(at) return at + 20 end,                  -- inside the second record
      function(at) return at + 2 * #line(1) + 1 end,    -- past the end of a record
      function() return string.rep("9", 30) end,        -- past the file
      function(at) return at + 2 * #line(1) + 3 end,    -- inside the ack line itself
    }) do
      assert.are.same({ { 1, 2, 3 }, 1 }, { pending_with(ack) }) -- counted among the damaged
    end
  end)

  it("passes over many such acks in time linear in the file", function()
    local parts = { spool.HEADER }
    for i = 1, 100000 do parts[#parts + 1] = line(i) end
    for _ = 1, 100000 do parts[#parts + 1] = "#ack 999999999999\n" end
    local f = assert(io.open(path, "wb"))
    f:write(table.concat(parts))
    f:close()
    local socket = require "socket"
    local t0 = socket.gettime()
    local sp = assert(spool.open(path, { sync = "none" }))
    local took = socket.gettime() - t0
    assert.are.same({ 100000, 100000 }, { sp.pending, sp.corrupt })
    sp:release()
    assert.is_true(took < 5, "opening took " .. took .. " s")
  end)
end)

describe("tracker spool whose damaged lines cannot be moved aside", function()
  local acct, flow, client, path
  before_each(function() acct, flow, client, path = S.fixture("noaside") end)
  after_each(function()
    os.execute("rm -rf " .. S.quote(path .. ".damaged"))
    S.cleanup(path)
  end)

  it("still frees the space of delivered events", function()
    local t = assert(tracker.new(client, { spool = path, auto = false }))
    assert(t:track(ev(1)))
    t:close(0)
    local f = assert(io.open(path, "ab"))
    f:write('{"a damaged line"\n')
    f:close()
    assert(os.execute("mkdir " .. S.quote(path .. ".damaged"))) -- cannot be written
    t = assert(tracker.new(client, { spool = path, max_spool_bytes = 20000, batch = 10,
      interval = 1000 }))
    assert.are.equal(1, t:stats().corrupt)
    for i = 2, 200 do
      local uid, err = t:track(ev(i))
      assert.is_string(uid, tostring(err))
    end
    assert.is_true(t:flush(10))
    local st = t:stats()
    assert.are.equal(0, st.pending)
    assert.is_true(st.spool_bytes < 20000, "spool_bytes " .. st.spool_bytes)
    t:close()
    -- the damaged line is kept, as it was, and moved aside once that can be done
    assert.matches('{"a damaged line"\n', S.sh("cat " .. S.quote(path)), 1, true)
    assert(os.execute("rmdir " .. S.quote(path .. ".damaged")))
    t = assert(tracker.new(client, { spool = path, auto = false }))
    assert.are.same({ 1, 1, 0 }, { t:stats().corrupt, t:stats().quarantined, t:stats().pending })
    t:close()
    assert.are.equal('{"a damaged line"\n', S.sh("cat " .. S.quote(path .. ".damaged")))
    assert.are.same({ held = 200, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, S.all(200)))
  end)
end)

describe("tracker spool cut or changed anywhere", function()
  local spool = require "klaviyo.tracker.spool"
  local path
  before_each(function() path = S.spool_path("cut") end)
  after_each(function() S.cleanup(path) end)

  local line = record_line

  -- opens a spool file holding `bytes`: the records read back (their n), and the spool
  -- opened again after one more record (which must be pending with them)
  local function opened(bytes)
    S.cleanup(path)
    local sp, n = open_holding(path, bytes)
    assert(sp:append(line(9):match("^[^\t]*")))
    sp:release()
    sp = assert(spool.open(path, { sync = "none" }))
    assert.are.same({ #n + 1, 0 }, { sp.pending, sp.corrupt })
    sp:release()
    return n
  end

  it("keeps every whole record when cut at any byte", function()
    local lines = { line(1), line(2), "#ack 0\n", line(3) }
    local full = spool.HEADER .. table.concat(lines)
    local ends, at = {}, #spool.HEADER
    for i, l in ipairs(lines) do at = at + #l ends[i] = at end
    for cut = 0, #full do
      local want = {}
      if cut >= ends[1] then want[#want + 1] = 1 end
      if cut >= ends[2] then want[#want + 1] = 2 end
      if cut >= ends[4] then want[#want + 1] = 3 end
      assert.are.same(want, opened(full:sub(1, cut)), "cut at " .. cut)
    end
  end)

  it("passes over a record with any one bit flipped, keeping the others", function()
    local a, b, c = line(1), line(2), line(3)
    for i = 1, #b - 1 do -- every byte but its "\n"
      for bit = 0, 7 do
        local v, m = b:byte(i), 2 ^ bit
        local x = string.char(math.floor(v / m) % 2 == 1 and v - m or v + m)
        local got = opened(spool.HEADER .. a .. b:sub(1, i - 1) .. x .. b:sub(i + 1) .. c)
        assert.are.same({ 1, 3 }, got, "byte " .. i .. " bit " .. bit)
      end
    end
  end)

  it("reads records that straddle its read chunks", function()
    local parts, want = { spool.HEADER }, {}
    for i = 1, 40 do
      parts[#parts + 1] = line(i, 30000 + i * 997)
      want[i] = i
    end
    assert.are.same(want, opened(table.concat(parts)))
  end)
end)

describe("tracker spool with a very long line", function()
  local spool = require "klaviyo.tracker.spool"
  local core = require "klaviyo.core"
  local socket = require "socket"
  local path
  before_each(function() path = S.spool_path("long") end)
  after_each(function() S.cleanup(path) end)

  -- seconds to open (and compact) a spool holding a record, `lines` damaged lines of
  -- `bytes` bytes each, another record and, when `torn`, a torn tail of `bytes` bytes
  local function open_time(lines, bytes, torn)
    local good = '{"n":1}' .. core.spool_trailer('{"n":1}')
    local piece = string.rep("x", 1024 * 1024)
    local f = assert(io.open(path, "wb"))
    f:write(spool.HEADER, good)
    for _ = 1, lines do
      for _ = 1, bytes / #piece do f:write(piece) end
      f:write("\n")
    end
    f:write(good)
    if torn then for _ = 1, bytes / #piece do f:write(piece) end end
    f:close()
    local t0 = socket.gettime()
    local sp = assert(spool.open(path, { sync = "none" }))
    local dt = socket.gettime() - t0
    assert.are.same({ 2, lines }, { sp.pending, sp.quarantined })
    sp:release()
    S.cleanup(path)
    return dt
  end

  it("opens in time linear in its size, however long a line is", function()
    local mib = 1024 * 1024
    local short = open_time(32, mib, false) + open_time(0, mib, true) * 32
    local long = open_time(1, 32 * mib, false) + open_time(0, 32 * mib, true)
    assert.is_true(long < 4 * short + 0.5, string.format("one 32 MiB line and tail: %.2f s; " ..
      "32 lines of 1 MiB, 32 tails: %.2f s", long, short))
  end)
end)

describe("tracker under a wall clock that is set", function()
  local acct, flow, client, path
  before_each(function()
    emu.faults(nil)
    acct, flow, client, path = S.fixture("clock")
  end)
  after_each(function()
    emu.faults(nil)
    S.cleanup(path)
  end)

  -- a fresh copy of the tracker module whose clock (LuaSocket's gettime) reads the real time
  -- plus the offset that set_back changes, as a wall clock set back by an administrator or
  -- NTP does
  local function tracker_with_clock()
    local socket = require "socket"
    local offset = 0
    local saved_socket, saved_tracker = package.loaded.socket, package.loaded["klaviyo.tracker"]
    package.loaded.socket = { gettime = function() return socket.gettime() + offset end,
                              sleep = socket.sleep }
    package.loaded["klaviyo.tracker"] = nil
    local mod = require "klaviyo.tracker"
    package.loaded.socket, package.loaded["klaviyo.tracker"] = saved_socket, saved_tracker
    return mod, function(seconds) offset = offset - seconds end
  end

  it("does not wait out a back-off for as long as the clock went back", function()
    local mod, set_back = tracker_with_clock()
    emu.faults { { operation = "bulk_create_events", status = 503, count = 1 } }
    local t = assert(mod.new(client, { spool = path, auto = false, backoff_base = 0.2,
      backoff_cap = 0.2 }))
    assert(t:track(ev(1)))
    assert.is_nil((t:deliver(true)))
    set_back(3600)
    assert.is_true(t:stats().retry_in <= 0.2)
    local ok, err = t:flush(5)
    assert.is_true(ok, tostring(err))
    t:close()
    assert.are.same({ held = 1, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, { [1] = true }))
  end)

  it("does not cut a back-off short when the clock is set forward", function()
    local mod, set_back = tracker_with_clock()
    -- a 503 asking for 30 s: the back-off is at least that (never less than a Retry-After)
    emu.faults { { operation = "bulk_create_events", status = 503, count = 1, retry_after = 30 } }
    local t = assert(mod.new(client, { spool = path, auto = false }))
    assert(t:track(ev(1)))
    assert.is_nil((t:deliver(true)))
    assert.is_true(t:stats().retry_in > 29, "retry_in " .. t:stats().retry_in)
    set_back(-3600)
    assert.is_true(t:stats().retry_in > 29, "retry_in " .. t:stats().retry_in)
    t:close(0)
  end)

  it("keeps flush within its timeout when the clock goes back during it", function()
    local mod, set_back = tracker_with_clock()
    emu.faults { { operation = "bulk_create_events", status = 503, count = 200 } }
    local t = assert(mod.new(client, { spool = path, auto = false, backoff_base = 0.005,
      backoff_cap = 0.01 }))
    assert(t:track(ev(1)))
    local real, calls = t.client.call, 0
    t.client.call = function(...)
      calls = calls + 1
      if calls == 1 then set_back(3600) end
      return real(...)
    end
    local socket = require "socket"
    local t0 = socket.gettime()
    local ok, err = t:flush(0.5)
    local took = socket.gettime() - t0
    assert.is_nil(ok)
    assert.are.equal(1, err.pending)
    assert.is_true(took < 1.5, "flush(0.5) took " .. took .. " s")
    t:close(0)
  end)

  it("keeps delivering every interval from track after the clock went back", function()
    local mod, set_back = tracker_with_clock()
    local t = assert(mod.new(client, { spool = path, interval = 0.05 }))
    assert(t:track(ev(1)))
    set_back(3600)
    -- the time the clock was set back at is not known: the interval counts from then
    assert(t:track(ev(2)))
    require("socket").sleep(0.1)
    assert(t:track(ev(3)))
    assert.are.equal(0, t:stats().pending)
    t:close()
    assert.are.same({ held = 3, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, S.all(3)))
  end)
end)

describe("tracker spool that is not a regular file", function()
  local dir
  before_each(function()
    dir = S.spool_path("kind")
    assert(os.execute("mkdir " .. S.quote(dir)))
  end)
  after_each(function() os.execute("rm -rf " .. S.quote(dir)) end)

  local function spool_header() return require("klaviyo.tracker.spool").HEADER end

  -- opens the spool at `p` in a child process that may block: its answer, or "" when it
  -- did not answer within 10 seconds
  local function open_in_child(p)
    return S.sh(string.format("timeout 10 %s %s %s %s %s 2>&1", S.interpreter(),
      S.quote(S.root .. "/spec/tracker/child_open.lua"), S.quote(S.root),
      S.quote(S.build_dir()), S.quote(p)))
  end

  it("refuses a FIFO, a directory and a device at once, naming the spool", function()
    local fifo, sub, dev = dir .. "/fifo", dir .. "/sub", dir .. "/dev"
    assert(os.execute("mkfifo " .. S.quote(fifo)))
    assert(os.execute("mkdir " .. S.quote(sub)))
    assert(os.execute("ln -s /dev/null " .. S.quote(dev)))
    for _, p in ipairs({ fifo, sub, dev }) do
      local answer = open_in_child(p)
      assert.matches("^refused cannot open the spool " .. p:gsub("%p", "%%%0") ..
        ": not a regular file", answer)
    end
    -- nothing was created beside them, and the one taking their place opens
    assert.is_nil(io.open(fifo .. ".lock", "rb"))
    os.remove(fifo)
    assert.are.equal("opened\n", open_in_child(fifo))
  end)

  it("keeps damaged lines in place when PATH.damaged is a FIFO, never blocking", function()
    local p = dir .. "/spool"
    local f = assert(io.open(p, "wb"))
    f:write(spool_header(), '{"a damaged line"\n')
    f:close()
    assert(os.execute("mkfifo " .. S.quote(p .. ".damaged")))
    assert.are.equal("opened\n", open_in_child(p))
    assert.matches('{"a damaged line"\n', S.sh("cat " .. S.quote(p)), 1, true)
  end)

  it("never writes through a lock file that is a symlink or not a regular file", function()
    local victim, p = dir .. "/victim", dir .. "/spool"
    local f = assert(io.open(victim, "wb"))
    f:write("precious\n")
    f:close()
    assert(os.execute("ln -s " .. S.quote(victim) .. " " .. S.quote(p .. ".lock")))
    assert.matches("^refused cannot create the spool lock ", open_in_child(p))
    assert.are.equal("precious\n", S.sh("cat " .. S.quote(victim)))
    os.remove(p .. ".lock")
    assert(os.execute("mkfifo " .. S.quote(p .. ".lock")))
    assert.matches("^refused cannot create the spool lock .*not a regular file", open_in_child(p))
    os.remove(p .. ".lock")
    assert.are.equal("opened\n", open_in_child(p))
  end)
end)
