-- klaviyo.oauth token store in an nginx lua_shared_dict: shared by the workers; the refresh
-- lock is an add() with an expiry (a crashed holder's lock lapses) holding a random owner, and
-- unlock deletes it only while it is still its owner's (a lapsed holder frees no one else's).
local json = require "klaviyo.oauth.store_json"
local core = require "klaviyo.core"
local ngx = rawget(_G, "ngx")
local M = {}
local mt = { __index = M, __tostring = function() return "klaviyo.oauth shdict store" end }

-- new(dict_name, key, initial_tokens?): the initial tokens are written when the key is empty.
function M.new(name, key, initial)
  local dict = ngx.shared[name]
  if not dict then error("klaviyo.oauth: no lua_shared_dict " .. tostring(name), 2) end
  local s = setmetatable({ dict = dict, key = "oauth:" .. key, lkey = "oauth_lock:" .. key,
                           owner = false }, mt)
  if initial then dict:add(s.key, (assert(json.encode(initial)))) end
  return s
end

-- The tokens, or nil when the key is empty or holds no JSON.
function M:get() return json.decode(self.dict:get(self.key)) end

function M:set(t)
  local v, err = json.encode(t)
  if not v then return nil, err end
  return self.dict:set(self.key, v)
end

function M:lock(ttl)
  local owner = core.random_bytes(12)
  if self.dict:add(self.lkey, owner, ttl) then self.owner = owner; return true end
  return false
end

function M:unlock()
  if self.owner and self.dict:get(self.lkey) == self.owner then self.dict:delete(self.lkey) end
  self.owner = false
  return true
end

return M
