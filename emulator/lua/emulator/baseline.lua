-- The yardstick for bench/emulator (`klaviyo-emulator start --baseline`): what a
-- bare Lua handler costs that reads the body, decodes it and keeps it in a
-- table. No routing, auth, limits or state: never use it as an emulator.
local cjson = require "cjson.safe"

local kept = {}
return function()
  ngx.req.read_body()
  local doc = cjson.decode(ngx.req.get_body_data() or "null")
  kept[#kept + 1] = doc
  ngx.status = 202
  ngx.header["Content-Length"] = 0
  ngx.send_headers()
  return ngx.exit(ngx.HTTP_OK)
end
