-- klaviyo.oauth token store in an nginx lua_shared_dict: shared by the workers; the refresh
-- lock is an add() with an expiry (a crashed holder's lock lapses).
local cjson = require("cjson").new()
local ngx = rawget(_G, "ngx")
local M = {}
local mt = { __index = M, __tostring = function() return "klaviyo.oauth shdict store" end }

-- new(dict_name, key, initial_tokens?): the initial tokens are written when the key is empty.
function M.new(name, key, initial)
  local dict = ngx.shared[name]
  if not dict then error("klaviyo.oauth: no lua_shared_dict " .. tostring(name), 2) end
  local s = setmetatable({ dict = dict, key = "oauth:" .. key, lkey = "oauth_lock:" .. key }, mt)
  if initial then dict:add(s.key, cjson.encode(initial)) end
  return s
end
function M:get()
  local v = self.dict:get(self.key)
  return v and cjson.decode(v) or nil
end
function M:set(t) return self.dict:set(self.key, cjson.encode(t)) end
function M:lock(ttl) return (self.dict:add(self.lkey, true, ttl)) == true end
function M:unlock() self.dict:delete(self.lkey); return true end

return M
