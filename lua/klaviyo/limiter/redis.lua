-- The limiter's shared Redis store for Lua callers: nginx workers over cosockets, or plain
-- Lua over LuaSocket. It runs the very script the C store runs (src/limiter_redis.c; one
-- source, klaviyo.limiter.redis_script), on the same keys, so C processes, Lua processes
-- and nginx workers can share one account's limits. Same guarantee and same answers as
-- the in-process limiter: acquire says go (the send is recorded) or the exact wait; it
-- never sleeps. Redis unreachable or silent: nil and an error that says so; never a go.
--
--   local store = assert(require("klaviyo.limiter.redis").new{ url = "redis://127.0.0.1:6379" })
--   local wait, err = store:acquire("acct/create_event", { burst = 350, steady = 3500 })
--   -- wait == 0: send now; wait > 0: sleep that many seconds and ask again; nil: err
--
-- Inside nginx every call takes a connection from the cosocket pool and gives it back
-- (`setkeepalive`); a connection that failed mid-command is closed, never pooled. Outside
-- nginx the store keeps one LuaSocket connection and reconnects after a failure.
local script = require "klaviyo.limiter.redis_script"
local duration = require("klaviyo.core").duration

local ngx = rawget(_G, "ngx")   -- present only inside OpenResty
local floor, tostring, tonumber, type = math.floor, tostring, tonumber, type
local concat, format = table.concat, string.format

local M = { _VERSION = "0.1.0" }
local mt = { __index = M }

local US = 1000000
-- RateLimit-* headers speak of the steady window; the others only matter to acquire.
local WINDOWS = { { "burst", 1 * US }, { "steady", 60 * US }, { "daily", 86400 * US } }
local LIMIT_MAX, KEY_MAX = 1000000, 1024

-- redis://[[user]:password@]host[:port][/db], the grammar of the C store.
local function unescape(s)
  local bad = false
  s = s:gsub("%%(..)", function(h)
    local n = tonumber(h, 16)
    if not n or n == 0 or not h:match("^%x%x$") then bad = true return "" end
    return string.char(n)
  end)
  if bad or s:find("%%") then return nil end
  return s
end

local function parse_url(url)
  if url:find("[%c ]") then return nil, "redis url: control character or blank in the url" end
  if url:sub(1, 9) == "rediss://" then
    return nil, "redis url: rediss:// (TLS) is not supported by this store; use redis://"
  end
  local rest = url:match("^redis://(.*)$")
  if not rest then return nil, "redis url must look like redis://[:password@]host[:port][/db]" end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if path:find("^[?#]") then return nil, "redis url: query and fragment are not supported" end
  local u = { port = 6379, db = 0 }
  local creds, hostport = authority:match("^(.*)@([^@]*)$")
  if creds then
    local user, pass = creds:match("^([^:]*):(.*)$")
    if not user then return nil, "redis url: credentials must be :password@ or user:password@" end
    u.password = unescape(pass)
    if not u.password then return nil, "redis url: bad %-escape in the password" end
    if user ~= "" then
      u.user = unescape(user)
      if not u.user then return nil, "redis url: bad %-escape in the user" end
    end
  else
    hostport = authority
  end
  local host, port = hostport:match("^%[([^%]]*)%](.*)$")
  if not host then host, port = hostport:match("^([^:]*)(.*)$") end
  if host == "" then return nil, "redis url: no host" end
  u.host = host
  if port ~= "" then
    local digits = port:match("^:(%d+)$")
    local n = tonumber(digits)
    if not n or n < 1 or n > 65535 then return nil, "redis url: port must be 1-65535" end
    u.port = n
  end
  if path ~= "" and path ~= "/" then
    local db = path:match("^/(%d+)$")
    if not db then return nil, "redis url: the path must be a database number, e.g. /0" end
    u.db = tonumber(db)
  end
  return u
end
M.parse_url = parse_url

-- As limiter.c computes it, so every store allows the same counts.
local function effective(limit, safety)
  if limit == 0 then return 0 end
  local v = floor(limit * safety + 1e-9)
  return v < 1 and 1 or v
end

-- ---- RESP over a LuaSocket or cosocket ----------------------------------------------------

local function read_reply(sock)
  local line, err = sock:receive("*l")
  if not line then return nil, err, true end
  local kind, rest = line:sub(1, 1), line:sub(2)
  if kind == "+" then return rest end
  if kind == "-" then return nil, rest end
  if kind == ":" then return tonumber(rest) end
  if kind == "$" then
    local n = tonumber(rest)
    if n < 0 then return nil end
    local data, e = sock:receive(n + 2)
    if not data then return nil, e, true end
    return data:sub(1, n)
  end
  if kind == "*" then
    local t = {}
    for i = 1, tonumber(rest) do
      local v, e, io = read_reply(sock)
      if io then return nil, e, true end
      t[i] = v
    end
    return t
  end
  return nil, "unexpected reply from redis", true
end

