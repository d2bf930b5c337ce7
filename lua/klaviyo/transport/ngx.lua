-- klaviyo.transport.ngx: moves the core's requests over nginx cosockets (OpenResty,
-- ngx_http_lua_module), so a worker never blocks. The C core decides everything else: c:begin
-- gives the exact method, URL, headers and body (after every local check), and call:next says
-- what to do at each step of the request (ask the limiter, wait, send, stop), as it does for
-- the libcurl transport; this file drives those steps: it sends with
-- klaviyo.transport.ngx_http (HTTP/1.1 over a cosocket, with the libcurl transport's limits
-- and failure codes), sleeps with ngx.sleep and asks the shared limiter store.
--
-- Limits: with a shared-dict limiter (klaviyo.limiter.shdict) or the Redis store
-- (klaviyo.limiter.redis) every send first asks it and sleeps the wait; a 429 blocks the
-- operation for its Retry-After and a RateLimit-Remaining lower than the limiter's belief caps
-- it, in all workers.
local ngx = ngx
local type, tostring, error = type, tostring, error
local ipairs, pcall = ipairs, pcall
local setmetatable, floor = setmetatable, math.floor
local format = string.format

local errors = require "klaviyo.errors"
local shdict = require "klaviyo.limiter.shdict"
local core = require "klaviyo.core"
local http = require "klaviyo.transport.ngx_http"

local perform, clock = http.perform, http.clock

local _M = { _VERSION = "0.1.0" }
local mt = { __index = _M }

-- Phases where cosockets work. Anywhere else (init, init_worker, set, header_filter,
-- body_filter, log, balancer...) a send is refused with the phase named.
local COSOCKET_PHASES = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true,
}

-- Whether this code runs inside nginx with cosockets available somewhere (the automatic
-- transport choice of klaviyo.new).
function _M.usable()
  return type(ngx) == "table" and type(ngx.socket) == "table" and
    type(ngx.socket.tcp) == "function" and type(ngx.get_phase) == "function"
end

-- Whether this nginx phase has cosockets (a send from elsewhere is refused).
function _M.can_send()
  return _M.usable() and COSOCKET_PHASES[ngx.get_phase()] == true
end

local function phase_check(op_id)
  local phase = ngx.get_phase()
  if not COSOCKET_PHASES[phase] then
    error(format("klaviyo: %s: cannot send from the nginx %s phase (%s_by_lua* has no " ..
      "cosockets); send from a timer instead: ngx.timer.at(0, function() ... end)",
      op_id, phase, phase), 0)
  end
end

-- t = ngx_transport.new{timeout= (the whole request), connect_timeout= (seconds), pool_size=,
-- keepalive= (idle seconds), limiter= (a klaviyo.limiter.shdict or .redis), account= (limiter
-- key prefix), on_request=, on_response=}
function _M.new(opts)
  opts = opts or {}
  local function ms(v, default) return floor((v or default) * 1000 + 0.5) end
  return setmetatable({
    connect_ms = ms(opts.connect_timeout, 10),
    timeout = opts.timeout or 30,
    pool_size = opts.pool_size or 64,
    keepalive_ms = ms(opts.keepalive, 60),
    limiter = opts.limiter,
    account = opts.account or "",
    on_request = opts.on_request or false,
    on_response = opts.on_response or false,
  }, mt)
end

local instances = 0

