--- A batched, durable event tracker: nothing lost, nothing fired twice.
--
--    local tracker = require("klaviyo.tracker")
--    local t = assert(tracker.new(client, { spool = "/var/spool/shop/klaviyo.spool" }))
--    local uid, err = t:track{ metric = "Placed Order", profile = { email = "a@b.com" },
--                              properties = { total = 59.9 } }
--    ...
--    t:close()          -- delivers what is left (or leaves it in the spool for the next start)
--
-- `track` checks the event as `events:create` does (same function), gives it a `unique_id`
-- and a `time` (when it happened, not when it is delivered), appends it to the spool (see
-- `klaviyo.tracker.spool` for the file format and the `sync` policy) and returns its
-- unique_id once it is on disk. Delivery sends the spool in `bulk_create_events` jobs of at
-- most `batch` events and 5 MB (`klaviyo.tracker.batcher`): an event is removed from the
-- spool only after Klaviyo accepted it or rejected it for a reason that repeating cannot fix
-- (reported via `stats()` and `on_reject`). Every re-send carries the same unique_id, so
-- Klaviyo records each event once and fires its flows once.
--
-- When delivery runs:
--
-- * plain Lua (no threads): inside `track` when a full batch is waiting or `interval`
--   seconds passed since the last delivery (unless `auto = false`), in `flush()` and in
--   `close()`. A failed attempt inside `track` never fails the `track` (the event is safe on
--   disk); the next attempt waits out the back-off (Retry-After, or exponential with jitter).
--   `flush(timeout)` is the only call that sleeps.
-- * OpenResty: one spool per worker and one `ngx.timer.every(interval)` flusher per worker;
--   `track` only appends (it never touches the network, so it is usable in any phase that
--   may write a file). Write `%w` in the spool path; it becomes the worker id
--   (`ngx.worker.id()`), which a restarted worker reuses, so it delivers what its predecessor
--   left. A spool is never shared between workers (the lock refuses a second owner). On
--   worker exit the timer closes the tracker without delivering; the events stay spooled.
--   Use a client whose transport yields (cosockets) in nginx: a blocking transport stalls the
--   worker while a batch is sent.
--
-- Retries and limits: the tracker sends through `client:call`, so the client's limiter and
-- retry rules apply to each job. Whatever the client gives up on, the tracker keeps:
-- the batch stays in the spool and goes again after a back-off, with the same unique_ids, so
-- neither the client's repeats nor the tracker's can record an event twice.
--
-- Not thread-safe across processes beyond the lock: one tracker per spool file.
-- @module klaviyo.tracker
local spool_mod = require "klaviyo.tracker.spool"
local batcher = require "klaviyo.tracker.batcher"
local events = require "klaviyo.events"
local layout = require "klaviyo.event_layout"
local V = require "klaviyo.validate"
local errors = require "klaviyo.errors"
local cjson = require("cjson.safe").new()

local type, pairs, tostring, error, pcall, setmetatable, getmetatable, next = type, pairs,
  tostring, error, pcall, setmetatable, getmetatable, next

local format, gsub, floor = string.format, string.gsub, math.floor
local check = events.check

-- The module's functions, and the methods of the object `new` returns.
---@class klaviyo.Tracker
local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

-- The wall clock, for the time an event happened, and sleep: nginx's when inside nginx,
-- LuaSocket's when installed, else os.time and no sleeping (flush then returns instead of
-- waiting out a back-off). Back-offs, the interval and flush's deadline are measured on the
-- core's monotonic clock (`clock`), which setting the wall clock neither stretches nor cuts.
local clock = require("klaviyo.core").monotonic
local ngx = rawget(_G, "ngx")
local in_ngx = type(ngx) == "table" and type(ngx.timer) == "table"
local now, sleep
if in_ngx then
  now, sleep = ngx.now, ngx.sleep
else
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket.gettime then
    now, sleep = socket.gettime, socket.sleep
  else
    now = os.time
  end
end

