-- The spool file on its own (no network): format, torn tails, acks, compaction and what a
-- crash at each step of it leaves, corrupt lines, the owner lock.
local spool = require "klaviyo.tracker.spool"
local S = require "tracker.support"
local F = require "helpers.files"

local HEADER = spool.HEADER

local function slurp(p) return (assert(F.read(p))) end

-- The file of a spool that is open (or whose process died): its records, then the zero
-- bytes of the window allocated ahead of them (see spool.lua), which must be nothing else.
local function records(p)
  local s = slurp(p)
  local i = #s
  while i > 0 and s:byte(i) == 0 do i = i - 1 end
  return s:sub(1, i)
end

local write, exists = F.write, F.exists

-- Runs the Lua `script` in a child interpreter with this process's paths, after the shell
-- commands `limits` (a file size limit), with `path` as its argument: its output.
local function run_child(limits, script, path)
  local child = path .. "-child.lua"
  write(child, script)
  local cmd = string.format("cd %s && %s; LUA_PATH=%q LUA_CPATH=%q %s %s %s",
    S.root, limits, package.path, package.cpath, S.interpreter(), child, path)
  local out = S.sh("sh -c " .. S.quote(cmd) .. " 2>&1")
  os.remove(child)
  return out
end

local function rec(n) return '{"type":"event-bulk-create","n":' .. n .. '}' end
-- the line of a record in the file: its JSON text, its length and checksum, "\n"
local function line(json) return json .. require("klaviyo.core").spool_trailer(json) end

