--- Delivery of spooled events as bulk_create_events jobs, and what an answer means.
--
-- A batch is a run of spool records (each already the JSON of one `event-bulk-create` entry),
-- joined into one request body without decoding or re-encoding them. The answer decides:
--
-- * 202: every event of the batch is accepted. Only a 202: it is Klaviyo's one answer for an
--   accepted job, and another success status (a proxy's or a captive portal's 200, a broken
--   server's 204) does not say anything was recorded, so it is taken as an unreadable answer.
-- * 400 whose pointer names an entry of the request
--   (`/data/attributes/events-bulk-create/data/N/...`): that event is bad. The events before
--   it and after it are sent again as their own batches and the bad one is rejected:
--   reported (stats, `on_reject`) and never retried.
-- * 413: the batch is halved until the oversized event is alone, and that one is rejected if
--   its request is over Klaviyo's size limit; one within it is not what the 413 is about (a
--   proxy in the way, a broken server), so it stays and delivery stops as for a 400 that
--   names no event.
-- * 400 or 422 without such a pointer (none, or one naming an entry the request does not
--   have): it is about the request itself, not an event, so nothing is rejected; the events
--   stay and delivery stops, as for a configuration problem.
-- * 429, 5xx, a transport failure, an unreadable answer (a success status other than 202, or
--   a body that is not JSON): nothing is known to be lost or
--   accepted, so the whole batch stays in the spool and is sent again after a back-off
--   (Retry-After when given, else exponential with full jitter). Re-sending is safe: every
--   event carries its unique_id, so Klaviyo records it once.
-- * any other 4xx (401, 403, ...): a configuration problem; the events stay and delivery
--   stops until the next attempt, with the error in stats and in flush's answer.
-- @module klaviyo.tracker.batcher
local errors = require "klaviyo.errors"

local concat, floor, random, format = table.concat, math.floor, math.random, string.format
local type, tostring, tonumber, pcall = type, tostring, tonumber, pcall

local layout = require "klaviyo.event_layout"
local MAX_BYTES = require("klaviyo.validate").LIMITS.payload_bytes -- a request body

local _M = {}

local PREFIX, SUFFIX = layout.PREFIX, layout.SUFFIX
local ENVELOPE = #PREFIX + #SUFFIX
_M.ENVELOPE = ENVELOPE

--- The request body for lines[i..j].
---@param lines string[] spooled events (JSON)
---@param i integer
---@param j integer
---@return string body
function _M.body(lines, i, j)
  return PREFIX .. concat(lines, ",", i, j) .. SUFFIX
end

-- What a delivery sends: `lines` (an array of records), or `body` (the request body of all
-- `count` records, from `spool:read_body`) and `read_lines`, which gives the records one by
-- one: called only when a rejection needs to split the batch. Returns the lines or nil, err.
local function lines_of(src)
  local lines = src.lines
  if lines then return lines end
  local err
  lines, err = src.read_lines()
  if not lines then return nil, err end
  if #lines ~= src.count then
    return nil, "the spool gave " .. #lines .. " records for a batch of " .. src.count
  end
  src.lines = lines
  return lines
end
_M.lines_of = lines_of

local function range_body(src, i, j)
  if src.body and i == 1 and j == src.count then return src.body end
  local lines, err = lines_of(src)
  if not lines then return nil, err end
  return _M.body(lines, i, j)
end