local OPTIONS = {
  spool = "string", batch = "number", interval = "number", max_spool_bytes = "number",
  max_batch_bytes = "number", sync = "string", on_reject = "function", auto = "boolean",
  flush_timeout = "number", backoff_base = "number", backoff_cap = "number",
  compact_bytes = "number", timer = "boolean", concurrency = "number",
}
local SYNC = { always = true, batch = true, none = true }
local MAX_BATCH, MAX_BYTES = V.LIMITS.bulk_events, V.LIMITS.payload_bytes

local function positive(opts, name, level, max)
  local v = opts[name]
  if v ~= nil and not (v > 0 and v <= (max or math.huge)) then
    error(format("klaviyo.tracker: option %s must be a positive number%s", name,
      max and (" at most " .. max) or ""), level + 1)
  end
end

--- Open a tracker over `client` (from `klaviyo.new`).
---@param client klaviyo.Client
---@param opts table `spool` (path, required; `%w` = nginx worker id), `batch` (events per
--   job, default and max 1000), `interval` (seconds between deliveries, default 1),
--   `max_spool_bytes` (back-pressure, default 64 MiB), `max_batch_bytes` (default 5 MB),
--   `sync` ("always"|"batch"|"none", default "batch"), `on_reject(err, entry)`, `auto`
--   (deliver from `track`, default true), `flush_timeout` (default 60 s), `backoff_base`
--   (0.5 s), `backoff_cap` (30 s), `compact_bytes` (1 MiB), `timer` (nginx flusher, default
--   true inside nginx), `concurrency` (jobs sent at once by one delivery, 1..16; default 2
--   with the curl transport, 1 with cosockets, which have no client:batch)
---@param level integer? the level its misuse errors are raised at (default 2: new's caller)
-- @return tracker, or nil, err (the spool cannot be opened, or another process owns it)
---@return klaviyo.Tracker? tracker
---@return klaviyo.Error? err
function _M.new(client, opts, level)
  level = level or 2   -- client:tracker passes 3: the errors name its caller
  if type(client) ~= "table" or type(client.call) ~= "function" then
    error("klaviyo.tracker.new: expected a client from klaviyo.new", level)
  end
  if type(opts) ~= "table" then error("klaviyo.tracker.new: expected a table of options", level) end
  V.options(opts, OPTIONS, "klaviyo.tracker", "option", level)
  if not opts.spool or opts.spool == "" then
    error("klaviyo.tracker: option spool (a file path) is required", level)
  end
  if opts.sync and not SYNC[opts.sync] then
    error("klaviyo.tracker: option sync must be \"always\", \"batch\" or \"none\"", level)
  end
  positive(opts, "batch", level, MAX_BATCH)
  positive(opts, "max_batch_bytes", level, MAX_BYTES)
  for _, name in pairs({ "interval", "max_spool_bytes", "flush_timeout", "backoff_base",
                         "backoff_cap", "compact_bytes" }) do
    positive(opts, name, level)
  end
  local conc = opts.concurrency
  if conc ~= nil and (conc ~= floor(conc) or conc < 1 or conc > 16) then
    error("klaviyo.tracker: option concurrency must be an integer from 1 to 16", level)
  end
  -- several jobs at once need client:batch, which only the curl transport has
  local can_batch = not client.transport and type(client.batch) == "function"
  if conc and conc > 1 and not can_batch then
    error("klaviyo.tracker: option concurrency > 1 needs a client with the curl transport", level)
  end
  local path = opts.spool
  if path:find("%w", 1, true) then
    local id = in_ngx and ngx.worker and ngx.worker.id and ngx.worker.id() or 0
    path = gsub(path, "%%w", tostring(id or 0))
  end
  local sp, err = spool_mod.open(path, { sync = opts.sync or "batch" })
  if not sp then return nil, errors.new("spool", "tracker", err) end
  local self = setmetatable({
    client = client, spool = sp,
    batch = opts.batch and math.floor(opts.batch) or MAX_BATCH,
    max_batch_bytes = opts.max_batch_bytes or MAX_BYTES,
    interval = opts.interval or 1.0,
    max_spool_bytes = opts.max_spool_bytes or 64 * 1024 * 1024,
    on_reject = opts.on_reject,
    auto = opts.auto ~= false and not in_ngx,
    flush_timeout = opts.flush_timeout or 60,
    backoff_base = opts.backoff_base or 0.5, backoff_cap = opts.backoff_cap or 30,
    compact_bytes = opts.compact_bytes or 1024 * 1024,
    concurrency = conc or (can_batch and 2 or 1),
    -- events left by an earlier process: the first track (or the first timer tick) sends
    -- them, ahead of the new ones (the spool is first in, first out)
    next_attempt = 0, attempt = 0, last_delivery = sp.pending > 0 and 0 or clock(),
    rejected_lines = {},
    counts = { tracked = 0, delivered = 0, rejected = 0, requests = 0, failures = 0,
              batches = 0, recovered = sp.recovered, delivery_errors = 0,
              compaction_failures = sp.compact_error and 1 or 0, last_error = sp.compact_error },
  }, mt)
  if in_ngx and opts.timer ~= false then
    local ok, terr = ngx.timer.every(self.interval, function(premature)
      if premature then self:close(0) return end
      if self.closed or clock() < self.next_attempt then return end
      -- a failure here has no caller to answer: besides stats, it goes to nginx's error log
      local ok, derr, outcome = self:deliver(true)
      if not ok then
        ngx.log(ngx.ERR, "klaviyo tracker: delivery failed (", outcome or "retry", ", ",
          self.spool.pending, " events kept in the spool): ", batcher.text(derr))
      end
    end)
    if not ok then
      sp:release()
      return nil, errors.new("spool", "tracker", "cannot start the flush timer: " .. tostring(terr))
    end
  end
  return self
end

local function check_self(self, name)
  if getmetatable(self) ~= mt then
    error(format("tracker:%s: call it as a method (with ':')", name), 3)
  end
end

--- Reports a rejected event once per process (a batch retried after a transient failure may
-- meet the same bad event again).
---@param line string the event as spooled (JSON)
---@param err klaviyo.Error
---@return nil
function _M:reject(line, err)
  if self.rejected_lines[line] then return end
  self.rejected_lines[line] = true
  local st = self.counts
  st.rejected = st.rejected + 1
  local entry = cjson.decode(line)
  local uid = layout.entry_unique_id(entry)
  err.unique_id = uid
  local p = layout.entry_pointer(err.pointer)
  if p then err.entry_pointer = p end
  st.last_rejected = { unique_id = uid, error = batcher.text(err) }
  if self.on_reject then
    local ok, cerr = pcall(self.on_reject, err, entry)
    if not ok then st.last_error = "on_reject raised: " .. batcher.text(cerr) end
  end
end

-- Compacts the spool. A compaction that fails (no room for the copy) leaves the spool as it
-- was and working: it is counted and reported in stats, and tried again later.
local function compact(self)
  local ok, err = self.spool:compact()
  if not ok then
    local st = self.counts
    st.compaction_failures = st.compaction_failures + 1
    st.last_error = err
  end
end

local function maybe_compact(self)
  local sp = self.spool
  local dead = sp:dead_bytes()
  -- at least half the file dead (or damaged lines to move aside): copying the live half costs
  -- no more than what was written; nothing live: the cut in place costs nothing
  if (dead >= self.compact_bytes and dead >= sp.size - sp.head) or sp.damaged > 0 or
    (dead > 0 and sp.pending == 0) then
    compact(self)
  end
end

-- After a batch was sent (`sent`, `what`, `serr`, `src` from batcher.deliver_body): the
-- accepted (or rejected and reported) records are acknowledged; a failure sets the back-off.
-- Returns true, or nil, err, outcome.
local function settle(self, sent, what, serr, src, count, endpos)
  local sp = self.spool
  if not sent then
    maybe_compact(self) -- what was delivered before the failure (its error comes first)
    self.attempt = self.attempt + 1
    self.next_attempt = clock() + batcher.backoff(serr, self.attempt, self.backoff_base,
      self.backoff_cap)
    return nil, serr, what
  end
  self.attempt = 0
  local rejected = 0
  if next(self.rejected_lines) ~= nil then
    -- the lines rejected by this batch's answers (read already by the rejection); a batch
    -- accepted whole in a client:batch (no `src`) had none, whatever earlier attempts met
    local lines = src and batcher.lines_of(src) or {}
    for i = 1, #lines do if self.rejected_lines[lines[i]] then rejected = rejected + 1 end end
    self.rejected_lines = {}
  end
  local stats = self.counts
  stats.batches = stats.batches + 1
  stats.delivered = stats.delivered + count - rejected
  local ok, err = sp:ack(endpos, count)
  if not ok then return nil, err, "stop" end
  return true
end

-- The records of one batch from `from`: a request body (assembled in C, no string per
-- record: see the spool), its record count and the offset after its last record.
local function read_batch(self, from)
  return self.spool:read_body(self.batch, self.max_batch_bytes - batcher.ENVELOPE,
    layout.PREFIX, layout.SUFFIX, from)
end

-- One delivery pass (see `deliver`); may raise (a transport, an error's __tostring, a
-- callback): `deliver` catches it.
local function deliver_pass(self, all)
  local sp = self.spool
  while sp.pending > 0 and (all or sp.pending >= self.batch) do
    local ok, err = sp:sync_now(true) -- the records about to leave are on disk
    if not ok then return nil, err, "stop" end
    -- up to `concurrency` batches, each read from where the one before ends
    local bodies, counts, ends, heads = {}, {}, {}, {}
    local from, left = sp.head, sp.pending
    for k = 1, self.concurrency do
      local body, count, endpos = read_batch(self, from)
      if not body then return nil, errors.new("spool", "tracker", count), "stop" end
      if count == 0 then
        if k == 1 then sp.pending = 0 end
        break
      end
      bodies[k], counts[k], ends[k], heads[k] = body, count, endpos, from
      from, left = endpos, left - count
      if left <= 0 or not (all or left >= self.batch) then break end
    end
    if #bodies == 0 then break end
    local answers = #bodies > 1 and batcher.send_many(self, bodies) or { false }
    for k = 1, #bodies do
      local head, count = heads[k], counts[k]
      local answer = answers[k]
      local sent, what, serr, src = true, nil, nil, nil
      if answer ~= true then
        -- not sent yet (one batch alone), or failed: judged (and split around a rejected
        -- event) by the batcher
        sent, what, serr, src = batcher.deliver_body(self, bodies[k], count, function()
          return sp:read(count, math.huge, head)
        end, answer or nil)
      end
      local sok, serr2, swhat = settle(self, sent, what, serr, src, count, ends[k])
      if not sok then return nil, serr2, swhat end
    end
  end
  -- compaction once the pass is over, not after every batch: during a long pass it copied
  -- the live part of the spool again and again (it is atomic either way; see the spool)
  maybe_compact(self)
  self.last_delivery = clock()
  return true
end

--- Send batches from the head of the spool: every waiting event when `all`, else only full
-- batches. With `concurrency` > 1 (the curl transport), that many jobs go at once
-- (client:batch), so the next one is on its way while the server works on one; their
-- answers are settled in spool order, and a job after one that failed is acknowledged only
-- once everything before it is (it goes again later; its unique_ids make that harmless).
-- Returns true, or nil, err, outcome ("retry"|"stop") after a failed attempt (the next one
-- waits for the back-off). Never raises: an error raised during the pass (by the transport,
-- an error value, a callback) is caught, counted (`delivery_errors`, `last_error`) and
-- answered as a failed attempt; the events it was sending stay in the spool (only an ack
-- removes them, and an ack follows an accepted answer), and the tracker is ready for the
-- next attempt.
---@param all boolean? send every waiting event, not only full batches
---@return true? ok
---@return klaviyo.Error? err
---@return "retry"|"stop"|nil outcome
function _M:deliver(all)
  -- another delivery is running (nginx: the timer while a request flushes; plain Lua: a
  -- flush from inside on_reject)
  if self.delivering then return true, "busy" end
  self.delivering = true
  local ok, a, b, c = pcall(deliver_pass, self, all)
  self.delivering = false
  if ok then return a, b, c end
  local st = self.counts
  local err = errors.new("delivery", "tracker", "delivery raised: " .. batcher.text(a))
  st.failures = st.failures + 1
  st.delivery_errors = st.delivery_errors + 1
  st.last_error = batcher.text(err)
  self.attempt = self.attempt + 1
  self.next_attempt = clock() + batcher.backoff(nil, self.attempt, self.backoff_base,
    self.backoff_cap)
  return nil, err, "retry"
end

-- A spooled record: one bulk_create_events entry made from klaviyo.event_layout's template
-- (the spool writer's encode) with the caller's own tables in it: no table is made per event.
local RECORD = layout.RECORD
local EMPTY = {} -- the properties of an event given none (only ever encoded, never changed)

local function encode(sp, ev, pattrs, props, metric, time, uid)
  return sp:encode(RECORD, pattrs, ev.profile.id, props or EMPTY, metric, ev.service, time,
    uid, ev.value, ev.value_currency, ev.backfill)
end

-- The ISO 8601 text of epoch seconds `t` cut to the millisecond, as V.iso writes it (the
-- first argument, the tracker, is not used).
local function stamp(_, t)
  return V.iso(floor(t * 1000) / 1000)
end
_M.stamp = stamp -- @local (for the specs)

--- Record one event. Returns its unique_id once it is in the spool; nil, err when the event
-- is invalid (err.kind "refused", nothing stored) or the spool is full (err.kind
-- "spool_full": back-pressure; retry later or shed load, nothing was stored). Once the event
-- is stored `track` answers its unique_id whatever a delivery it starts meets (`deliver`
-- never raises; its failures show in `stats` and later answers), so a caller that retries
-- a failed `track` never stores an event twice.
---@param ev table the event, as for events:create
---@return string? unique_id
---@return klaviyo.Error? err
function _M:track(ev)
  check_self(self, "track")
  if self.closed then error("tracker:track: the tracker is closed", 2) end
  local metric, props, pattrs, time, uid = check(ev, "tracker:track", "", nil)
  if not metric then return nil, V.refuse("bulk_create_events", props, pattrs) end
  if time == nil then time = stamp(self, now()) end -- the time it happened
  -- the record (a bulk entry) is made in C memory from the template and the event's values,
  -- and written from there (see the spool): never a Lua string, which under LuaJIT cost
  -- several times the encoding
  local sp = self.spool
  local len, eerr, ejson = encode(sp, ev, pattrs, props, metric, time, uid)
  if not len then
    if ejson then return nil, V.refuse("bulk_create_events", tostring(eerr)) end
    return nil, errors.new("spool", "tracker", eerr)
  end
  if len + batcher.ENVELOPE > self.max_batch_bytes then
    return nil, V.refuse("bulk_create_events", format(
      "the event takes %d bytes, over the %d-byte request limit", len, self.max_batch_bytes))
  end
  if sp.size + len + 1 > self.max_spool_bytes and not self.delivering then
    -- make room first: deliver (unless backing off), then drop what was delivered
    if self.auto and clock() >= self.next_attempt then self:deliver(true) end
    if sp:dead_bytes() > 0 then compact(self) end
    if sp.size + len + 1 > self.max_spool_bytes then
      return nil, errors.new("spool_full", "tracker", format(
        "the spool holds %d undelivered events (%d bytes, max_spool_bytes %d); nothing was " ..
        "stored: retry once delivery catches up", sp.pending, sp.size, self.max_spool_bytes))
    end
    if not sp.encoded then -- compaction replaced the spool's writer, and its record with it
      len, eerr = encode(sp, ev, pattrs, props, metric, time, uid)
      if not len then return nil, errors.new("spool", "tracker", eerr) end
    end
  end
  local ok, werr = sp:append_encoded()
  if not ok then return nil, errors.new("spool", "tracker", werr) end
  self.counts.tracked = self.counts.tracked + 1
  if self.auto and not self.delivering then
    local full, t = sp.pending >= self.batch, clock()
    if (full or t - self.last_delivery >= self.interval) and t >= self.next_attempt then
      self:deliver(not full)
    end
  end
  return uid
end

--- Deliver every spooled event, waiting out back-offs, for at most `timeout` seconds
-- (default `flush_timeout`). Returns true when the spool is empty, or nil, err (the last
-- failure, or a timeout; err.pending says how many events wait).
---@param timeout number? seconds
---@return true? ok
---@return klaviyo.Error? err
function _M:flush(timeout)
  check_self(self, "flush")
  if self.closed then return nil, errors.new("closed", "tracker", "the tracker is closed") end
  local sp = self.spool
  local deadline = clock() + (timeout or self.flush_timeout)
  -- what is left of it bounds each call the deliveries make (see the batcher)
  local outer = self.time_left
  self.time_left = function() return deadline - clock() end
  local last
  while sp.pending > 0 do
    local t = clock()
    if t < self.next_attempt then
      if self.next_attempt > deadline or not sleep then break end
      sleep(self.next_attempt - t)
    end
    local ok, err, what = self:deliver(true)
    if err == "busy" then
      if not in_ngx then
        self.time_left = outer
        return nil, errors.new("busy", "tracker", "flush called during a delivery (from on_reject?)")
      end
      sleep(0.01) -- let the running delivery progress
    elseif not ok then
      last = err
      if what == "stop" then break end
    end
    if clock() >= deadline then break end
  end
  self.time_left = outer
  local ok, err = sp:sync_now()
  if not ok then return nil, errors.new("spool", "tracker", err) end
  if sp.pending > 0 then
    local e = errors.new("flush", "tracker", format("%d events are still waiting%s", sp.pending,
      last and (": " .. batcher.text(last)) or ""), { pending = sp.pending, cause = last })
    return nil, e
  end
  return true
end

--- Flush (for at most `timeout` seconds; 0 skips it), then close the spool. Events not
-- delivered stay in the spool for the next tracker on it. Safe to call twice.
-- Returns flush's answer.
---@param timeout number? seconds for the flush (0 skips it)
---@return true? ok
---@return klaviyo.Error? err
function _M:close(timeout)
  check_self(self, "close")
  if self.closed then return true end
  local ok, err = true, nil
  if timeout ~= 0 then ok, err = self:flush(timeout) end
  self.closed = true
  self.spool:release()
  return ok, err
end

--- Counters: tracked, delivered (accepted by Klaviyo), rejected, pending (in the spool),
-- spool_bytes, requests, failures, batches, recovered (found in the spool at start),
-- corrupt (damaged lines found in the spool), quarantined (damaged lines moved aside to
-- PATH.damaged), compactions, compaction_failures (no room for the copy: the spool is kept
-- as it was), acks_unwritten (acks the disk had no room for), delivery_errors (delivery
-- passes cut short by a raised error),
-- last_error, last_rejected ({unique_id, error}), retry_in (seconds until the next attempt
-- may run).
---@return table counters
function _M:stats()
  check_self(self, "stats")
  local out = {}
  for k, v in pairs(self.counts) do out[k] = v end
  local sp = self.spool
  out.pending = sp.pending
  out.spool_bytes = sp.size
  out.compactions = sp.compactions or 0
  out.corrupt, out.quarantined, out.acks_unwritten = sp.corrupt, sp.quarantined, sp.acks_unwritten
  local t = clock()
  local wait = self.next_attempt - t
  out.retry_in = wait > 0 and wait or 0
  return out
end

_M.now = now
return _M
