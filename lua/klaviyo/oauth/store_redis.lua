-- klaviyo.oauth token store in Redis, for nginx workers on several hosts: lua-resty-redis over
-- cosockets (inside nginx only). The tokens are one JSON value; the refresh lock is SET NX PX
-- with a random owner, released only by its owner (a crashed holder's lock lapses).
--   oauth.stores.redis{ host = "127.0.0.1", port = 6379, db = 0, password = nil,
--                       key = "install-1", initial = tokens }
local json = require "klaviyo.oauth.store_json"
local core = require "klaviyo.core"

local ngx = rawget(_G, "ngx")
local M = {}
local mt = { __index = M, __tostring = function() return "klaviyo.oauth redis store" end }

local UNLOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

function M.new(o)
  if not (ngx and ngx.socket) then error("klaviyo.oauth: the redis store works inside nginx", 2) end
  if type(o) ~= "table" or type(o.key) ~= "string" or o.key == "" then
    error("klaviyo.oauth: redis store needs {key = ...}", 2)
  end
  local s = setmetatable({ host = o.host or "127.0.0.1", port = o.port or 6379, db = o.db or 0,
    password = o.password, timeout = (o.timeout or 2) * 1000,
    key = "klaviyo:oauth:" .. o.key, lkey = "klaviyo:oauth_lock:" .. o.key, owner = false }, mt)
  s.pool = string.format("klaviyo-oauth:%s:%s:%s:%s", s.host, tostring(s.port), tostring(s.db),
    ngx.md5(s.password or ""))
  if o.initial then s:command("set", s.key, (assert(json.encode(o.initial))), "nx") end
  return s
end

-- One command on a pooled connection: its answer, or nil, err: a failed connection is closed,
-- and an error reply (READONLY, OOM, ...) is nil, err too, its connection kept.
-- The pool is named by the server, the database and the password, so a connection that was
-- authenticated and SELECTed for one store never serves a store of another database or
-- credential.
function M:command(name, ...)
  local ok, resty = pcall(require, "resty.redis")
  if not ok then resty = require "nginx.redis" end   -- Debian's lua-nginx-redis
  local red = resty:new()
  red:set_timeout(self.timeout)
  local err
  ok, err = red:connect(self.host, self.port, { pool = self.pool })
  if not ok then return nil, err end
  if red:get_reused_times() == 0 then
    if self.password then
      ok, err = red:auth(self.password)
      if not ok then red:close(); return nil, err end
    end
    if self.db ~= 0 then
      ok, err = red:select(self.db)
      if not ok then red:close(); return nil, err end
    end
  end
  local res
  res, err = red[name](red, ...)
  if res == nil then red:close(); return nil, err end
  red:set_keepalive(10000, 16)
  if res == false then return nil, "redis: " .. tostring(err) end
  return res
end

function M:get() return json.decode((self:command("get", self.key))) end

function M:set(t)
  local v, err = json.encode(t)
  if not v then return nil, err end
  local ok
  ok, err = self:command("set", self.key, v)
  if not ok then return nil, err end
  return true
end

-- lock(ttl) -> true | false (another holds it) | false, err (Redis failed or refused)
function M:lock(ttl)
  local owner = core.random_bytes(12)
  local r, err = self:command("set", self.lkey, owner, "nx", "px", math.floor(ttl * 1000))
  if r == "OK" then self.owner = owner; return true end
  return false, err
end

function M:unlock()
  if self.owner then self:command("eval", UNLOCK, 1, self.lkey, self.owner); self.owner = false end
  return true
end

return M