--- The 0-based entry index an error pointer names, or nil (klaviyo.event_layout's).
---@param pointer string? a JSON pointer
---@return integer?
_M.entry_index = layout.entry_index

--- What an error means: "reject" (the sent events are bad), "retry" (send again later),
-- "stop" (configuration: keep the events, report).
---@param err klaviyo.Error
---@return "reject"|"retry"|"stop"
function _M.classify(err)
  local st = err and err.status
  if st == nil then
    if err and err.kind == "refused" then return "stop" end
    return "retry" -- transport failure, timeout, unreadable answer
  end
  if st < 300 then return "retry" end -- a success status not taken as acceptance
  if st == 400 or st == 413 or st == 422 then return "reject" end
  if st == 429 or st == 408 or st >= 500 then return "retry" end
  return "stop"
end

--- `v` as text for stats and messages, without raising: an error value whose __tostring
-- raises (or gives no string) is named by its type instead.
---@param v any
---@return string
function _M.text(v)
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "(a " .. type(v) .. " that cannot be shown as text)"
end

-- The longest Retry-After the tracker waits: a larger one (a broken or hostile server) would
-- stop delivery for as long.
local MAX_RETRY_AFTER = 3600

-- The Retry-After of `err` in seconds, or nil when there is none or it is not a finite number
-- of seconds from 0 (NaN, infinite, negative); capped at MAX_RETRY_AFTER.
local function retry_after(err)
  local ra = type(err) == "table" and tonumber(err.retry_after) or nil
  if not ra or ra ~= ra or ra < 0 or ra == math.huge then return nil end
  if ra > MAX_RETRY_AFTER then return MAX_RETRY_AFTER end
  return ra
end

--- Back-off before attempt `n` (1-based) after a retryable failure. Throttled (429): the
-- Retry-After, plus a little that doubles while 429s repeat (Retry-After counts whole seconds
-- and may be rounded down, even to 0), so the next window is used from its start. Otherwise
-- full jitter over base * 2^(n-1), capped, and never before a Retry-After.
---@param err klaviyo.Error
---@param n integer attempt number, 1-based
---@param base number seconds
---@param cap number seconds
---@return number seconds
function _M.backoff(err, n, base, cap)
  local ra = retry_after(err)
  if type(err) == "table" and err.status == 429 then
    local extra = 0.05 * 2 ^ (n - 1)
    if extra > 1 then extra = 1 end
    return (ra or 0) + extra
  end
  local exp = base * 2 ^ (n - 1)
  if exp > cap then exp = cap end
  local d = random() * exp
  if ra and ra > d then d = ra end
  return d
end

-- nil when `res` (client:call's response) is Klaviyo's acceptance of a bulk job, a 202;
-- else the error that stands for it (see the top).
local function not_accepted(res)
  local st = type(res) == "table" and res.status or nil
  if st == 202 then return nil end
  return errors.new("http", "bulk_create_events", format("HTTP %s where Klaviyo accepts a " ..
    "job with 202: the events are not taken as accepted", tostring(st)),
    { status = st, code = "unexpected_status" })
end

-- validate = false: each event was checked by track() before it was spooled (the checks
-- client:call runs, from klaviyo.validate), and the job is the event layout's bytes; checking
-- them again would decode and walk every job, as costly as the rest of a delivery.
local IDEMPOTENT = { idempotent = true, validate = false }

-- The longest retry.max_time a call takes (the core's bound).
local MAX_CALL_TIME = 86400

-- The options of one job's call: IDEMPOTENT, and while the tracker's caller waits with a
-- deadline (`t.time_left()`, seconds left, set by flush), a retry.max_time of what is left,
-- which bounds the whole call (its attempts, the client's retries and limiter waits): a
-- server that answers slowly, or never, cannot hold a flush past its timeout.
local function call_opts(t)
  local left = t.time_left and t.time_left()
  if not left then return IDEMPOTENT end
  if left > MAX_CALL_TIME then left = MAX_CALL_TIME elseif left ~= left or left < 0.001 then left = 0.001 end
  return { idempotent = true, validate = false, retry = { max_time = left } }
end

-- The records could not be read back from the spool: they stay there, delivery stops.
local function spool_failure(stats, msg)
  local err = errors.new("spool", "tracker", msg)
  stats.failures = stats.failures + 1
  stats.last_error = _M.text(err)
  return false, "stop", err
end

-- Sends lines[i..j]; on a rejection, narrows down to the bad events. Returns true, or
-- false, outcome ("retry"|"stop"), err. `answer`: the range was sent already (in a
-- client:batch with other jobs) and failed with this error: it is judged, not sent again.
local function send_range(t, src, i, j, answer)
  local stats = t.counts
  local err = answer
  if not answer then
    local body, berr = range_body(src, i, j)
    if not body then return spool_failure(stats, berr) end
    stats.requests = stats.requests + 1
    -- every spooled event carries its unique_id, so the client may repeat the job after a
    -- 5xx or a lost connection: Klaviyo records each event once
    local ok, res = t.client:call("bulk_create_events", { body = body }, call_opts(t))
    if ok then err = not_accepted(res) else err = res end
    if not err then return true end
  end
  local what = _M.classify(err)
  local k = what == "reject" and _M.entry_index(err.pointer) or nil
  if k and k > j - i then k = nil end -- an entry this request does not have: it names none
  if what == "reject" and not k and err.status ~= 413 then
    -- a 400 about the request itself (a header, the envelope), or naming an entry it does
    -- not have, not about one of its events: no event is to blame, so none is dropped
    what = "stop"
  end
  if what ~= "reject" then
    stats.failures = stats.failures + 1
    stats.last_error = _M.text(err)
    return false, what, err
  end
  local bad = k and i + k or nil
  if i == j then bad = i end
  if bad and not k then -- a 413 for one event alone: rejected only when it is too large
    local lines, lerr = lines_of(src)
    if not lines then return spool_failure(stats, lerr) end
    if #lines[bad] + ENVELOPE <= MAX_BYTES then
      stats.failures = stats.failures + 1
      stats.last_error = _M.text(err)
      return false, "stop", err
    end
  end
  if bad then
    if bad > i then
      local r, w, e = send_range(t, src, i, bad - 1)
      if not r then return false, w, e end
    end
    local lines, lerr = lines_of(src)
    if not lines then return spool_failure(stats, lerr) end
    t:reject(lines[bad], err)
    if bad < j then
      local r, w, e = send_range(t, src, bad + 1, j)
      if not r then return false, w, e end
    end
    return true
  end
  local mid = floor((i + j) / 2) -- 413: halve until the oversized event is alone
  local r, w, e = send_range(t, src, i, mid)
  if not r then return false, w, e end
  return send_range(t, src, mid + 1, j)
end

--- Deliver `count` records whose request body `body` is (`spool:read_body`), split as
-- needed; `read_lines()` gives the records one by one if a rejection needs them. Returns
-- true, or false, outcome ("retry"|"stop"), err; plus the source: `lines_of(source)` gives
-- the records. `answer`: the body was sent already and failed with this error (see
-- `send_many`): it is judged as if this call had sent it.
---@param t klaviyo.Tracker
---@param body string
---@param count integer
---@param read_lines fun(): string[]
---@param answer klaviyo.Error?
---@return boolean ok
---@return "retry"|"stop"|nil outcome
---@return klaviyo.Error? err
function _M.deliver_body(t, body, count, read_lines, answer)
  local src = { body = body, count = count, read_lines = read_lines }
  local ok, what, err = send_range(t, src, 1, count, answer)
  return ok, what, err, src
end

--- Send several bodies at once (client:batch: libcurl's multi interface, through the
-- client's limiter and retry rules), so one job is on its way while the server works on
-- another. Returns a list: true for an accepted body, else its error.
---@param t klaviyo.Tracker
---@param bodies string[]
---@return (true|klaviyo.Error)[]
function _M.send_many(t, bodies)
  local reqs = {}
  local opts = call_opts(t)
  for k = 1, #bodies do reqs[k] = { "bulk_create_events", { body = bodies[k] }, opts } end
  local stats = t.counts
  stats.requests = stats.requests + #bodies
  local results = t.client:batch(reqs, { concurrency = #bodies })
  local out = {}
  for k = 1, #bodies do
    local r = results[k]
    if r[1] then out[k] = not_accepted(r[2]) or true else out[k] = r[2] end
  end
  return out
end

return _M
