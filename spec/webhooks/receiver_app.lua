-- The receiver's handler (spec/webhooks/receiver.conf.in): verifies with
-- klaviyo.webhooks.ngx_verify and keeps what it accepted for GET /received. With
-- `fail_first` it answers 500 to that many requests first (to see the emulator retry); `opts`
-- go to ngx_verify.
local cjson = require "cjson.safe"
local webhooks = require "klaviyo.webhooks"

local ngx = ngx -- luacheck: ignore (runs inside nginx)

local _M = {}

function _M.hook(secret, fail_first, opts)
  local dict = ngx.shared.received
  if fail_first and dict:incr("flaky", 1, 0) <= fail_first then
    ngx.status = 500
    return ngx.say("not now")
  end
  local payload = webhooks.ngx_verify(secret, opts)
  local in_file = ngx.req.get_body_file() ~= nil
  local n = dict:incr("n", 1, 0)
  dict:set("d" .. n, cjson.encode({ uri = ngx.var.uri, in_file = in_file,
    webhook_id = payload.meta.klaviyo_webhook_id, data = payload.data }))
  ngx.say(cjson.encode({ ok = true, in_file = in_file }))
end

return _M
