--- The tracker's spool: an append-only file holding every event the tracker accepted and has
-- not yet seen acknowledged, so that a crash loses nothing and a restart delivers the rest.
--
-- File format (text, one record per line; JSON never holds a raw tab or newline):
--
--     klaviyo-spool 2\n              header: format name and version
--     {"type":"event-bulk-create",...}\tLLLLLLLLCCCCCCCC\n
--                                    one event, as the bulk_create_events entry that carries
--                                    it (profile + one event), sent as is; then a tab, its
--                                    length and its CRC-32 as 8 hex digits each
--                                    (src/spool_record.h)
--     #ack 123456\n                  every record that starts before byte 123456 is done
--                                    (accepted by Klaviyo, or rejected and reported)
--
-- A line that is neither an ack nor a record whose length and checksum match and whose text
-- is a JSON object (a record cut short or changed on disk, whatever its first byte, or a
-- line some other program wrote) is damaged: passed over by every read, so it never blocks
-- the records after it, counted (`corrupt`), and moved aside by the next compaction into
-- PATH.damaged, its bytes as they were, one line each (or, when that file cannot be
-- written, kept in the spool as they are until a compaction can). A spool of format 1
-- (records without a trailer) is converted when opened: each record that is a JSON object
-- is kept, any other line moved aside.
--
-- While a spool is open its file is longer than its records: appends go into a mapped
-- window of the file allocated ahead (see src/spool_file.c), which reads as zero bytes after
-- the last record until `release` cuts the file to its records. So a process that died
-- leaves its records, then maybe zero bytes, or a record cut short: bytes after the last
-- "\n" are a torn tail whose `track` never returned, dropped when the spool is next opened.
-- An append that fails (disk full, file size limit) writes no byte of its record.
--
-- Durability (`sync`): every record is in the kernel (copied into the page cache through
-- the mapping) before `track` returns, so a killed process loses nothing. `sync = "always"`
-- also fsyncs each record (survives power loss; slowest); `"batch"` (default) fsyncs the
-- spool before each delivery pass sends it, and at flush/close (a power loss can lose the
-- records written since the last fsync); `"none"` leaves it to the operating system. Acks
-- are never fsynced: a lost ack only makes delivered events go again, which their
-- unique_ids make harmless. For the same reason an ack that cannot be written (disk full)
-- is not an error: the records count as done in this process (`acks_unwritten` counts them).
--
-- Compaction removes acknowledged records without ever risking unacknowledged ones and
-- without needing space it cannot get. When nothing is live (no record waits, no damaged
-- line to move aside) the file is cut to its header in place. Otherwise the live records are
-- copied to PATH.tmp, which is fsynced and renamed over PATH (atomic), then the directory is
-- fsynced; a crash before the rename leaves the old file (acks included) authoritative and a
-- stale PATH.tmp, removed on the next open; after it, the new file. A copy that fails (no
-- room) leaves the spool as it was and working; the failure is answered (and counted by the
-- tracker). Opening a spool compacts it; when that copy fails, the file is kept as it is,
-- its torn tail cut off in place.
--
-- One owner at a time: the spool is opened under an exclusive lock (flock on PATH.lock, see
-- src/lua_spool_lock.c), held until `release` (or until the spool is collected, or its
-- process dies), so a second open fails while the first owner lives, in this process or
-- another. Two writers would lose events (compaction by one replaces the file the other
-- appends to, and both would write after the same end).
-- @module klaviyo.tracker.spool
local io_open, os_rename, os_remove = io.open, os.rename, os.remove
local tonumber, tostring, type, select = tonumber, tostring, type, select
local concat, floor = table.concat, math.floor
local format, find, sub, match, byte = string.format, string.find, string.sub, string.match,
  string.byte
local setmetatable = setmetatable
local cjson = require("cjson.safe").new()

local _M = {}
local mt = { __index = _M }

local HEADER = "klaviyo-spool 2\n"
local HEADER_V1 = "klaviyo-spool 1\n" -- records without a trailer: converted when opened
_M.HEADER = HEADER
local CHUNK = 256 * 1024
local HASH = byte("#")

