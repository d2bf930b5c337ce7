-- The limiter's Redis store for nginx: lua-resty-redis over cosockets. It runs the script the C
-- store runs (klaviyo.limiter.redis_script, one source) on the same keys, so plain processes
-- and nginx workers share one account's limits. acquire answers go (the send is recorded) or
-- the exact wait and never sleeps; Redis unreachable or silent gives nil and an error saying
-- so, never a go.
--
--   local store = require("klaviyo.limiter.redis").new{ url = "rediss://redis.internal:6380" }
--   local wait, err = store:acquire("acct/create_event", { burst = 350, steady = 3500 })
--   -- wait == 0: send now; wait > 0: sleep that many seconds and ask again; nil: err
--
-- A limiter store as the nginx driver asks it (spec/retry/store_conformance_spec.lua).
-- Every call takes a connection from the cosocket pool and gives it back; one that failed
-- mid-command is closed, never pooled. rediss:// speaks TLS and always verifies the server
-- (its certificate against nginx's lua_ssl_trusted_certificate, its name against the url's host).
-- The pool is a worker's, not a location's: locations that use one store need one trust.
local script = require "klaviyo.limiter.redis_script"
local duration = require("klaviyo.core").duration
local connect_within = require("klaviyo.transport.ngx_http").connect_within
local policy = require "klaviyo.policy"   -- the one check of a limits table, the windows
local share, SECONDS = policy.share, policy.WINDOW_SECONDS

local ngx = rawget(_G, "ngx")
local floor, tostring, tonumber, type, format = math.floor, tostring, tonumber, type, string.format
local match, sub, select = string.match, string.sub, select
local unpack = table.unpack or unpack

local M = { _VERSION = "0.1.0" }
local mt = { __index = M }

local US = 1000000
local KEY_MAX = 1024
-- The largest counts a reply of the limiter's may announce, and the most lines it may take:
-- the script answers three numbers (four lines), SCRIPT LOAD a 40-byte SHA1, an error one line.
local MAX_ITEMS, MAX_BULK, MAX_LINES = 16, 4096, 64

-- redis[s]://[[user]:password@]host[:port][/db], the grammar of the C store.
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
  local scheme, rest = url:match("^(rediss?)://(.*)$")
  if not rest then return nil, "redis url must look like redis[s]://[:password@]host[:port][/db]" end
  local authority, path = rest:match("^([^/?#]*)(.*)$")
  if path:find("^[?#]") then return nil, "redis url: query and fragment are not supported" end
  local u = { port = 6379, db = 0, tls = scheme == "rediss" or nil }
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
    local n = tonumber(port:match("^:(%d+)$"))
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

