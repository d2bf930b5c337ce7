--- The tracker's spool: an append-only file holding every event the tracker accepted and has
-- not yet seen acknowledged, so that a crash loses nothing and a restart delivers the rest.
--
-- File format (text, one record per line; JSON never holds a raw newline, so a line is a
-- record):
--
--     klaviyo-spool 1\n              header: format name and version
--     {"type":"event-bulk-create",...}\n   one event, as the bulk_create_events entry that
--                                          carries it (profile + one event); sent as is
--     #ack 123456\n                  every record that starts before byte 123456 is done
--                                    (accepted by Klaviyo, or rejected and reported)
--
-- While a spool is open its file is longer than its records: appends go into a mapped
-- window of the file allocated ahead (see src/lua_spool.c), which reads as zero bytes after
-- the last record until `release` cuts the file to its records. So a process that died
-- leaves its records, then maybe zero bytes, or a record cut short (a file written by
-- something else): bytes after the last "\n" are a torn tail whose `track` never returned,
-- dropped when the spool is next opened. A line that is neither a record nor an ack (disk
-- corruption) is skipped and counted (`corrupt`). An append that fails (disk full, file
-- size limit) writes no byte of its record.
--
-- Durability (`sync`): every record is in the kernel (copied into the page cache through
-- the mapping) before `track` returns, so a killed process loses nothing. `sync = "always"`
-- also fsyncs each record (survives power loss; slowest); `"batch"` (default) fsyncs the
-- spool before each delivery pass sends it, and at flush/close (a power loss can lose the
-- records written since the last fsync); `"none"` leaves it to the operating system. Acks
-- are never fsynced: a lost ack only makes delivered events go again, which their
-- unique_ids make harmless.
--
-- Compaction removes acknowledged records without ever risking unacknowledged ones: the
-- live records are copied to PATH.tmp, which is fsynced and renamed over PATH (atomic), then
-- the directory is fsynced. A crash before the rename leaves the old file (acks included)
-- authoritative and a stale PATH.tmp, removed on the next open; after it, the new file.
--
-- One owner at a time: the spool is opened under an exclusive lock (flock on PATH.lock, see
-- src/lua_spool_lock.c), held until `release` (or until the spool is collected, or its
-- process dies), so a second open fails while the first owner lives, in this process or
-- another. Two writers would lose events (compaction by one replaces the file the other
-- appends to, and both would write after the same end).
-- @module klaviyo.tracker.spool
local io_open, os_rename, os_remove = io.open, os.rename, os.remove
local tonumber, tostring = tonumber, tostring
local format, find, sub, match, byte = string.format, string.find, string.sub, string.match,
  string.byte
local setmetatable = setmetatable

local _M = {}
local mt = { __index = _M }

local HEADER = "klaviyo-spool 1\n"
_M.HEADER = HEADER
local CHUNK = 256 * 1024
local BRACE, HASH = byte("{"), byte("#")

-- Appends, fsyncs and the delivery's reads go through the C core (src/lua_spool.c): a record
-- is encoded into C memory and copied from there into the mapped spool, and a batch is read
-- and joined into a request body in C, so neither makes a Lua string per record (LuaJIT
-- interns every string, and records alike but for a few bytes made that cost several times
-- the encoding); fsync(2) is reachable from every interpreter (PUC Lua used to run
-- `sync FILE` for it). A record is in the kernel (the page cache) when `append` returns.
local core = require "klaviyo.core"
local spool_writer, fsync_path, spool_lock = core.spool_writer, core.fsync_path, core.spool_lock

local function dirname(path)
  return match(path, "^(.*)/[^/]*$") or "."
end