-- Appends, fsyncs and the delivery's reads go through the C core (src/lua_spool.c): a record
-- is encoded into C memory and copied from there into the mapped spool, and a batch is read
-- and joined into a request body in C, so neither makes a Lua string per record (LuaJIT
-- interns every string, and records alike but for a few bytes made that cost several times
-- the encoding); fsync(2) is reachable from every interpreter (PUC Lua used to run
-- `sync FILE` for it). A record is in the kernel (the page cache) when `append` returns.
local core = require "klaviyo.core"
local spool_writer, fsync_path, spool_lock, spool_check = core.spool_writer, core.fsync_path,
  core.spool_lock, core.spool_check
local file_kind = core.spool_file_kind

local function dirname(path)
  return match(path, "^(.*)/[^/]*$") or "."
end

-- What the line s[i..j] (without its "\n") is: "record" and the length of its JSON text,
-- "ack" and its offset, "damaged", or nil for an empty line. `v1`: a format 1 spool, whose
-- records have no trailer (a JSON object is a record).
local function classify(s, i, j, v1)
  if j < i then return nil end
  if byte(s, i) == HASH then
    local a = tonumber(match(sub(s, i, j), "^#ack (%d+)$"))
    if a then return "ack", a end
    return "damaged"
  end
  if v1 then
    if type(cjson.decode(sub(s, i, j))) == "table" then return "record", j - i + 1 end
    return "damaged"
  end
  local n = spool_check(s, i, j)
  if n then return "record", n end
  return "damaged"
end

-- Calls fn(s, i, j, offset) for every complete line of the open file f from offset `from`
-- up to offset `limit` (nil: its end), s[i..j] being the line without its "\n"; fn returns
-- true to stop there. Returns the offset after the last line given, and the bytes after it
-- when the file ends without a "\n" (a torn tail). A line longer than a chunk is kept as
-- its chunks and joined once its "\n" comes, and each chunk is searched once: the time is
-- linear in the bytes read, however long a line (a hostile or damaged file) is.
local function each_line(f, from, limit, fn)
  f:seek("set", from)
  local pos = from -- offset of the line not given yet
  local parts, nparts, plen = {}, 0, 0 -- its bytes read so far (no "\n" among them)
  while true do
    local want = CHUNK
    if limit then
      want = limit - pos - plen
      if want > CHUNK then want = CHUNK end
    end
    local chunk = want > 0 and f:read(want) or nil
    if not chunk then break end
    local nl = find(chunk, "\n", 1, true)
    if not nl then
      nparts, plen = nparts + 1, plen + #chunk
      parts[nparts] = chunk
    else
      local buf = chunk
      if nparts > 0 then
        buf, nl = concat(parts, "", 1, nparts) .. chunk, nl + plen
        parts, nparts = {}, 0
      end
      local i = 1
      repeat
        if fn(buf, i, nl - 1, pos + i - 1) then return pos + i - 1, "" end
        i = nl + 1
        nl = find(buf, "\n", i, true)
      until not nl
      pos = pos + i - 1
      plen = #buf - i + 1
      if plen > 0 then parts[1], nparts = sub(buf, i), 1 end
    end
  end
  return pos, concat(parts, "", 1, nparts)
end