--- Create a store. opts: url, prefix ("klaviyo:limit:"), safety (in (0, 1], 1), timeout and
-- connect_timeout (seconds, 1), pool_size (32), idle_timeout (seconds, 60). Bad options raise.
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
  if not (ngx and ngx.socket) then
    error("klaviyo.limiter.redis.new: needs nginx cosockets; elsewhere use " ..
      'klaviyo.new{limiter = {store = "redis"}}, the C store', 2)
  end
  local ok, resty = pcall(require, "resty.redis")
  if not ok then resty = require "nginx.redis" end   -- Debian's lua-nginx-redis
  return setmetatable({
    url = u, prefix = prefix, safety = safety, resty = resty,
    timeout = opts.timeout or 1, connect_timeout = opts.connect_timeout or 1,
    idle_timeout = opts.idle_timeout or 60, pool_size = opts.pool_size or 32,
    -- credentials and TLS settings name the pool: connections never cross them
    pool = format("klaviyo-limit:%s:%s:%d:%d:%s:%s", u.tls and "tls" or "tcp", u.host, u.port,
      u.db, u.user or "", ngx.md5(u.password or "")),
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

-- lua-resty-redis believes the count a reply line announces: one that is not a number raises
-- inside it, a huge one makes it allocate or read that much, and arrays nested deep recurse
-- until the stack overflows. Every reply line it reads from `sock` is checked first: a count
-- that is not a number or over the bounds above, or more lines than a reply of the limiter's
-- takes since the command was sent, is an I/O failure (nil, err), so the command fails and
-- its connection is closed.
local function guard(sock)
  local receive, send, lines = sock.receive, sock.send, 0
  sock.send = function(s, ...)
    lines = 0
    return send(s, ...)
  end
  sock.receive = function(s, ...)   -- no pattern (not even nil): a line
    local data, err, partial = receive(s, ...)
    if data and select("#", ...) == 0 then
      lines = lines + 1
      if lines > MAX_LINES then return nil, "a reply longer than any of the limiter's" end
      local kind, count = match(data, "^([$*])(.*)$")
      if kind then
        count = match(count, "^%-?%d+$") and tonumber(count)
        if not count or count > (kind == "$" and MAX_BULK or MAX_ITEMS) then
          return nil, format("not a RESP reply of the limiter's (%q)", sub(data, 1, 24))
        end
      end
    end
    return data, err, partial
  end
end

-- A connection ready for EVALSHA (TLS done, authenticated, database selected), or nil, err.
function M:_connect()
  local red = self.resty:new()
  local sock = rawget(red, "_sock")
  guard(sock)
  sock:settimeouts(self.connect_timeout * 1000, self.timeout * 1000, self.timeout * 1000)
  -- a host name is resolved within connect_timeout, not nginx's resolver_timeout
  local ok, err = connect_within(sock, self.url.host, self.url.port, { pool = self.pool },
    self.connect_timeout)
  if not ok then
    red:close()
    return nil, format("redis limiter store unreachable at %s: %s; not sending", self.where,
      tostring(err))
  end
  if red:get_reused_times() > 0 then return red end
  if self.url.tls then
    ok, err = sock:sslhandshake(false, self.url.host, true)   -- false: no session kept
    -- nginx may answer true for a handshake whose verification failed and closed the socket
    if ok and not sock:getreusedtimes() then ok, err = nil, "the server's certificate was refused" end
    if not ok then
      red:close()
      return nil, format("redis limiter store at %s: TLS handshake failed (%s); not sending",
        self.where, tostring(err))
    end
  end
  local steps = {}
  if self.url.user then
    steps[1] = { "auth", self.url.user, self.url.password }
  elseif self.url.password then
    steps[1] = { "auth", self.url.password }
  end
  if self.url.db ~= 0 then steps[#steps + 1] = { "select", self.url.db } end
  for _, args in ipairs(steps) do
    local r, e = red[args[1]](red, unpack(args, 2))
    if not r then
      red:close()
      if r == nil then return nil, self:_fail(args[1]:upper(), e) end
      -- Redis's own message (e.g. WRONGPASS) never echoes the password.
      return nil, format("redis limiter store at %s refused %s: %s", self.where, args[1]:upper(), e)
    end
  end
  return red
end

-- Run the script under key with args; returns the reply {a, b, now} or nil, err. lua-resty-redis
-- answers nil, err for an I/O failure and false, err for an error reply.
function M:_run(key, args)
  if type(key) ~= "string" or key == "" or #key > KEY_MAX then
    error("klaviyo.limiter.redis: key must be a non-empty string of at most 1024 bytes", 3)
  end
  local k1, k2 = self.prefix .. "{" .. key .. "}:log", self.prefix .. "{" .. key .. "}:meta"
  for attempt = 1, 2 do
    local red, err = self:_connect()
    if not red then return nil, err end
    local reused = red:get_reused_times() > 0
    local r, e = true, nil
    if not self.sha then   -- Redis computes the SHA1 (plain Lua has none)
      r, e = red:script("LOAD", script)
      if type(r) == "string" and #r == 40 then self.sha = r end
    end
    if r ~= nil then
      r, e = red:evalsha(self.sha or "-", 2, k1, k2, unpack(args))
      if r == false and tostring(e):find("^NOSCRIPT") then
        -- The script cache was emptied (restart, SCRIPT FLUSH): send the text, which caches it.
        r, e = red:eval(script, 2, k1, k2, unpack(args))
      end
    end
    if r == nil then
      red:close()
      -- A pooled connection that Redis closed meanwhile: one fresh try. A timeout is not
      -- retried (the script may have run).
      if not (attempt == 1 and reused and (e == "closed" or tostring(e):find("reset"))) then
        return nil, self:_fail("the limiter script", e)
      end
    else
      red:set_keepalive(self.idle_timeout * 1000, self.pool_size)
      if not r then return nil, format("redis limiter store at %s: %s", self.where, e) end
      if type(r) ~= "table" or #r ~= 3 then
        return nil, format("redis limiter store at %s: unexpected script answer", self.where)
      end
      return r
    end
  end
end

local function check_limits(limits)
  local msg = policy.check_windows(limits)
  if msg then error("klaviyo.limiter.redis: " .. msg, 3) end
end

--- Ask to send one request under key with limits {burst=, steady=, daily=} (absent or 0: no
-- such window). Returns wait, now: wait 0 = go (recorded at Redis time `now`, us), else
-- the exact seconds until it would be go. nil, err when Redis cannot answer.
function M:acquire(key, limits)
  check_limits(limits)
  local args = { "acquire", 0 }
  for _, w in ipairs(policy.WINDOWS) do
    local l = share(limits[w] or 0, self.safety)
    if l > 0 then
      args[#args + 1] = SECONDS[w] * US
      args[#args + 1] = l
      args[2] = args[2] + 1
    end
  end
  local r, err = self:_run(key, args)
  if not r then return nil, err end
  if r[1] == 1 then return 0, r[3] end
  -- Redis's data may be anyone's: a wait that is not positive or longer than any window or
  -- block could make is never handed to a sleep (the core's one check).
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
  -- RateLimit-* headers speak of the steady window
  local r, err = self:_run(key, { "observe", SECONDS.steady * US, share(limits.steady or 0, self.safety),
    floor(remaining), format("%.0f", reset * US) })
  if not r then return nil, err end
  return r[2]
end

--- Connections belong to nginx's pool: nothing to close.
function M.close() end

return M
