-- The Redis-side half of the shared rate limiter: one script, run atomically by Redis
-- (EVALSHA, EVAL on NOSCRIPT), so every process and host using one Redis agrees.
-- This file is the single source of the script: the C store (src/limiter_redis.c) embeds it
-- through a header generated at build time (mk/redis.mk), and Lua callers (nginx
-- cosockets) load it with require("klaviyo.limiter.redis_script").
--
-- Guarantee (the same as the in-process limiter, src/limiter.c): for every window of length
-- W with limit L, any interval of length W holds at most L sends.  The sends of a key are
-- one sliding log, a Redis list of send times, newest first: a send at `now` is allowed when
-- the L-th most recent send (LINDEX L-1) is at least W old, and otherwise the wait is exactly
-- until it is.  Every send goes into the one log, so all windows see all sends, whoever
-- asked with whichever windows.  Limits arrive already multiplied by the safety factor.
--
-- Memory: the log keeps the newest `cap` sends, cap = the largest limit any caller of the
-- key has used (so a caller with a lower limit never makes the store forget a send that a
-- higher limit still counts); both keys expire once the longest window used has passed.
-- A list of integers is far smaller than a sorted set of the same sends.
--
-- Clock: Redis's own TIME, in integer microseconds, never the caller's, so hosts whose
-- clocks disagree still share one timeline.  Should the Redis host's clock step back, `now`
-- is taken as the newest logged send (as limiter.c does), so the log stays ordered.
--
-- KEYS[1]  the log: list of send times (us), newest first
-- KEYS[2]  meta: hash with `cap`, `span` (longest window used, us), `blocked` (us,
--          Retry-After) and the observed cap `obs_until` (us), `obs_left` (sends)
-- Both keys carry one hash tag, so they live on one Redis Cluster slot.
--
-- ARGV[1] is the command:
--   acquire n w1 l1 ... wn ln   windows in us and their limits (0 <= n <= 8; with none,
--                               only a block or a cap can say wait, and nothing is logged)
--       -> {1, 0, now}    go: the send is recorded at `now`
--       -> {0, wait, now} not now: the exact wait in us until it would be go; nothing recorded
--   block d                     nobody sends for d us from now (a 429's Retry-After);
--                               never shortens a longer block -> {1, blocked_remaining, now}
--   observe w limit remaining reset
--       the server said `remaining` more sends are allowed until `reset` us from now (in
--       its steady window, of length w and limit `limit` here, 0 if none). When that is
--       less than the store believes is left, it becomes a cap: at most `remaining` more
--       sends before now + reset (someone not using this store sends under the same
--       account). Never raises what is allowed. -> {1 if it became the cap else 0, left,
--       now}, left = what the store now believes is left (-1: no window and no cap).
return [==[
local log, meta = KEYS[1], KEYS[2]
if redis.replicate_commands then
  -- Redis 3.2/4 need this before writing after TIME; Redis 5+ does it anyway.
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local newest = tonumber(redis.call('LINDEX', log, 0))
if newest and newest > now then now = newest end   -- the clock stepped back

-- Integers as exact decimal strings: Lua 5.1's tostring keeps only 14 digits.
local function int(x) return string.format('%.0f', x) end

local function posint(i, what, min)
  local v = tonumber(ARGV[i])
  if v == nil or v ~= math.floor(v) or v < min or v > 1e15 then
    error('klaviyo limiter: ' .. what .. ' must be an integer >= ' .. min .. ', got ' ..
          tostring(ARGV[i]))
  end
  return v
end

-- Every meta field in one round: absent ones read as 0.
local m = redis.call('HMGET', meta, 'blocked', 'obs_until', 'obs_left', 'span', 'cap')
local blocked, obs_until = tonumber(m[1] or 0) or 0, tonumber(m[2] or 0) or 0
local obs_left, span, cap = tonumber(m[3] or 0) or 0, tonumber(m[4] or 0) or 0,
  tonumber(m[5] or 0) or 0

local function ms(us) return math.ceil(us / 1000) + 1 end

-- Both keys live as long as anything in them matters; meta at least as long as the log.
local function keep(log_ms, meta_ms)
  if log_ms > 0 then redis.call('PEXPIRE', log, log_ms) end
  if meta_ms > redis.call('PTTL', meta) then redis.call('PEXPIRE', meta, meta_ms) end
end

local cmd = ARGV[1]
if cmd == 'acquire' then
  local n = posint(2, 'window count', 0)
  if n > 8 or #ARGV ~= 2 + 2 * n then
    error('klaviyo limiter: acquire takes 0 to 8 window/limit pairs')
  end
  local wait = 0
  if blocked > now then wait = blocked - now end
  local capped = obs_until > now
  if capped and obs_left <= 0 and obs_until - now > wait then wait = obs_until - now end
  local maxw, maxl = 0, 0
  for i = 1, n do
    local w = posint(1 + 2 * i, 'window', 1)
    local l = posint(2 + 2 * i, 'limit', 1)
    if w > maxw then maxw = w end
    if l > maxl then maxl = l end
    -- The l-th most recent send must be at least one window old.
    local e = tonumber(redis.call('LINDEX', log, l - 1))
    if e and e + w - now > wait then wait = e + w - now end
  end
  if wait > 0 then return {0, wait, now} end
  if capped then redis.call('HINCRBY', meta, 'obs_left', -1) end
  if n == 0 then return {1, 0, now} end
  if maxl > cap or maxw > span then
    if maxl > cap then cap = maxl end
    if maxw > span then span = maxw end
    redis.call('HSET', meta, 'cap', int(cap), 'span', int(span))
  end
  redis.call('LPUSH', log, int(now))
  redis.call('LTRIM', log, 0, cap - 1)
  keep(ms(span), ms(math.max(span, blocked - now, obs_until - now)))
  return {1, 0, now}
elseif cmd == 'block' then
  if #ARGV ~= 2 then error('klaviyo limiter: block takes a duration') end
  local d = posint(2, 'block duration', 0)
  if now + d > blocked then
    blocked = now + d
    redis.call('HSET', meta, 'blocked', int(blocked))
    keep(0, ms(d))
  end
  return {1, blocked - now, now}
elseif cmd == 'observe' then
  if #ARGV ~= 5 then error('klaviyo limiter: observe takes window, limit, remaining, reset') end
  local w = posint(2, 'window', 1)
  local limit = posint(3, 'limit', 0)
  local remaining = posint(4, 'remaining', 0)
  local reset = posint(5, 'reset', 0)
  -- What the store believes is left: the window's room, or a live cap if lower.
  local left = -1
  if limit > 0 then
    -- Sends in (now - w, now]: binary search over the newest `limit` (newest first).
    local lo, hi = 0, math.min(limit, redis.call('LLEN', log))
    while lo < hi do
      local mid = math.floor((lo + hi) / 2)
      if tonumber(redis.call('LINDEX', log, mid)) > now - w then lo = mid + 1 else hi = mid end
    end
    left = limit - lo
  end
  if obs_until > now then
    local o = obs_left
    if o < 0 then o = 0 end
    if left < 0 or o < left then left = o end
  end
  if reset == 0 or (left >= 0 and remaining >= left) then return {0, left, now} end
  redis.call('HSET', meta, 'obs_until', int(now + reset), 'obs_left', int(remaining))
  keep(0, ms(reset))
  return {1, remaining, now}
end
error('klaviyo limiter: unknown command ' .. tostring(cmd))
]==]
