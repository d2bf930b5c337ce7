-- klaviyo.limiter.shdict: the client-side rate limiter shared by every nginx worker through a
-- lua_shared_dict. Same guarantee as the C limiter (src/limiter.c) and the Redis store
-- (klaviyo.limiter.redis_script): for every window of length W with limit N, any half-open
-- interval [a, a + W) holds at most N sends, whatever the phase of Klaviyo's fixed windows.
--
-- The sends of a key form one sliding log: record number `seq` (1, 2, ...) holds the time of
-- that send, and `head` the newest number. A send at `now` is allowed when record
-- head - N + 1 (the N-th most recent) is at least W old; otherwise the wait is exactly until
-- it is. Records expire one longest-window after they were written, so memory stays bounded
-- by the limits and a missing record is one too old to matter.
--
-- Atomicity across workers: reading the log and appending to it are several dict operations,
-- so they run under a per-key lock taken with dict:add (atomic) and an exptime (a worker that
-- dies holding it frees it after `lock_ttl`). The section between taking and releasing it
-- never yields. Each holder puts a unique token in the lock and checks it is still there
-- after writing its record: a holder that lost the lock (stalled past lock_ttl while another
-- took it) does not send, and its record stays as a send that never happened, which only
-- makes later answers stricter. A record is written with safe_add: it never evicts other
-- entries (evicted records would forget sends) and never overwrites one.
--
-- A limiter store as the nginx driver asks it (spec/retry/store_conformance_spec.lua):
-- acquire, block and observe, each answering nil, err when it cannot.
--
-- Pure: the dict and the clock are passed in (nginx passes ngx.shared[name] and ngx.now;
-- specs pass a fake dict and a fake clock). It never sleeps: acquire answers "go", a wait, or
-- "locked" (ask again very soon), and the caller sleeps (ngx.sleep in the ngx transport).
local type, tostring, error, floor, format = type, tostring, error, math.floor, string.format
local setmetatable, ipairs = setmetatable, ipairs

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

local duration = require("klaviyo.core").duration   -- the core's one check of durations
local policy = require "klaviyo.policy"   -- the one check of a limits table, the windows
local share, SECONDS = policy.share, policy.WINDOW_SECONDS

local US = 1000000

local function us(seconds) return floor(seconds * US + 0.5) end

-- lim = shdict.new(dict, {clock = fn -> seconds, owner = "unique-per-process" (or a function
--                         giving it: nginx passes ngx.worker.pid, as a limiter made in
--                         init_by_lua is copied into every worker), safety = 0..1,
--                         lock_ttl = seconds})
function _M.new(dict, opts)
  if type(dict) ~= "table" and type(dict) ~= "userdata" then
    error("klaviyo.limiter.shdict: expected a shared dict, got " .. type(dict), 2)
  end
  opts = opts or {}
  if type(opts.clock) ~= "function" then
    error("klaviyo.limiter.shdict: option clock must be a function returning seconds", 2)
  end
  local safety = opts.safety or 1
  if type(safety) ~= "number" or not (safety > 0 and safety <= 1) then
    error("klaviyo.limiter.shdict: option safety must be a number in (0, 1]", 2)
  end
  local ttl = opts.lock_ttl or 1
  if type(ttl) ~= "number" or not (ttl >= 0.001 and ttl <= 60) then
    error("klaviyo.limiter.shdict: option lock_ttl must be between 0.001 and 60 seconds", 2)
  end
  return setmetatable({ dict = dict, clock = opts.clock, safety = safety, lock_ttl = ttl,
                        owner = opts.owner or "", n = 0 }, mt)
end

-- Raises at `level` unless `limits` is a good {burst=, steady=, daily=} table (or nil, when
-- `optional`).
local function check(limits, level, optional)
  if limits == nil and optional then return end
  local msg = policy.check_windows(limits)
  if msg then error("klaviyo.limiter.shdict: " .. msg, level + 1) end
