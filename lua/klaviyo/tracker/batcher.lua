--- Delivery of spooled events as bulk_create_events jobs, and what an answer means.
--
-- A batch is a run of spool records (each already the JSON of one `event-bulk-create` entry),
-- joined into one request body without decoding or re-encoding them. The answer decides:
--
-- * 202: every event of the batch is accepted.
-- * 400 whose pointer names an entry (`/data/attributes/events-bulk-create/data/N/...`): that
--   event is bad. The events before it and after it are sent again as their own batches and
--   the bad one is rejected: reported (stats, `on_reject`) and never retried.
-- * 400 without such a pointer, or 413: the batch is halved until the bad event is alone.
-- * 429, 5xx, a transport failure, an unreadable answer: nothing is known to be lost or
--   accepted, so the whole batch stays in the spool and is sent again after a back-off
--   (Retry-After when given, else exponential with full jitter). Re-sending is safe: every
--   event carries its unique_id, so Klaviyo records it once.
-- * any other 4xx (401, 403, ...): a configuration problem; the events stay and delivery
--   stops until the next attempt, with the error in stats and in flush's answer.
-- @module klaviyo.tracker.batcher
local concat, floor, random = table.concat, math.floor, math.random
local type, tostring, tonumber, pcall = type, tostring, tonumber, pcall
local match, find, sub, gsub = string.match, string.find, string.sub, string.gsub

local _M = {}

local PREFIX = '{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":{"data":['
local SUFFIX = ']}}}}'
_M.ENVELOPE = #PREFIX + #SUFFIX

--- The request body for lines[i..j].
function _M.body(lines, i, j)
  return PREFIX .. concat(lines, ",", i, j) .. SUFFIX
end

-- What a delivery sends: `lines` (an array of records), or `block` (`count` records joined
-- by "\n", from `spool:read_block`) whose array of lines is made only when a rejection needs
-- to split the batch.
local function lines_of(src)
  local lines = src.lines
  if lines then return lines end
  lines = {}
  local block, n, i = src.block, 0, 1
  while true do
    local nl = find(block, "\n", i, true)
    n = n + 1
    if not nl then lines[n] = sub(block, i) break end
    lines[n] = sub(block, i, nl - 1)
    i = nl + 1
  end
  src.lines = lines
  return lines
end
_M.lines_of = lines_of

-- "\n" to "," in a block: through LuaJIT's FFI, a compiled loop over a byte copy (gsub is
-- several times slower on 370 KB). Without the FFI (PUC Lua, which does not intern long
-- strings and so splits records cheaply) blocks are not used: `_M.BLOCKS` is false.
local commas
do
  local ok, ffi = pcall(require, "ffi")
  if ok and type(ffi) == "table" and ffi.new then
    local char_array, copy, ffi_string = ffi.typeof("char[?]"), ffi.copy, ffi.string
    local buf, cap = nil, 0 -- one buffer, grown as needed (a new one per batch inflated RSS)
    commas = function(block)
      local n = #block
      if n > cap then buf, cap = char_array(n), n end
      copy(buf, block, n)
      for k = 0, n - 1 do
        if buf[k] == 10 then buf[k] = 44 end
      end
      return ffi_string(buf, n)
    end
  end
end
_M.BLOCKS = commas ~= nil

local function range_body(src, i, j)
  if src.block and i == 1 and j == src.count then
    return PREFIX .. (commas and commas(src.block) or (gsub(src.block, "\n", ","))) .. SUFFIX
  end
  return _M.body(lines_of(src), i, j)
end

--- The 0-based entry index an error pointer names, or nil.
function _M.entry_index(pointer)
  if type(pointer) ~= "string" then return nil end
  local n = match(pointer, "^/data/attributes/events%-bulk%-create/data/(%d+)")
  return n and tonumber(n) or nil
end

--- What an error means: "reject" (the sent events are bad), "retry" (send again later),
-- "stop" (configuration: keep the events, report).
function _M.classify(err)
  local st = err and err.status
  if st == nil then
    if err and err.kind == "refused" then return "stop" end
    return "retry" -- transport failure, timeout, unreadable answer
  end
  if st == 400 or st == 413 or st == 422 then return "reject" end
  if st == 429 or st == 408 or st >= 500 then return "retry" end
  return "stop"
end

--- Back-off before attempt `n` (1-based) after a retryable failure. Throttled (429): the
-- Retry-After, plus a little that doubles while 429s repeat (Retry-After counts whole seconds
-- and may be rounded down, even to 0), so the next window is used from its start. Otherwise
-- full jitter over base * 2^(n-1), capped, and never before a Retry-After.
function _M.backoff(err, n, base, cap)
  local ra = err and tonumber(err.retry_after)
  if err and err.status == 429 then
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

local IDEMPOTENT = { idempotent = true }

-- Sends lines[i..j]; on a rejection, narrows down to the bad events. Returns true, or
-- false, outcome ("retry"|"stop"), err.
local function send_range(t, src, i, j)
  local stats = t.counts
  stats.requests = stats.requests + 1
  -- every spooled event carries its unique_id, so the client may repeat the job after a 5xx
  -- or a lost connection: Klaviyo records each event once
  local ok, err = t.client:call("bulk_create_events", { body = range_body(src, i, j) },
    IDEMPOTENT)
  if ok then return true end
  local what = _M.classify(err)
  local k = what == "reject" and _M.entry_index(err.pointer) or nil
  if what == "reject" and not k and err.status ~= 413 then
    -- a 400 about the request itself (a header, the envelope), not about one event: no event
    -- is to blame, so none is dropped
    what = "stop"
  end
  if what ~= "reject" then
    stats.failures = stats.failures + 1
    stats.last_error = tostring(err)
    return false, what, err
  end
  local bad = k and i + k or nil
  if bad and bad > j then bad = nil end
  if i == j then bad = i end
  if bad then
    if bad > i then
      local r, w, e = send_range(t, src, i, bad - 1)
      if not r then return false, w, e end
    end
    t:reject(lines_of(src)[bad], err)
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

--- Deliver lines[1..#lines] (split as needed). Returns true or false, outcome, err.
function _M.deliver(t, lines)
  return send_range(t, { lines = lines, count = #lines }, 1, #lines)
end

--- Deliver `count` records joined by "\n" (`spool:read_block`), split as needed. Returns
-- as `deliver`, plus the source: `lines_of(source)` gives the records one by one.
function _M.deliver_block(t, block, count)
  local src = { block = block, count = count }
  local ok, what, err = send_range(t, src, 1, count)
  return ok, what, err, src
end

return _M