describe("klaviyo.tracker.spool", function()
  local path
  before_each(function() path = S.spool_path("spool") end)
  after_each(function() S.cleanup(path) end)

  it("writes a header, then one line per record, readable before append returns", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    assert(sp:append(rec(1)))
    assert(sp:append(rec(2)))
    -- no close: what a killed process leaves (then zero bytes)
    assert.are.equal(HEADER .. line(rec(1)) .. line(rec(2)), records(path))
    assert.are.equal(2, sp.pending)
    sp:release()
    -- closed: the file is cut to its records
    assert.are.equal(HEADER .. line(rec(1)) .. line(rec(2)), slurp(path))
  end)

  it("reopens a file a killed process left with a zero tail: every record, nothing else", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    assert(sp:append(rec(1)))
    assert(sp:append(rec(2)))
    local left = slurp(path)
    assert.is_true(#left > #records(path)) -- the allocated window: zero bytes after the records
    sp:release() -- cuts the file; put back what the dead process would have left
    write(path, left)
    local again = assert(spool.open(path, { sync = "none" }))
    assert.are.equal(2, again.pending)
    assert(again:append(rec(3)))
    assert.are.same({ rec(1), rec(2), rec(3) }, (again:read(10, 1e6)))
    again:release()
    assert.are.equal(HEADER .. line(rec(1)) .. line(rec(2)) .. line(rec(3)), slurp(path))
  end)

  it("drops a torn last record (a write cut by a crash) when reopened", function()
    write(path, HEADER .. line(rec(1)) .. line(rec(2)) .. '{"type":"event-bu')
    local sp = assert(spool.open(path))
    assert.are.equal(2, sp.pending)
    assert(sp:append(rec(3)))
    assert.are.equal(HEADER .. line(rec(1)) .. line(rec(2)) .. line(rec(3)), records(path))
    local lines = sp:read(10, 1e6)
    assert.are.same({ rec(1), rec(2), rec(3) }, lines)
    sp:release()
  end)

  it("reads at most N records and B bytes from the head", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    for i = 1, 10 do assert(sp:append(rec(i))) end
    local lines, offs, endpos = sp:read(4, 1e6)
    assert.are.same({ rec(1), rec(2), rec(3), rec(4) }, lines)
    assert.are.equal(#HEADER, offs[1])
    assert.are.equal(#HEADER + 4 * #line(rec(1)), endpos)
    lines = sp:read(100, 2 * #line(rec(1)))
    assert.are.equal(2, #lines)
    lines = sp:read(100, 1) -- one record always fits, however small the budget
    assert.are.equal(1, #lines)
    sp:release()
  end)

  local P, X = "<", ">" -- a request body's envelope around the records

  it("reads a request body: records joined by commas, within N records and B bytes", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    for i = 1, 10 do assert(sp:append(rec(i))) end
    local body, count, endpos = sp:read_body(4, 1e6, P, X)
    assert.are.equal(P .. rec(1) .. "," .. rec(2) .. "," .. rec(3) .. "," .. rec(4) .. X, body)
    assert.are.equal(4, count)
    assert.are.equal(#HEADER + 4 * #line(rec(1)), endpos)
    assert.are.equal(2, select(2, sp:read_body(100, 2 * #line(rec(1)), P, X)))
    -- one record always fits, however small the budget
    assert.are.same({ P .. rec(1) .. X, 1 }, { (sp:read_body(100, 1, P, X)), 1 })
    body, count = sp:read_body(100, 1e6, P, X)
    assert.are.equal(10, count)
    assert.are.equal(rec(10) .. X, body:sub(-#rec(10) - #X))
    sp:release()
  end)

  it("passes over acks and damaged lines among the records of a body", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    for i = 1, 3 do assert(sp:append(rec(i))) end
    assert(sp:ack(#HEADER + #line(rec(1)), 1))
    -- a damaged record (cut short, its line ended), written past the spool's own checks
    local damaged = '{"type":"event-bulk-create","n":'
    assert(sp.w:write(damaged, "\n"))
    sp.size = sp.size + #damaged + 1
    assert(sp:append(rec(4)))
    local body, count, endpos = sp:read_body(100, 1e6, P, X)
    assert.are.equal(P .. rec(2) .. "," .. rec(3) .. "," .. rec(4) .. X, body)
    assert.are.equal(3, count)
    assert.are.equal(sp.size, endpos)
    -- the same records read one by one
    assert.are.same({ rec(2), rec(3), rec(4) }, (sp:read(100, 1e6)))
    sp:release()
  end)

  it("reads bodies larger than its read size, and spools of many records, in order", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    local big = '{"type":"event-bulk-create","pad":"' .. string.rep("x", 300 * 1024) .. '"}'
    assert(sp:append(rec(1)))
    assert(sp:append(big))
    for i = 2, 3000 do assert(sp:append(rec(i))) end
    local body, count, endpos = sp:read_body(2, 1e9, P, X)
    assert.are.equal(P .. rec(1) .. "," .. big .. X, body)
    assert.are.equal(2, count)
    assert(sp:ack(endpos, 2))
    body, count = sp:read_body(5000, 1e9, P, X)
    assert.are.equal(2999, count)
    local want = {}
    for i = 2, 3000 do want[#want + 1] = rec(i) end
    assert.are.equal(P .. table.concat(want, ",") .. X, body)
    sp:release()
  end)

  it("reads an empty body from an empty spool", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    assert.are.same({ P .. X, 0, #HEADER }, { sp:read_body(10, 1e6, P, X) })
    sp:release()
  end)

  it("resumes after the last ack: acknowledged records are not delivered again", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    for i = 1, 5 do assert(sp:append(rec(i))) end
    local _, _, endpos = sp:read(3, 1e6)
    assert(sp:ack(endpos, 3))
    assert(sp:append(rec(6)))
    assert.are.equal(3, sp.pending)
    sp:release()
    assert.matches("#ack " .. endpos .. "\n", slurp(path), 1, true)
    local again = assert(spool.open(path))
    assert.are.equal(3, again.pending)
    assert.are.same({ rec(4), rec(5), rec(6) }, (again:read(10, 1e6)))
    -- reopening compacted: acknowledged records and acks are gone
    assert.are.equal(HEADER .. line(rec(4)) .. line(rec(5)) .. line(rec(6)), slurp(path))
    again:release()
  end)

  it("compaction keeps every unacknowledged record, including ones appended after a read", function()
    local sp = assert(spool.open(path, { sync = "batch" }))
    for i = 1, 4 do assert(sp:append(rec(i))) end
    local _, _, endpos = sp:read(2, 1e6)
    assert(sp:append(rec(5)))
    assert(sp:ack(endpos, 2))
    assert(sp:compact())
    assert.are.equal(HEADER .. line(rec(3)) .. line(rec(4)) .. line(rec(5)), slurp(path))
    assert(sp:append(rec(6)))
    assert.are.same({ rec(3), rec(4), rec(5), rec(6) }, (sp:read(10, 1e6)))
    assert.is_false(exists(path .. ".tmp"))
    sp:release()
  end)

  it("a crash during compaction before the rename leaves the old file in charge", function()
    -- the old file (with its ack) and a half-written PATH.tmp, as a kill would leave them
    local body = HEADER .. line(rec(1))
    local ack_at = #body
    body = body .. line(rec(2)) .. "#ack " .. ack_at .. "\n" .. line(rec(3))
    write(path, body)
    write(path .. ".tmp", HEADER .. line(rec(2)) .. '{"ty')
    local sp = assert(spool.open(path))
    assert.is_false(exists(path .. ".tmp"))
    assert.are.same({ rec(2), rec(3) }, (sp:read(10, 1e6)))
    sp:release()
  end)

  it("skips and counts a corrupt line; refuses a file that is not a spool", function()
    write(path, HEADER .. line(rec(1)) .. "\0\0garbage\n" .. line(rec(2)))
    local sp = assert(spool.open(path))
    assert.are.equal(1, sp.corrupt)
    assert.are.same({ rec(1), rec(2) }, (sp:read(10, 1e6)))
    sp:release()
    local other = path .. "-other"
    write(other, "hello world\n")
    local no, err = spool.open(other)
    assert.is_nil(no)
    assert.matches("not a klaviyo tracker spool", err)
    os.remove(other)
    os.remove(other .. ".lock")
  end)

  it("encodes a record in C memory and appends it as one line, record after record", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    local v1 = { type = "event-bulk-create", attributes = { n = 1, s = "caf\195\169 \"q\"" } }
    local v2 = { type = "event-bulk-create", attributes = { n = 2 } }
    local want1 = require("klaviyo.core").encode(v1)
    local len = assert(sp:encode("\0", v1))
    assert.are.equal(#want1, len)
    assert(sp:append_encoded())
    assert.is_nil((sp:append_encoded())) -- a record goes once
    assert.are.equal(#'{"type":"event-bulk-create","attributes":{"n":2}}', assert(sp:encode("\0", v2)))
    assert(sp:append_encoded())
    local text = records(path)
    assert.are.equal(HEADER .. line(want1) .. '{', text:sub(1, #HEADER + #line(want1) + 1))
    assert.are.same({ want1, require("klaviyo.core").encode(v2) }, (sp:read(10, 1e6)))
    assert.are.equal(#text, sp.size)
    assert.are.equal(2, sp.pending)
    -- what cannot be encoded is refused and nothing is written
    local bad, err, json = sp:encode("\0", { s = "\255\254" })
    assert.is_nil(bad)
    assert.is_true(json)
    assert.matches("UTF%-8", err)
    assert.is_nil((sp:append_encoded()))
    assert.are.equal(text, records(path))
    sp:release()
  end)

  it("makes a record from a template: texts as they are, values as JSON, nil drops a member",
    function()
    local sp = assert(spool.open(path, { sync = "none" }))
    local props = { total = 2 }
    local len = assert(sp:encode('{"a":\0,"b":\0,"c":\0,"d":\0,"e":\0}', props, nil, 'say "hi"',
      false, 1.5))
    local want = '{"a":{"total":2},"c":"say \\"hi\\"","d":false,"e":1.5}'
    assert.are.equal(#want, len)
    assert(sp:append_encoded())
    assert.are.same({ want }, (sp:read(10, 1e6)))
    -- a value that cannot be encoded is named by the key before it; nothing is written
    local bad, err, json = sp:encode('{"a":1,"properties":\0}', { name = "caf\233" })
    assert.is_nil(bad)
    assert.is_true(json)
    assert.are.equal("properties.name: string is not valid UTF-8", err)
    bad, err = sp:encode('{"metric":\0}', "caf\233")
    assert.is_nil(bad)
    assert.are.equal("metric: string is not valid UTF-8", err)
    assert.is_nil((sp:append_encoded()))
    -- one text more than values, always (a programmer error otherwise)
    assert.has_error(function() sp:encode('{"a":\0}', 1, 2) end)
    assert.has_error(function() sp:encode('{"a":\0,"b":\0}', 1) end)
    assert.has_error(function() sp:encode({}, 1) end)
    assert.are.same({ want }, (sp:read(10, 1e6)))
    sp:release()
  end)

  it("drops an encoded record when compaction replaces the file before it is appended", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    assert(sp:encode("\0", { type = "event-bulk-create", n = 1 }))
    assert(sp:compact())
    local ok, err = sp:append_encoded()
    assert.is_nil(ok)
    assert.matches("no record encoded", err)
    assert.are.equal(HEADER, slurp(path))
    sp:release()
  end)

  it("reports an append it cannot make, writing nothing (a file that cannot be mapped)", function()
    local w = assert(require("klaviyo.core").spool_writer("/dev/full"))
    local r = { w:write(rec(1), "\n") }
    assert.are.same({ nil, "cannot write to the spool: No such device" }, r)
    assert(w:encode("\0", { a = 1 }))
    r = { w:commit() }
    assert.are.same({ nil, "cannot write to the spool: No such device" }, r)
    assert(w:close())
    assert(w:close()) -- twice is fine
    assert.are.same({ nil, "the spool writer is closed" }, { w:write("x") })
  end)

  it("fills a spool up to a file size limit; the record that does not fit writes no byte", function()
    -- a child process with a file size limit of one block (SIGXFSZ ignored, so the
    -- allocation fails with EFBIG) appends records until one fails
    local out = run_child("trap '' XFSZ; ulimit -f 1", [[
      local spool = require "klaviyo.tracker.spool"
      local sp = assert(spool.open(arg[1], { sync = "none" }))
      local pad = string.rep("x", 100)
      local n = 0
      while true do
        local ok, err = sp:append('{"n":' .. n .. ',"pad":"' .. pad .. '"}')
        if not ok then io.write("failed ", n, " ", err, "\n") break end
        n = n + 1
      end
      sp:release()
    ]], path)
    local n = tonumber(out:match("^failed (%d+) "))
    assert(n, out)
    assert.matches("File too large", out)
    assert.is_true(n >= 2, out) -- the limit (512 or 1024 bytes) holds several 120-byte records
    local text = slurp(path)
    assert.are.equal("\n", text:sub(-1)) -- whole records only, and nothing after them
    local sp = assert(spool.open(path, { sync = "none" }))
    assert.are.equal(n, sp.pending)
    assert(sp:append(rec(1)))
    local lines = sp:read(100, 1e6)
    assert.are.equal(n + 1, #lines)
    assert.are.equal(rec(1), lines[#lines])
    sp:release()
  end)

  it("counts an ack without room as done, and empties itself in place once nothing waits",
    function()
    -- a child process under a file size limit of one block, SIGXFSZ left as it is
    local out = run_child("ulimit -f 1", [[
      local spool = require "klaviyo.tracker.spool"
      local sp = assert(spool.open(arg[1], { sync = "none" }))
      local n = 0
      while sp:append('{"n":' .. n .. ',"pad":"' .. string.rep("x", 100) .. '"}') do n = n + 1 end
      local _, _, endpos = sp:read(1, 1e6)
      for _ = 1, 100 do assert(sp:ack(endpos, 0)) end -- more acks than there is room for
      local left = sp.pending - 1
      local lines, _, last = sp:read(1e6, 1e9, endpos)
      assert(#lines == left and sp:ack(last, sp.pending))
      io.write("acks_unwritten ", sp.acks_unwritten, " pending ", sp.pending, "\n")
      assert(sp:compact())
      sp:release()
    ]], path)
    local unwritten = tonumber(out:match("^acks_unwritten (%d+) pending 0\n$"))
    assert(unwritten, out)
    assert.is_true(unwritten > 0, out)
    assert.are.equal(HEADER, slurp(path)) -- cut in place: no copy needed room
  end)

  it("never cuts away a record after head, whatever its pending count says", function()
    local sp = assert(spool.open(path, { sync = "none" }))
    assert(sp:append(rec(1)))
    assert(sp:append(rec(2)))
    sp.pending = 0 -- a count gone wrong must not cost a record
    assert(sp:compact())
    assert.are.equal(2, sp.pending)
    assert.are.same({ rec(1), rec(2) }, (sp:read(10, 1e6)))
    sp:release()
    assert.are.equal(HEADER .. line(rec(1)) .. line(rec(2)), slurp(path))
  end)

  it("takes over the lock of a dead owner", function()
    write(path .. ".lock", "999999999 12345\n") -- no such process
    local sp = assert(spool.open(path))
    assert.are_not.equal("999999999 12345\n", slurp(path .. ".lock"))
    sp:release()
    assert.is_false(exists(path .. ".lock"))
  end)

  it("fsyncs files and directories (sync = \"always\" and compaction)", function()
    assert.is_true(spool.fsync_path(S.root))
    local sp = assert(spool.open(path, { sync = "always" }))
    assert(sp:append(rec(1)))
    assert.is_nil((spool.fsync_path(path .. "-missing")))
    sp:release()
  end)
end)