-- Returns reply, or nil, redis_error, or nil, io_error, true.
local function command(sock, args)
  local out = { "*", #args, "\r\n" }
  for i = 1, #args do
    local a = tostring(args[i])
    out[#out + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  local ok, err = sock:send(concat(out))
  if not ok then return nil, err, true end
  return read_reply(sock)
end

-- ---- the store -----------------------------------------------------------------------------

--- Create a store. opts: url, prefix ("klaviyo:limit:"), safety (in (0, 1], 1), timeout and
-- connect_timeout (seconds, 1), pool_size (nginx, 32), idle_timeout (nginx, seconds, 60),
-- socket (a function returning a new TCP socket; default ngx.socket.tcp inside nginx, else
-- LuaSocket's). Bad options raise: they are programmer errors.
function M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then error("klaviyo.limiter.redis.new: opts must be a table", 2) end
  local url = opts.url or "redis://127.0.0.1:6379"
  if type(url) ~= "string" then error("klaviyo.limiter.redis.new: url must be a string", 2) end
  local u, err = parse_url(url)
  if not u then error("klaviyo.limiter.redis.new: " .. err, 2) end
  local safety = opts.safety or 1
  if type(safety) ~= "number" or not (safety > 0 and safety <= 1) then
    error("klaviyo.limiter.redis.new: safety must be in (0, 1]", 2)
  end
  for _, k in ipairs({ "timeout", "connect_timeout", "idle_timeout", "pool_size" }) do
    if opts[k] ~= nil and (type(opts[k]) ~= "number" or opts[k] <= 0) then
      error("klaviyo.limiter.redis.new: " .. k .. " must be a positive number", 2)
    end
  end
  local prefix = opts.prefix or "klaviyo:limit:"
  if type(prefix) ~= "string" or #prefix > KEY_MAX then
    error("klaviyo.limiter.redis.new: prefix must be a string of at most 1024 bytes", 2)
  end
  local cosocket = ngx ~= nil and ngx.socket ~= nil and opts.socket == nil
  return setmetatable({
    url = u, prefix = prefix, safety = safety,
    timeout = opts.timeout or 1, connect_timeout = opts.connect_timeout or 1,
    idle_timeout = opts.idle_timeout or 60, pool_size = opts.pool_size or 32,
    new_socket = opts.socket or (cosocket and ngx.socket.tcp) or require("socket").tcp,
    cosocket = cosocket,
    -- verified credentials are part of the pool name: connections never cross them
    pool = format("klaviyo-limit:%s:%d:%d:%s", u.host, u.port, u.db, u.user or ""),
    where = format("%s:%d", u.host, u.port),
  }, mt)
end

function M:_fail(doing, err)
  if err == "timeout" then
    return format("redis limiter store at %s did not answer %s within %g s; not sending",
      self.where, doing, self.timeout)
  end
  return format("redis limiter store at %s: %s failed (%s); not sending", self.where, doing,
    tostring(err))
end

-- A connection ready for EVALSHA (authenticated, database selected), or nil, err.
function M:_connect()
  if self.sock then return self.sock end
  local sock = self.new_socket()
  local ok, err
  if self.cosocket then
    sock:settimeouts(self.connect_timeout * 1000, self.timeout * 1000, self.timeout * 1000)
    ok, err = sock:connect(self.url.host, self.url.port, { pool = self.pool })
  else
    sock:settimeout(self.connect_timeout)
    ok, err = sock:connect(self.url.host, self.url.port)
    sock:settimeout(self.timeout)
  end
  if not ok then
    sock:close()
    return nil, format("redis limiter store unreachable at %s: %s; not sending", self.where,
      tostring(err))
  end
  if not self.cosocket or (sock:getreusedtimes() or 0) == 0 then   -- a new connection
    local steps = {}
    if self.url.user then
      steps[1] = { "AUTH", self.url.user, self.url.password }
    elseif self.url.password then
      steps[1] = { "AUTH", self.url.password }
    end
    if self.url.db ~= 0 then steps[#steps + 1] = { "SELECT", self.url.db } end
    for _, args in ipairs(steps) do
      local r, e, io = command(sock, args)
      if not r then
        sock:close()
        if io then return nil, self:_fail(args[1], e) end
        -- Redis's own message (e.g. WRONGPASS) never echoes the password.
        return nil, format("redis limiter store at %s refused %s: %s", self.where, args[1], e)
      end
    end
  end
  if not self.cosocket then self.sock = sock end
  return sock
end

function M:_release(sock, broken)
  if broken then
    sock:close()
    self.sock = nil
  elseif self.cosocket then
    sock:setkeepalive(self.idle_timeout * 1000, self.pool_size)
  end
end

-- Run the script under key with args; returns the reply {a, b, now} or nil, err.
function M:_run(key, args)
  if type(key) ~= "string" or key == "" or #key > KEY_MAX then
    error("klaviyo.limiter.redis: key must be a non-empty string of at most 1024 bytes", 3)
  end
  local keys = { self.prefix .. "{" .. key .. "}:log", self.prefix .. "{" .. key .. "}:meta" }
  for attempt = 1, 2 do
    local kept = self.sock ~= nil
    local sock, err = self:_connect()
    if not sock then return nil, err end
    local reused = kept or (self.cosocket and sock:getreusedtimes() > 0)
    local r, e, io
    if not self.sha then   -- learn the SHA1 once (no SHA-1 in plain Lua): Redis computes it
      r, e, io = command(sock, { "SCRIPT", "LOAD", script })
      if type(r) == "string" and #r == 40 then self.sha = r end
    end
    local cmd = { "EVALSHA", self.sha or "-", 2, keys[1], keys[2] }
    for i = 1, #args do cmd[#cmd + 1] = args[i] end
    if not io then r, e, io = command(sock, cmd) end
    if not r and not io and e:find("^NOSCRIPT") then
      -- The script cache was emptied (restart, SCRIPT FLUSH): send the text, which caches it.
      cmd[1], cmd[2] = "EVAL", script
      r, e, io = command(sock, cmd)
    end
    if io then
      self:_release(sock, true)
      -- A kept or pooled connection that Redis closed meanwhile: one fresh try. A timeout
      -- is not retried (the script may have run).
      if not (attempt == 1 and reused and (e == "closed" or tostring(e):find("reset"))) then
        return nil, self:_fail("the limiter script", e)
      end
    else
      self:_release(sock, false)
      if not r then return nil, format("redis limiter store at %s: %s", self.where, e) end
      if type(r) ~= "table" or #r ~= 3 then
        return nil, format("redis limiter store at %s: unexpected script answer", self.where)
      end
      return r
    end
  end
end

local function check_limits(limits)
  if type(limits) ~= "table" then error("klaviyo.limiter.redis: limits must be a table", 3) end
  for _, w in ipairs(WINDOWS) do
    local v = limits[w[1]]
    if v ~= nil and (type(v) ~= "number" or v < 0 or v > LIMIT_MAX or v ~= floor(v)) then
      error("klaviyo.limiter.redis: limits." .. w[1] .. " must be an integer in 0.." ..
        LIMIT_MAX, 3)
    end
  end
end

--- Ask to send one request under key with limits {burst=, steady=, daily=} (absent or 0: no
-- such window). Returns wait, now: wait 0 = go (recorded at Redis time `now`, us), else
-- the exact seconds until it would be go. nil, err when Redis cannot answer.
function M:acquire(key, limits)
  check_limits(limits)
  local args = { "acquire", 0 }
  for _, w in ipairs(WINDOWS) do
    local l = effective(limits[w[1]] or 0, self.safety)
    if l > 0 then
      args[#args + 1] = w[2]
      args[#args + 1] = l
      args[2] = args[2] + 1
    end
  end
  local r, err = self:_run(key, args)
  if not r then return nil, err end
  if r[1] == 1 then return 0, r[3] end
  -- Redis's word (its data may be anyone's): a wait that is not positive or longer than
  -- any window or block could make is never handed to a sleep (the core's one check).
  local wait = type(r[2]) == "number" and r[1] == 0 and r[2] > 0 and r[2] / US
  if not wait or duration(wait) ~= wait then
    return nil, format("redis limiter store at %s answered an impossible wait (%s us); its data " ..
      "for this key is damaged", self.where, tostring(r[2]))
  end
  return wait, r[3]
end

--- A 429's Retry-After: nobody using the store sends under key for `seconds`. Never
-- shortens a longer block. Returns true, or nil, err.
function M:block(key, seconds)
  seconds = duration(seconds)   -- longer than a day: a day
  if not seconds then error("klaviyo.limiter.redis: seconds must be a number >= 0", 2) end
  local r, err = self:_run(key, { "block", format("%.0f", seconds * US) })
  if not r then return nil, err end
  return true
end

--- RateLimit-Remaining / RateLimit-Reset (seconds) of a response: when less is left than
-- the store believes, at most `remaining` more sends before the reset. Never raises what
-- is allowed. Returns what the store now believes is left (-1: nothing known), or nil, err.
function M:observe(key, limits, remaining, reset)
  check_limits(limits)
  if type(remaining) ~= "number" or type(reset) ~= "number" then
    error("klaviyo.limiter.redis: remaining and reset must be numbers", 2)
  end
  if remaining < 0 then remaining = 0 end
  reset = duration(reset) or 0   -- a window already over (or NaN) teaches nothing
  local r, err = self:_run(key, { "observe", WINDOWS[2][2],
    effective(limits.steady or 0, self.safety), floor(remaining), format("%.0f", reset * US) })
  if not r then return nil, err end
  return r[2]
end

--- Close the kept connection (plain Lua); inside nginx connections belong to the pool.
function M:close()
  if self.sock then
    self.sock:close()
    self.sock = nil
  end
end

return M
