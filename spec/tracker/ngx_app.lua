-- luacheck: globals ngx
-- The nginx side of ngx_spec: each worker opens its own spool (`%w`) in init_worker and its
-- tracker's ngx.timer.every flusher delivers; /track only appends.
local M = {}
local t

function M.init_worker(url, key, dir)
  local klaviyo = require "klaviyo"
  local tracker = require "klaviyo.tracker"
  local client = assert(klaviyo.new { api_key = key, base_url = url })
  local err
  t, err = tracker.new(client, { spool = dir .. "/events.%w.spool", interval = 0.2 })
  if not t then ngx.log(ngx.ERR, "tracker: ", tostring(err)) end
end

function M.track()
  local seq = tonumber(ngx.var.arg_seq)
  local uid, err = t:track { metric = "Placed Order", profile = { email = "n" .. seq .. "@example.com" },
    properties = { seq = seq } }
  if not uid then
    ngx.status = 500
    ngx.say(tostring(err))
    return
  end
  ngx.say(ngx.worker.id())
end

return M