--- Scan a spool file. Returns {head, size, pending, torn, corrupt, bad_acks, v1, empty} or
-- nil, message. `head`: offset of the first record not acknowledged; `size`: offset after
-- the last complete line; `pending`: records at or after head; `corrupt`: damaged lines;
-- `bad_acks`: acks passed over (they named no record's end).
local function scan(path)
  local f = io_open(path, "rb")
  local fresh = { head = 0, size = 0, pending = 0, torn = false, corrupt = 0, bad_acks = 0,
                  empty = true }
  if not f then return fresh end
  local first = f:read(#HEADER)
  if first == nil then f:close() return fresh end
  local v1 = first == HEADER_V1
  if first ~= HEADER and not v1 then
    f:close()
    if sub(HEADER, 1, #first) == first then -- died while writing the header
      return { head = 0, size = 0, pending = 0, torn = true, corrupt = 0, bad_acks = 0,
               empty = true }
    end
    return nil, format("%s is not a klaviyo tracker spool (bad header)", path)
  end
  -- The ends of records not yet behind the last ack, oldest first (a queue: acks only move
  -- forward and follow the records they cover). An ack names the end of a record before it
  -- (where what was delivered ends); one past head that names no such end was changed on
  -- disk, and trusting it could drop records never delivered: it is passed over (counted
  -- in `bad_acks`), so at worst delivered records go again, which their unique_ids make
  -- harmless.
  local head = #HEADER
  local q, qfirst, qlast, corrupt, bad_acks = {}, 1, 0, 0, 0
  local size, tail = each_line(f, #HEADER, nil, function(s, i, j, at)
    local kind, v = classify(s, i, j, v1)
    if kind == "record" then
      qlast = qlast + 1
      q[qlast] = at + j - i + 2
    elseif kind == "ack" then
      if v > head then
        -- the first end at or past v (the ends ascend: a binary search, so no run of acks
        -- costs more than a logarithm each)
        local lo, hi = qfirst, qlast + 1
        while lo < hi do
          local mid = floor((lo + hi) / 2)
          if q[mid] < v then lo = mid + 1 else hi = mid end
        end
        local k = lo
        if k <= qlast and q[k] == v then
          head = v
          for x = qfirst, k do q[x] = nil end
          qfirst = k + 1
        else
          bad_acks = bad_acks + 1
        end
      end
    elseif kind == "damaged" then
      corrupt = corrupt + 1
    end
  end)
  f:close()
  return { head = head, size = size, pending = qlast - qfirst + 1, torn = #tail > 0,
           corrupt = corrupt, bad_acks = bad_acks, v1 = v1 }
end

local TRAILER = #core.spool_trailer("") -- bytes a record line adds after its JSON text

--- Open (or create) the spool at `path`. opts: `sync` ("always"|"batch"|"none").
-- Returns the spool or nil, message.
---@param path string
---@param opts {sync: "always"|"batch"|"none"}?
---@return table? spool
---@return string? message
function _M.open(path, opts)
  local sync = opts and opts.sync or "batch"
  local lk, lerr = spool_lock(path)
  if not lk then return nil, lerr end
  os_remove(path .. ".tmp") -- a compaction that died before its rename
  local info, serr = scan(path)
  if not info then lk:release() return nil, serr end
  local self = setmetatable({
    path = path, sync = sync, lock = lk,
    head = info.head, size = info.size, pending = info.pending,
    corrupt = info.corrupt + info.bad_acks,
    damaged = info.corrupt, kept = 0, checked = 0, quarantined = 0, acks_unwritten = 0,
    v1 = info.v1,
    recovered = info.pending, dirty = false,
  }, mt)
  if info.empty or info.torn or info.v1 or info.corrupt > 0 or info.head > #HEADER then
    -- start from a clean file: drops acknowledged records and a torn tail, moves damaged
    -- lines aside, converts a format 1 file
    local ok, cerr = self:compact()
    if not ok and (info.empty or info.v1) then self:release() return nil, cerr end
    if not ok then
      -- no room for a new file: this one stays as it is, its torn tail cut off in place
      self.compact_error = cerr
      self.checked = info.size -- its damaged lines are counted already
      local rok, rerr = self:reopen()
      if rok and info.torn then rok, rerr = self.w:truncate(info.size) end
      if not rok then self:release() return nil, rerr end
    end
  else
    local ok, oerr = self:reopen()
    if not ok then self:release() return nil, oerr end
  end
  return self
end

--- Close the spool's writer, if open, and open a new one on the same path.
---@return true|nil ok
---@return string? err
function _M:reopen()
  if self.w then self.w:close() self.w = nil end
  local w, err = spool_writer(self.path)
  if not w then return nil, err end
  self.w = w
  return true
end

-- A record whose JSON text takes `len` bytes reached the kernel.
local function appended(self, len)
  self.size = self.size + len + TRAILER
  self.pending = self.pending + 1
  if self.sync == "always" then
    local ok, err = self.w:fsync()
    if not ok then return nil, err end
  else
    self.dirty, self.records_dirty = true, true
  end
  return true
end

--- Append one record (its JSON text, one line); written to the kernel before returning.
---@param json string one record
---@return true? ok
---@return string? message
function _M:append(json)
  local w = self.w
  if not w then return nil, "the spool is not open" end
  local ok, err = w:write_record(json)
  if not ok then return nil, err end
  return appended(self, #json)
end

--- Make a record in the writer's C buffer (no Lua string is made) from a template:
-- `encode(template, value, ...)`, where `template` is JSON texts joined by "\0", one more
-- than there are values: the texts are copied as they are (the fixed parts) and each value
-- between two is encoded as JSON (a string becomes a JSON string); a nil value leaves out
-- itself and the text before it (an optional member: its text is `,"key":`). Returns the
-- record's length in bytes (its JSON text); nil, message, true when a value cannot be
-- encoded as JSON; nil, message for a spool failure.
-- `append_encoded` writes it; anything that may reopen the spool (compaction) in between
-- drops it.
---@param ... any the template, then the values
---@return integer? length
---@return string? message
---@return boolean? encoding_failed
function _M:encode(...)
  local w = self.w
  if not w then return nil, "the spool is not open" end
  local len, err = w:encode(...)
  self.encoded = len
  if not len then return nil, err, true end
  return len
end

--- Append the record `encode` made; written to the kernel before returning.
---@return true? ok
---@return string? message
function _M:append_encoded()
  local len = self.encoded
  if not len then return nil, "no record encoded" end
  self.encoded = nil
  local ok, err = self.w:commit()
  if not ok then return nil, err end
  return appended(self, len)
end

--- fsync the spool now unless sync = "none" (before a batch leaves, at flush and close).
-- `records_only`: only when records were appended since the last fsync (before a batch: the
-- acks written after each batch need no fsync of their own, and one per batch was a
-- visible part of the delivery's cost).
---@param records_only boolean?
---@return true? ok
---@return string? message
function _M:sync_now(records_only)
  if self.sync == "none" or not self.dirty or not self.w then return true end
  if records_only and not self.records_dirty then return true end
  local ok, err = self.w:fsync()
  if ok then self.dirty, self.records_dirty = false, false end
  return ok, err
end

-- The spool's file, for reading (one handle, kept until release or compaction). Unbuffered:
-- the file holds zero bytes past its last record (the writer's window), and a buffer filled
-- by an earlier read would keep them after records were copied there (C's stdio seeks
-- within its buffer without reading again): each read goes to the file.
local function reader(self)
  local r = self.r
  if r then return r end
  local err
  r, err = io_open(self.path, "rb")
  if not r then return nil, "cannot read the spool: " .. tostring(err) end
  r:setvbuf("no")
  self.r = r
  return r
end

--- Read records from offset `from` (default: head): at most `max_count` records and
-- `max_bytes` bytes of their JSON texts (one record always). Returns their JSON texts (an
-- array of strings), offsets (start of each line), and the offset just past the last record
-- taken. Damaged lines are passed over.
---@param max_count integer
---@param max_bytes integer
---@param from integer? offset (default head)
---@return string[] records
---@return integer[] offsets
---@return integer endpos
function _M:read(max_count, max_bytes, from)
  from = from or self.head
  local r, err = reader(self)
  if not r then return nil, err end
  local lines, offs, n, bytes, endpos = {}, {}, 0, 0, from
  local v1 = self.v1
  each_line(r, from, self.size, function(s, i, j, at)
    local kind, len = classify(s, i, j, v1)
    if kind ~= "record" then return false end
    if n > 0 and (n >= max_count or bytes + len + 1 > max_bytes) then return true end
    n = n + 1
    lines[n], offs[n] = sub(s, i, i + len - 1), at
    bytes = bytes + len + 1
    endpos = at + j - i + 2
    return n >= max_count
  end)
  return lines, offs, endpos
end

--- The records from head as one request body: at most `max_count` records and `max_bytes`
-- bytes of them (one record always), joined by "," between `prefix` and `suffix`. Read and
-- assembled in C (src/spool_read.c): no string per record is made (the delivery's hot path;
-- under LuaJIT thousands of records alike but for a few bytes made that costly). Returns
-- body, count, endpos (the offset just past the last record taken); nil, message. `from`:
-- start there instead of at head (the next batch while one is on its way). Damaged lines met
-- for the first time are counted (`corrupt`) and left for compaction to move aside.
---@param max_count integer
---@param max_bytes integer
---@param prefix string
---@param suffix string
---@param from integer? offset (default head)
---@return string? body
---@return integer|string count_or_message
---@return integer? endpos
function _M:read_body(max_count, max_bytes, prefix, suffix, from)
  local w = self.w
  if not w then return nil, "the spool is not open" end
  local body, count, endpos, damaged, scanned = w:read_body(self.path, from or self.head,
    self.size, max_count, max_bytes, prefix, suffix, self.checked)
  if not body then return nil, count end
  if damaged > 0 then -- records this spool appended, damaged since: no longer pending
    self.corrupt, self.damaged = self.corrupt + damaged, self.damaged + damaged
    self.pending = self.pending > damaged and self.pending - damaged or 0
  end
  if scanned > self.checked then self.checked = scanned end
  return body, count, endpos
end

--- Mark everything before `offset` done (an "#ack" record), `count` records fewer pending.
---@param offset integer
---@param count integer
---@return true? ok
---@return string? message
function _M:ack(offset, count)
  local w = self.w
  if not w then return nil, "the spool is not open" end
  local line = format("#ack %d\n", offset)
  if w:write(line) then
    self.size = self.size + #line
    -- not fsynced: an ack lost to a power cut only makes delivered events go again, and
    -- their unique_ids make Klaviyo ignore them
    self.dirty = true
  else
    -- no room for it (disk full, file size limit): the same holds, so the records count
    -- as done here and compaction (which needs no room when nothing is live) frees the space
    self.acks_unwritten = self.acks_unwritten + 1
  end
  self.head = offset
  self.pending = self.pending - count
  return true
end

--- Bytes taken by acknowledged records (what compaction would free).
---@return integer
function _M:dead_bytes() return self.head - #HEADER end

-- Nothing live: the file is cut to a header in place (no room needed; a crash in between
-- leaves an empty file, which opens as a new spool). Not fsynced: a cut lost to a power
-- cut only brings back records that are done, which go again harmlessly.
local function cut(self)
  if not self.w then
    local ok, err = self:reopen()
    if not ok then return nil, err end
  end
  local ok, err = self.w:truncate(0, HEADER)
  if not ok then return nil, "cannot cut the spool: " .. tostring(err) end
  self.head, self.size, self.pending, self.checked, self.v1 = #HEADER, #HEADER, 0, 0, nil
  self.dirty, self.records_dirty = false, false
  self.compactions = (self.compactions or 0) + 1
  self.encoded = nil -- a record encoded before the cut is gone with it
  return true
end

-- Copies the lines of the spool to `out` (a spool writer on PATH.tmp): the records at or
-- after head as records, the damaged lines (from the start when there are any, else from
-- head) to the end of PATH.damaged. When PATH.damaged cannot be opened or written (a
-- directory, no permission, no room), the damaged lines from there on are copied to `out`
-- instead, as they are: the compaction still frees what was delivered, and those lines are
-- moved aside by a later compaction that can. Returns size, pending, moved aside, kept in
-- the spool, or nil, message.
local function copy_live(self, out)
  local r, err = reader(self)
  if not r then return nil, err end
  local q -- PATH.damaged, opened at the first damaged line; false once it failed
  local size, pending, moved, kept, head, v1 = #HEADER, 0, 0, 0, self.head, self.v1
  local werr
  each_line(r, (self.damaged > 0 or self.kept > 0) and #HEADER or head, self.size,
    function(s, i, j, at)
    local kind, len = classify(s, i, j, v1)
    local ok, e = true, nil
    if kind == "record" and at >= head then
      ok, e = out:write_record(sub(s, i, i + len - 1))
      size, pending = size + len + TRAILER, pending + 1
    elseif kind == "damaged" then
      if q == nil then
        -- a regular file or none (io.open would block on a FIFO until a reader came);
        -- unbuffered: a line whose write succeeded is in the kernel, so a later failure
        -- cannot take back lines counted as moved
        local dpath = self.path .. ".damaged"
        q = not file_kind(dpath) and io_open(dpath, "ab") or false
        if q then q:setvbuf("no") end
      end
      if q and q:write(sub(s, i, j), "\n") then
        moved = moved + 1
      else
        if q then q:close() q = false end
        ok, e = out:write(sub(s, i, j), "\n")
        size, kept = size + j - i + 2, kept + 1
      end
    end
    if not ok then werr = e return true end
  end)
  if q then
    -- lines moved aside that did not reach the disk are kept nowhere else: fail the copy
    local ok, e = q:close()
    if not ok and not werr then werr = e end
    if not werr and self.sync ~= "none" then werr = select(2, fsync_path(self.path .. ".damaged")) end
  end
  if werr then return nil, tostring(werr) end
  return size, pending, moved, kept
end

-- Whether a record line lies at or after head (read, not taken from `pending`: a cut must
-- never drop one, whatever the counts say).
local function live_after_head(self)
  if self.size <= self.head then return false end
  local r = reader(self)
  if not r then return true end
  local live, v1 = false, self.v1
  each_line(r, self.head, self.size, function(s, i, j)
    live = classify(s, i, j, v1) == "record"
    return live
  end)
  return live
end

--- Compact the spool: keep only the records at or after head, move damaged lines aside
-- (see the module comment). Returns true, or nil, message (the spool is as it was).
---@return true? ok
---@return string? message
function _M:compact()
  if self.pending == 0 and self.damaged == 0 and self.kept == 0 and not self.v1 and
    not live_after_head(self) then
    return cut(self)
  end
  local tmp = self.path .. ".tmp"
  local out, err = spool_writer(tmp)
  if not out then return nil, "cannot create " .. tmp .. ": " .. tostring(err) end
  local ok, werr = out:write(HEADER)
  local size, pending, moved, kept = #HEADER, 0, 0, 0
  if ok then size, pending, moved, kept = copy_live(self, out) end
  if not ok or not size then
    out:close()
    os_remove(tmp)
    return nil, "cannot compact the spool: " .. tostring(werr or pending)
  end
  if self.sync ~= "none" then ok, werr = out:fsync() end
  local cok, cerr = out:close()
  if not ok or not cok then
    os_remove(tmp)
    return nil, "cannot compact the spool: " .. tostring(werr or cerr)
  end
  if self.r then self.r:close() self.r = nil end
  local rok, rerr = os_rename(tmp, self.path)
  if not rok then os_remove(tmp) return nil, "cannot replace the spool: " .. tostring(rerr) end
  -- from here on the new file is the spool: switch to it before anything can fail
  self.head, self.size, self.pending, self.dirty, self.records_dirty = #HEADER, size, pending,
    false, false
  -- damaged lines kept in the new file are counted already (`checked`), and stay until a
  -- compaction moves them aside (`kept`: no cut in place while there are any)
  self.damaged, self.kept, self.checked, self.v1 = 0, kept, kept > 0 and size or 0, nil
  self.quarantined = self.quarantined + moved
  self.compactions = (self.compactions or 0) + 1
  self.encoded = nil -- a record encoded for the old writer is gone with it
  local ok2, oerr = self:reopen()
  if not ok2 then return nil, oerr end
  if self.sync ~= "none" then return fsync_path(dirname(self.path)) end
  return true
end

--- Close the files and release the lock; safe to call twice.
---@return nil
function _M:release()
  if self.w then
    self:sync_now()
    self.w:close()
    self.w = nil
  end
  if self.r then self.r:close() self.r = nil end
  if self.lock then self.lock:release() self.lock = nil end
  return true
end

_M.fsync_path = fsync_path
return _M
