-- One of the processes of processes_spec.lua: calls get_profiles for `seconds` through an
-- OAuth client whose tokens live in a file store shared with the other processes; prints
-- "ok=N fail=M tokens=h1,h2,..." (short hashes of the access tokens it used, not the tokens).
local url, path, client_id, secret, seconds = arg[1], arg[2], arg[3], arg[4], tonumber(arg[5])
local klaviyo = require "klaviyo"
local oauth = require "klaviyo.oauth"
local core = require "klaviyo.core"
local socket = require "socket"

local c = assert(klaviyo.new { base_url = url, limiter = false, oauth = {
  client_id = client_id, client_secret = secret, tokens = oauth.stores.file(path), margin = 1 } })
local ok, fail, seen, list, firsterr = 0, 0, {}, {}, ""
local stop = socket.gettime() + seconds
while socket.gettime() < stop do
  local doc, err = c:call("get_profiles", {})
  if doc then ok = ok + 1 else fail = fail + 1; firsterr = firsterr ~= "" and firsterr or tostring(err) end
  local h = oauth.b64url(core.sha256(c.oauth_manager.current)):sub(1, 10)
  if not seen[h] then seen[h] = true; list[#list + 1] = h end
  socket.sleep(0.01)
end
io.write(("ok=%d fail=%d tokens=%s err=%s\n"):format(ok, fail, table.concat(list, ","), firsterr))
