-- The Redis-side half of the shared rate limiter: one script, run atomically by Redis
-- (EVALSHA, EVAL on NOSCRIPT), so every process and host using one Redis agrees.
-- This file is the single source of the script: the C store (src/limiter_redis.c) embeds it
-- through a header generated at build time (mk/redis.mk), and Lua callers (nginx
-- cosockets) load it with require("klaviyo.limiter.redis_script").
--
-- Guarantee (the same as the in-process limiter, src/limiter.c): for every window of length
-- W with limit L, any interval of length W holds at most L sends.  The sends are kept as a
-- sliding log, a sorted set of send times; a send at time T is allowed when fewer than L
-- logged sends lie in (T - W, T].  Limits arrive already multiplied by the safety factor.
--
-- Clock: Redis's own TIME, in integer microseconds, never the caller's, so hosts whose
-- clocks disagree still share one timeline.  If the Redis host's clock steps back, logged
-- times in the "future" still count (ranges are open towards +inf), which only delays.
--
-- KEYS[1]  the log: sorted set, score = send time (us), member = "<time>-<seq>"
-- KEYS[2]  meta: hash with `seq` (unique member suffix), `blocked` (us, Retry-After) and
--          the observed cap `obs_until`, `obs_left` (see observe)
-- Both keys carry one hash tag, so they live on one Redis Cluster slot.
--
-- ARGV[1] is the command:
--   acquire n w1 l1 ... wn ln   windows in us and their limits (0 <= n <= 8; with none,
--                               only a block can say wait, and nothing is recorded)
--       -> {1, 0, now}   go: the send is recorded at `now`
--       -> {0, wait, now} not now: the exact wait in us until it would be go; nothing recorded
--   block d                     nobody sends for d us from now (a 429's Retry-After);
--                               never shortens a longer block -> {1, blocked_remaining, now}
--   observe w limit remaining reset
--       the server said `remaining` more sends are allowed until `reset` us from now (its
--       steady window of length w, whose limit here is `limit`, 0 if none). When that is less than the
--       store believes is left, it becomes a cap: at most `remaining` more sends before
--       now + reset (someone else, not using this store, sends under the same account).
--       Never raises what is allowed. -> {1 if it became the cap else 0, left, now}, where
--       left is what the store now believes is left (-1: no window and no cap).
-- The meta hash also holds that cap: `obs_until` (us) and `obs_left` (sends).
return [==[
local log, meta = KEYS[1], KEYS[2]
if redis.replicate_commands then
  -- Redis 3.2/4 need this before writing after TIME; Redis 5+ does it anyway.
  redis.replicate_commands()
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

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

local function field(name)
  return tonumber(redis.call('HGET', meta, name) or 0) or 0
end
local function blocked_until() return field('blocked') end

-- Both keys live as long as anything in them matters (meta at least as long as the log, so
-- the member sequence never restarts while logged members exist).
local function keep(log_ms, meta_ms)
  if log_ms > 0 then redis.call('PEXPIRE', log, log_ms) end
  local cur = redis.call('PTTL', meta)
  if meta_ms > cur then redis.call('PEXPIRE', meta, meta_ms) end
end

local function ms(us) return math.ceil(us / 1000) + 1 end

local cmd = ARGV[1]
if cmd == 'acquire' then
  local n = posint(2, 'window count', 0)
  if n > 8 or #ARGV ~= 2 + 2 * n then
    error('klaviyo limiter: acquire takes 0 to 8 window/limit pairs')
  end
  local blocked = blocked_until()
  local wait = 0
  if blocked > now then wait = blocked - now end
  local obs_until = field('obs_until')
  local capped = obs_until > now
  if capped and field('obs_left') <= 0 and obs_until - now > wait then wait = obs_until - now end
  local maxw, maxl = 0, 0
  for i = 1, n do
    local w = posint(1 + 2 * i, 'window', 1)
    local l = posint(2 + 2 * i, 'limit', 1)
    if w > maxw then maxw = w end
    if l > maxl then maxl = l end
    local lo = '(' .. int(now - w)
    local c = redis.call('ZCOUNT', log, lo, '+inf')
    if c >= l then
      -- The (c-l+1)-th oldest send in the window is the one whose leaving makes room.
      local e = redis.call('ZRANGEBYSCORE', log, lo, '+inf', 'WITHSCORES', 'LIMIT', c - l, 1)
      local free = tonumber(e[2]) + w - now
      if free > wait then wait = free end
    end
  end
  if wait > 0 then return {0, wait, now} end
  if capped then redis.call('HINCRBY', meta, 'obs_left', -1) end
  if n == 0 then return {1, 0, now} end
  local seq = redis.call('HINCRBY', meta, 'seq', 1)
  redis.call('ZADD', log, int(now), int(now) .. '-' .. seq)
  -- Nothing at or before now - maxw is inside any window; of the rest, the newest maxl
  -- are all any window needs.  So the log never holds more than max(limit) entries.
  redis.call('ZREMRANGEBYSCORE', log, '-inf', int(now - maxw))
  redis.call('ZREMRANGEBYRANK', log, 0, -(maxl + 1))
  keep(ms(maxw), ms(math.max(maxw, blocked - now, obs_until - now)))
  return {1, 0, now}
elseif cmd == 'block' then
  if #ARGV ~= 2 then error('klaviyo limiter: block takes a duration') end
  local d = posint(2, 'block duration', 0)
  local cur = blocked_until()
  if now + d > cur then
    cur = now + d
    redis.call('HSET', meta, 'blocked', int(cur))
    keep(0, ms(d))
  end
  local left = cur - now
  if left < 0 then left = 0 end
  return {1, left, now}
elseif cmd == 'observe' then
  if #ARGV ~= 5 then error('klaviyo limiter: observe takes window, limit, remaining, reset') end
  local w = posint(2, 'window', 1)
  local limit = posint(3, 'limit', 0)             -- 0: no such window, only a cap
  local remaining = posint(4, 'remaining', 0)
  local reset = posint(5, 'reset', 0)
  -- What the store believes is left: the log's room in the window, or a live cap if lower
  -- (-1: nothing known).
  local left = -1
  if limit > 0 then
    left = limit - redis.call('ZCOUNT', log, '(' .. int(now - w), '+inf')
    if left < 0 then left = 0 end
  end
  if field('obs_until') > now then
    local o = field('obs_left')
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
