-- Damaged records: a record cut short or changed on disk (still starting with "{") is told
-- from a good one by its length and checksum, counted, moved aside to PATH.damaged with its
-- bytes kept, and never blocks the events around it, which arrive once each.
local S = require "tracker.support"
local F = require "helpers.files"
local tracker = require "klaviyo.tracker"

local slurp, write = F.read, F.write

local function ev(seq) return S.event("d", seq) end

-- The spool file's complete lines (an open spool's file goes on with zero bytes after them:
-- the writer's window).
local function complete_lines(p)
  local s = slurp(p)
  return s:sub(1, (s:match(".*()\n") or 0))
end

local function lines_of(p)
  local out = {}
  for l in complete_lines(p):gmatch("([^\n]*)\n") do out[#out + 1] = l end
  return out
end

-- Offset of the start of line n (1 = the header).
local function offset_of(p, n)
  local off, k = 0, 1
  for l in complete_lines(p):gmatch("([^\n]*)\n") do
    if k == n then return off end
    off, k = off + #l + 1, k + 1
  end
end

describe("damaged spool records", function()
  local acct, flow, client, path
  before_each(function() acct, flow, client, path = S.fixture("damage") end)
  after_each(function() S.cleanup(path) end)

  -- 5 events spooled by a tracker that closed without delivering
  local function spooled()
    local t = assert(tracker.new(client, { spool = path, auto = false }))
    for i = 1, 5 do assert(t:track(ev(i))) end
    t:close(0)
  end

  it("delivers the others around a record cut short, counts it and moves it aside", function()
    spooled()
    local lines = lines_of(path)
    assert.are.equal(6, #lines) -- the header and 5 records
    local cut = lines[4]:sub(1, 60) -- the third event, cut short; its line still ends
    assert.are.equal("{", cut:sub(1, 1))
    lines[4] = cut
    write(path, table.concat(lines, "\n") .. "\n")
    local t = assert(tracker.new(client, { spool = path, auto = false }))
    local st = t:stats()
    assert.are.equal(1, st.corrupt)
    assert.are.equal(4, st.pending)
    assert.are.equal(1, st.quarantined) -- opening compacted: the line is aside already
    assert.are.equal(cut .. "\n", slurp(path .. ".damaged"))
    assert.is_true(t:flush(10))
    assert.are.equal(4, t:stats().delivered)
    t:close()
    assert.are.same({ held = 4, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, { [1] = true, [2] = true, [4] = true, [5] = true }))
  end)

  it("passes over a record damaged while the spool is open and moves it aside after", function()
    local t = assert(tracker.new(client, { spool = path, auto = false }))
    for i = 1, 5 do assert(t:track(ev(i))) end
    -- a byte of the third event changes on disk (the spool's file is mapped: same pages)
    local at = offset_of(path, 4)
    local f = assert(io.open(path, "r+b"))
    f:seek("set", at + 30)
    local was = f:read(1)
    f:seek("set", at + 30)
    f:write(was == "x" and "y" or "x")
    f:close()
    local damaged = lines_of(path)[4]
    assert.is_true(t:flush(10))
    local st = t:stats()
    assert.are.equal(4, st.delivered)
    assert.are.equal(1, st.corrupt)
    assert.are.equal(1, st.quarantined)
    assert.are.equal(0, st.pending)
    assert.are.equal(damaged .. "\n", slurp(path .. ".damaged"))
    -- counted once, though delivery read past it more than once (and the file is clean now)
    assert(t:track(ev(6)))
    assert.is_true(t:flush(10))
    assert.are.equal(1, t:stats().corrupt)
    t:close()
    assert.are.same({ held = 5, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, { [1] = true, [2] = true, [4] = true, [5] = true, [6] = true }))
  end)

  it("converts a spool of format 1 (records without a trailer), moving a cut record aside",
    function()
    spooled()
    local lines = lines_of(path)
    local v1 = { "klaviyo-spool 1" }
    for i = 2, #lines do v1[i] = lines[i]:match("^(.*)\t%x+$") end
    local cut = v1[4]:sub(1, 60)
    v1[4] = cut
    write(path, table.concat(v1, "\n") .. "\n")
    local t = assert(tracker.new(client, { spool = path, auto = false }))
    assert.are.equal(4, t:stats().pending)
    assert.are.equal(1, t:stats().corrupt)
    assert.are.equal(cut .. "\n", slurp(path .. ".damaged"))
    assert.are.equal("klaviyo-spool 2\n", slurp(path):sub(1, 16))
    assert.is_true(t:close(10))
    assert.are.same({ held = 4, missing = 0, extra = 0, twice = 0, runs_bad = 0 },
      S.check_exact(acct, flow, { [1] = true, [2] = true, [4] = true, [5] = true }))
  end)
end)