-- The ngx transport for klaviyo.new's options (timeout, connect_timeout, limiter, keys);
-- bad options raise at `level`. limiter = {store = "shdict", dict = "<lua_shared_dict name>",
-- safety = 0..1, lock_ttl =, account = "<key prefix>"}, or {store = "redis", url =
-- "redis://...", prefix =, safety =, account =}: klaviyo.limiter.redis over cosockets. Either
-- way the keys are the libcurl transport's (the account defaults to core.account_key, a hash of
-- the credential), so nginx workers and other processes of one account share one limit.
function _M.from_options(opts, level)
  level = (level or 1) + 1
  if not _M.usable() then
    error('klaviyo.new: transport "ngx" needs nginx with ngx_http_lua_module (ngx.socket.tcp)', level)
  end
  -- cosockets take their CA and client certificate from nginx's configuration and cannot use
  -- a proxy: such an option would be ignored, so it is refused
  for _, k in ipairs({ "proxy", "ca_file", "ca_path", "client_cert", "client_key" }) do
    if opts[k] ~= nil then
      error(format('klaviyo.new: option %s is not available with transport "ngx": %s', k,
        k == "proxy" and "cosockets connect directly (use transport \"curl\" for a proxy)"
        or k:find("^ca_") and "set lua_ssl_trusted_certificate in nginx.conf"
        or "cosockets cannot present a client certificate (use transport \"curl\")"), level)
    end
  end
  -- klaviyo.new has checked the limiter's options and limits, and gives every request its
  -- limits (the limiter's override, else the client's, else the operation table's)
  local l, lim, account = opts.limiter, nil, nil
  if l then
    local ok
    if l.store == "redis" then
      ok, lim = pcall(require("klaviyo.limiter.redis").new,
        { url = l.url, prefix = l.prefix or "klaviyo:limit:", safety = l.safety })
    elseif l.store ~= "shdict" then
      error(format('klaviyo.new: limiter store %s is not available with the ngx transport ' ..
        '(use "shdict" or "redis")', tostring(l.store)), level)
    else
      if l.dict == nil then error("klaviyo.new: limiter option dict must name a lua_shared_dict", level) end
      local dict = ngx.shared[l.dict]
      if dict == nil then
        error(format("klaviyo.new: no lua_shared_dict named %s " ..
          "(add `lua_shared_dict %s 10m;` to the http block)", l.dict, l.dict), level)
      end
      instances = instances + 1
      local id = instances
      ok, lim = pcall(shdict.new, dict, {
        clock = function() ngx.update_time(); return ngx.now() end,
        -- the pid when the lock is taken: a client made in init_by_lua lives in every worker
        owner = function() return ngx.worker.pid() .. "." .. id end,
        safety = l.safety, lock_ttl = l.lock_ttl })
    end
    if not ok then
      error("klaviyo.new: limiter: " .. (tostring(lim):gsub("^.-klaviyo%.limiter%.[%w.]-: ", "")), level)
    end
    -- never a secret in a key: the account is named by a hash of the credential
    account = l.account or opts.account or
      core.account_key(opts.api_key or opts.public_key or opts.access_token or "")
  end
  return _M.new { timeout = opts.timeout, connect_timeout = opts.connect_timeout, limiter = lim,
                  account = account, on_request = opts.on_request, on_response = opts.on_response }
end

-- Calls hook `fn` with what the libcurl transport's hooks get (lua_client.c): the built
-- request with its Authorization value redacted. A hook's error does not stop the call; the
-- first one is kept in hooked.error (reported as info.hook_error).
local function hook(fn, hooked, b, op_id, attempt, waited, t0, status, err)
  local hs = {}
  for _, h in ipairs(b.headers) do
    hs[h[1]] = h[1]:lower() == "authorization" and "[redacted]" or h[2]
  end
  local info = { operation = op_id, method = b.method, url = b.url, headers = hs,
                 attempt = attempt, waited = waited }
  if t0 then
    info.duration, info.status = clock() - t0, status or 0
    info.error = err and (err.code or err.kind) or nil
  end
  local ok, herr = pcall(fn, info)
  if not ok and not hooked.error then
    hooked.error = (t0 and "on_response: " or "on_request: ") .. tostring(herr)
  end
end

-- The call's info, with the first hook error.
local function call_info(call, hooked)
  local i = call:info()
  i.hook_error = hooked.error
  return i
end

-- t:request(c, req, op_id) -> res | nil, err, then info {attempts, retries, throttled, waited,
-- backoff, stopped}: what c:request(req) and c:info() give with libcurl. The core walks the
-- request's steps (c:begin, call:next: the limiter's answer, waits, retries, when to stop, as
-- for libcurl); this loop moves the bytes, sleeps with ngx.sleep and asks the shared limiter
-- store with the request's limits.
function _M.request(self, c, req, op_id)
  op_id = op_id or req.operation or "request"
  phase_check(op_id)
  local lim = self.limiter
  local call, b = c:begin(req, lim and self.account or false)
  if not call then return nil, b end
  local res, err
  local hooked, attempt = {}, 0
  while true do
    local step, a1, a2, a3, a4, a5, a6 = call:next()
    if step == "send" then
      attempt = attempt + 1
      local t0, waited = clock(), 0
      if self.on_request or self.on_response then
        local i = call:info()
        waited = i.waited + i.backoff
      end
      if self.on_request then hook(self.on_request, hooked, b, op_id, attempt, waited) end
      local status, headers, body = perform(self, b, op_id)
      if status then
        res, err = call:answer(status, headers, body)
      else
        res, err = nil, headers
        call:failed(err)
      end
      if self.on_response then
        hook(self.on_response, hooked, b, op_id, attempt, waited, t0, status, err)
      end
    elseif step == "wait" then
      ngx.sleep(a1)
    elseif step == "limit" then
      local wait, lerr = lim:acquire(a1, a2)
      if wait ~= nil or lerr ~= "locked" then call:limited(wait, lerr)
      else ngx.sleep(0.001) end   -- another worker holds the key: ask again
    elseif step == "feed" then
      -- a1 key, a2 seconds to block it, a4 RateLimit-Remaining, a5 -Reset; advisory: a key
      -- kept locked for 10 ms skips the update
      if a2 then lim:block(a1, a2) end
      if a4 then
        for _ = 1, 10 do
          local ok, oerr = lim:observe(a1, a3, a4, a5)
          if ok ~= nil or oerr ~= "locked" then break end
          ngx.sleep(0.001)
        end
      end
    elseif step == "done" then
      return res, nil, call_info(call, hooked)
    elseif a2 then   -- "fail" before an answer: the core's own (the limiter's)
      return nil, errors.new(a1, op_id, a5, { code = a3, title = a4, retry_after = a6 }),
        call_info(call, hooked)
    else              -- "fail" after an answer: its error; a 429 whose wait outlasts the call
      if a1 == "throttled" then err.kind = a1 end   -- is throttled
      return nil, err, call_info(call, hooked)
    end
  end
end


return _M