--- Scan a spool file. Returns {head, size, pending, torn, corrupt, lines} or nil, message.
-- `head`: offset of the first record not acknowledged; `size`: offset after the last complete
-- line; `pending`: records at or after head.
local function scan(path)
  local f = io_open(path, "rb")
  local fresh = { head = 0, size = 0, pending = 0, torn = false, corrupt = 0, empty = true }
  if not f then return fresh end
  local first = f:read(#HEADER)
  if first == nil then f:close() return fresh end
  if first ~= HEADER then
    f:close()
    if sub(HEADER, 1, #first) == first then -- died while writing the header
      return { head = 0, size = 0, pending = 0, torn = true, corrupt = 0, empty = true }
    end
    return nil, format("%s is not a klaviyo tracker spool (bad header)", path)
  end
  -- Offsets of records not yet behind the last ack, oldest first (a queue: acks only move
  -- forward and follow the records they cover).
  local pos = #HEADER          -- offset of the start of `buf`
  local head = #HEADER
  local buf = ""
  local q, qfirst, qlast, corrupt = {}, 1, 0, 0
  while true do
    local chunk = f:read(CHUNK)
    if chunk == nil then break end
    buf = buf .. chunk
    local i = 1
    while true do
      local nl = find(buf, "\n", i, true)
      if not nl then break end
      local c = byte(buf, i)
      if c == BRACE then
        qlast = qlast + 1
        q[qlast] = pos + i - 1
      elseif c == HASH then
        local a = tonumber(match(sub(buf, i, nl - 1), "^#ack (%d+)$"))
        if a then
          if a > head then head = a end
          while qfirst <= qlast and q[qfirst] < head do q[qfirst] = nil qfirst = qfirst + 1 end
        else
          corrupt = corrupt + 1
        end
      elseif nl > i then
        corrupt = corrupt + 1
      end
      i = nl + 1
    end
    pos = pos + i - 1
    buf = sub(buf, i)
  end
  f:close()
  local pending = qlast - qfirst + 1
  return { head = head, size = pos, pending = pending, torn = #buf > 0, corrupt = corrupt }
end
_M.scan = scan

--- Open (or create) the spool at `path`. opts: `sync` ("always"|"batch"|"none").
-- Returns the spool or nil, message.
function _M.open(path, opts)
  local sync = opts and opts.sync or "batch"
  local lk, lerr = spool_lock(path)
  if not lk then return nil, lerr end
  os_remove(path .. ".tmp") -- a compaction that died before its rename
  local info, serr = scan(path)
  if not info then lk:release() return nil, serr end
  local self = setmetatable({
    path = path, sync = sync, lock = lk,
    head = info.head, size = info.size, pending = info.pending, corrupt = info.corrupt,
    recovered = info.pending, dirty = false,
  }, mt)
  if info.empty or info.torn or info.head > #HEADER then
    -- start from a clean file: drops acknowledged records and a torn tail
    local ok, cerr = self:compact()
    if not ok then self:release() return nil, cerr end
  else
    local ok, oerr = self:reopen()
    if not ok then self:release() return nil, oerr end
  end
  return self
end

function _M:reopen()
  if self.w then self.w:close() self.w = nil end
  local w, err = spool_writer(self.path)
  if not w then return nil, err end
  self.w = w
  return true
end

-- A record of `len` bytes (and its "\n") reached the kernel.
local function appended(self, len)
  self.size = self.size + len + 1
  self.pending = self.pending + 1
  if self.sync == "always" then
    local ok, err = self.w:fsync()
    if not ok then return nil, err end
  else
    self.dirty, self.records_dirty = true, true
  end
  return true
end

--- Append one record (a line without its "\n"); written to the kernel before returning.
function _M:append(line)
  local w = self.w
  if not w then return nil, "the spool is not open" end
  local ok, err = w:write(line, "\n")
  if not ok then return nil, err end
  return appended(self, #line)
end

--- Make a record in the writer's C buffer (no Lua string is made) from a template:
-- `encode(template, value, ...)`, where `template` is JSON texts joined by "\0", one more
-- than there are values: the texts are copied as they are (the fixed parts) and each value
-- between two is encoded as JSON (a string becomes a JSON string); a nil value leaves out
-- itself and the text before it (an optional member: its text is `,"key":`). Returns the
-- record's length in bytes (without the "\n"); nil, message, true when a value cannot be
-- encoded as JSON; nil, message for a spool failure.
-- `append_encoded` writes it; anything that may reopen the spool (compaction) in between
-- drops it.
function _M:encode(...)
  local w = self.w
  if not w then return nil, "the spool is not open" end
  local len, err = w:encode(...)
  self.encoded = len
  if not len then return nil, err, true end
  return len
end

--- Append the record `encode` made; written to the kernel before returning.
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
function _M:sync_now(records_only)
  if self.sync == "none" or not self.dirty or not self.w then return true end
  if records_only and not self.records_dirty then return true end
  local ok, err = self.w:fsync()
  if ok then self.dirty, self.records_dirty = false, false end
  return ok, err
end

--- Read records from offset `from` (default: head): at most `max_count` records and
-- `max_bytes` bytes of record text. Returns lines (array of strings), offsets (start of each),
-- and the offset just past the last line consumed.
function _M:read(max_count, max_bytes, from)
  from = from or self.head
  local r = self.r
  if not r then
    local err
    r, err = io_open(self.path, "rb")
    if not r then return nil, "cannot read the spool: " .. tostring(err) end
    -- unbuffered: the file holds zero bytes past its last record (the writer's window), and
    -- a buffer filled by an earlier read would keep them after records were copied there
    -- (C's stdio seeks within its buffer without reading again): each read goes to the file
    r:setvbuf("no")
    self.r = r
  end
  r:seek("set", from)
  local lines, offs, n, bytes = {}, {}, 0, 0
  local pos, buf = from, ""
  local limit = self.size
  while n < max_count and pos < limit do
    local want = limit - pos - #buf
    if want > 0 then
      local chunk = r:read(want < CHUNK and want or CHUNK)
      if chunk then buf = buf .. chunk end
    end
    local i, stop = 1, false
    while true do
      local nl = find(buf, "\n", i, true)
      if not nl then break end
      local c = byte(buf, i)
      if c == BRACE then
        local len = nl - i
        if n > 0 and (n >= max_count or bytes + len + 1 > max_bytes) then stop = true break end
        n = n + 1
        lines[n] = sub(buf, i, nl - 1)
        offs[n] = pos + i - 1
        bytes = bytes + len + 1
      end
      i = nl + 1
    end
    pos = pos + i - 1
    buf = sub(buf, i)
    if stop or want <= 0 then break end
  end
  return lines, offs, pos
end

--- The records from head as one request body: at most `max_count` records and `max_bytes`
-- bytes of them (one record always), joined by "," between `prefix` and `suffix`. Read and
-- assembled in C (src/lua_spool.c): no string per record is made (the delivery's hot path;
-- under LuaJIT thousands of records alike but for a few bytes made that costly). Returns
-- body, count, endpos (the offset just past the last record taken); nil, message. `from`:
-- start there instead of at head (the next batch while one is on its way).
function _M:read_body(max_count, max_bytes, prefix, suffix, from)
  local w = self.w
  if not w then return nil, "the spool is not open" end
  return w:read_body(self.path, from or self.head, self.size, max_count, max_bytes, prefix,
    suffix)
end

--- Mark everything before `offset` done (an "#ack" record), `count` records fewer pending.
function _M:ack(offset, count)
  local w = self.w
  if not w then return nil, "the spool is not open" end
  local line = format("#ack %d\n", offset)
  local ok, err = w:write(line)
  if not ok then return nil, err end
  self.size = self.size + #line
  self.head = offset
  self.pending = self.pending - count
  -- not fsynced: an ack lost to a power cut only makes delivered events go again, and
  -- their unique_ids make Klaviyo ignore them
  self.dirty = true
  return true
end

--- Bytes taken by acknowledged records (what compaction would free).
function _M:dead_bytes() return self.head - #HEADER end

--- Rewrite the spool keeping only the records at or after head (see the module comment).
function _M:compact()
  local tmp = self.path .. ".tmp"
  local out, err = io_open(tmp, "wb")
  if not out then return nil, "cannot create " .. tmp .. ": " .. tostring(err) end
  out:setvbuf("full", CHUNK)
  out:write(HEADER)
  local size, pending = #HEADER, 0
  if self.size > self.head then
    local from = self.head
    while true do
      local lines, _, pos = self:read(4096, 64 * 1024 * 1024, from)
      if not lines then out:close() os_remove(tmp) return nil, _ end
      if #lines == 0 then break end
      for i = 1, #lines do
        out:write(lines[i], "\n")
        size = size + #lines[i] + 1
      end
      pending = pending + #lines
      from = pos
    end
  end
  local ok, werr = out:flush()
  if not ok then out:close() os_remove(tmp) return nil, "cannot write " .. tmp .. ": " .. tostring(werr) end
  if self.sync ~= "none" then
    local sok, serr = fsync_path(tmp)
    if not sok then out:close() os_remove(tmp) return nil, serr end
  end
  out:close()
  if self.r then self.r:close() self.r = nil end
  local rok, rerr = os_rename(tmp, self.path)
  if not rok then os_remove(tmp) return nil, "cannot replace the spool: " .. tostring(rerr) end
  -- from here on the new file is the spool: switch to it before anything can fail
  self.head, self.size, self.pending, self.dirty, self.records_dirty = #HEADER, size, pending,
    false, false
  self.compactions = (self.compactions or 0) + 1
  self.encoded = nil -- a record encoded for the old writer is gone with it
  local ok2, oerr = self:reopen()
  if not ok2 then return nil, oerr end
  if self.sync ~= "none" then return fsync_path(dirname(self.path)) end
  return true
end

--- Close the files and release the lock; safe to call twice.
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