end

-- The windows of `limits` (nil: none) as a list of {W in us, effective N}.
local function windows(self, limits)
  local out = {}
  if limits == nil then return out end
  for _, w in ipairs(policy.WINDOWS) do
    local n = share(limits[w] or 0, self.safety)
    if n > 0 then out[#out + 1] = { SECONDS[w] * US, n } end
  end
  return out
end

-- Checks a {burst=, steady=, daily=} table (raises on a bad one, like acquire would).
function _M.check_limits(limits)
  check(limits, 2)
  return true
end

local function rec(key, seq) return format("%s#%d", key, seq) end

-- Frees the lock if it is still ours (a get then a delete: should it expire in between and
-- be taken, the new holder notices at its own check and does not send).
local function release(dict, lock, token)
  if dict:get(lock) == token then dict:delete(lock) end
end

-- Takes the key's lock: token, or nil, "locked" | message.
local function take(self, key)
  self.n = self.n + 1
  local owner = self.owner
  if type(owner) == "function" then owner = owner() end
  local token = tostring(owner) .. ":" .. self.n
  local ok, err = self.dict:add(key .. "#lock", token, self.lock_ttl)
  if ok then return token end
  if err == "exists" then return nil, "locked" end
  return nil, "shared dict: cannot take the limiter lock: " .. tostring(err)
end

-- The current time (us) for `key`: never before its newest send (should the clock step
-- back), and its head (newest record number).
local function clock_of(self, key)
  local dict = self.dict
  local now = us(self.clock())
  local head = dict:get(key .. "#head") or 0
  local newest = head > 0 and dict:get(rec(key, head)) or nil
  if newest and newest > now then now = newest end
  return now, head
end

-- lim:acquire(key, limits) -> 0 when the send may go now (it has been recorded),
-- a wait in seconds (> 0) when not yet (nothing recorded), or nil, "locked" when another
-- worker holds the key (ask again in a millisecond), or nil, message on a dict failure.
function _M.acquire(self, key, limits)
  if type(key) ~= "string" or key == "" then
    error("klaviyo.limiter.shdict: acquire: key must be a non-empty string", 2)
  end
  check(limits, 2, true)
  local wins = windows(self, limits)
  local dict = self.dict
  local lock = key .. "#lock"
  local token, err = take(self, key)
  if not token then return nil, err end
  -- From here to the release nothing yields.
  local now, head = clock_of(self, key)
  local wait = 0
  local blocked = dict:get(key .. "#blocked")
  if blocked and blocked > now then wait = blocked - now end
  -- A cap from the server's RateLimit-Remaining (see observe).
  local cap_until = dict:get(key .. "#cap_until")
  local capped = cap_until and cap_until > now
  if capped and (dict:get(key .. "#cap_left") or 0) <= 0 and cap_until - now > wait then
    wait = cap_until - now
  end
  local span = 0
  for i = 1, #wins do
    local w, n = wins[i][1], wins[i][2]
    if w > span then span = w end
    if head - n + 1 >= 1 then
      local e = dict:get(rec(key, head - n + 1))
      if e and e + w - now > wait then wait = e + w - now end
    end
  end
  if wait > 0 then
    release(dict, lock, token)
    -- every wait made here is at most a day (blocks and caps are checked durations, windows
    -- at most a day long): a longer one means the dict holds damaged data, never a sleep
    if duration(wait / US) ~= wait / US then
      return nil, "shared dict: the limiter's data for this key is damaged (a wait of " ..
        format("%.0f", wait / US) .. " s)"
    end
    return wait / US
  end
  local ok
  if span > 0 then
    local ttl = span / US + 1
    head = head + 1
    ok, err = dict:safe_add(rec(key, head), now, ttl)
    if ok then ok, err = dict:safe_set(key .. "#head", head, ttl) end
    if not ok then
      if err == "exists" then
        -- A holder that stalled past its lock wrote this record and may never move the head
        -- (it may have died): move it, so the next ask reads that record as the newest.
        dict:safe_set(key .. "#head", head, ttl)
        release(dict, lock, token)
        return nil, "locked"
      end
      release(dict, lock, token)
      return nil, "shared dict: cannot record a send (" .. tostring(err) ..
        "): make the lua_shared_dict larger"
    end
  end
  if capped then dict:incr(key .. "#cap_left", -1, 0) end
  if dict:get(lock) ~= token then
    -- We lost the lock while inside: someone may have read the log without our record.
    -- Do not send; the record stays as a phantom send (stricter, never looser).
    return nil, "locked"
  end
  dict:delete(lock)
  return 0
end

-- lim:observe(key, limits, remaining, reset): the server said (RateLimit-Remaining,
-- RateLimit-Reset) that `remaining` more sends are allowed in its steady window, which ends
-- `reset` seconds from now. When that is less than the limiter believes is left (someone not
-- using this dict sends under the same account), it becomes a cap: at most `remaining` more
-- sends before now + reset. Never raises what is allowed. Returns true if it became the cap,
-- false if not, or nil, "locked" | message.
function _M.observe(self, key, limits, remaining, reset)
  reset = duration(reset)   -- longer than a day: a day
  if type(remaining) ~= "number" or remaining ~= remaining or remaining < 0 or not reset then
    error("klaviyo.limiter.shdict: observe: remaining and reset must be numbers >= 0", 2)
  end
  check(limits, 2, true)
  local dict = self.dict
  local token, err = take(self, key)
  if not token then return nil, err end
  local now, head = clock_of(self, key)
  -- What it believes is left: the steady window's room (sends in (now - W, now] found by
  -- bisection over the record numbers, times growing with them), or a live cap if lower.
  local left
  local n = limits and limits.steady
  if n and n > 0 then
    n = share(n, self.safety)
    local lo, hi = head - n + 1, head + 1   -- first record newer than now - W is in [lo, hi]
    if lo < 1 then lo = 1 end
    while lo < hi do
      local mid = floor((lo + hi) / 2)
      local t = dict:get(rec(key, mid))
      if t and t > now - SECONDS.steady * US then hi = mid else lo = mid + 1 end
    end
    left = n - (head + 1 - lo)
  end
  local cap_until = dict:get(key .. "#cap_until")
  if cap_until and cap_until > now then
    local c = dict:get(key .. "#cap_left") or 0
    if c < 0 then c = 0 end
    if left == nil or c < left then left = c end
  end
  local became = false
  if reset > 0 and (left == nil or remaining < left) then
    local ttl = reset + 1
    local ok
    ok, err = dict:safe_set(key .. "#cap_left", floor(remaining), ttl)
    if ok then ok, err = dict:safe_set(key .. "#cap_until", now + us(reset), ttl) end
    if not ok then
      release(dict, key .. "#lock", token)
      return nil, "shared dict: cannot record a cap: " .. tostring(err)
    end
    became = true
  end
  release(dict, key .. "#lock", token)
  return became
end

-- lim:block(key, seconds): nothing is sent under `key` for `seconds` from now (a 429's
-- Retry-After); never shortens a longer block. Returns true or nil, message.
function _M.block(self, key, seconds)
  seconds = duration(seconds)   -- longer than a day: a day
  if not seconds then error("klaviyo.limiter.shdict: block: seconds must be a number >= 0", 2) end
  local dict = self.dict
  local untl = us(self.clock()) + us(seconds)
  -- A get-then-set race between two 429s only picks one of two near-equal ends.
  local cur = dict:get(key .. "#blocked")
  if cur and cur >= untl then return true end
  local ok, err = dict:safe_set(key .. "#blocked", untl, seconds + 1)
  if not ok then return nil, "shared dict: cannot record a block: " .. tostring(err) end
  return true
end

return _M
