-- luacheck: globals ngx
-- The nginx side of hostile_spec's cosocket case: GET /refresh?url=&timeout= calls
-- oauth.refresh against the server at url from the content phase and answers
-- {kind, code, elapsed, ngx_calls}: ngx_calls counts the requests that went through the
-- cosocket transport (its request wrapped for the call only).
local cjson = require "cjson.safe"
local M = {}

function M.refresh()
  local oauth = require "klaviyo.oauth"
  local t = require "klaviyo.transport.ngx"
  local args = ngx.req.get_uri_args()
  local real, calls = t.request, 0
  t.request = function(...) calls = calls + 1; return real(...) end
  ngx.update_time()
  local t0 = ngx.now()
  local ok, tokens, err = pcall(oauth.refresh, { client_id = "cid_hostile", client_secret = args.secret,
    refresh_token = "rt_hostile", base_url = args.url, timeout = tonumber(args.timeout) })
  t.request = real
  ngx.update_time()
  local out = { elapsed = ngx.now() - t0, ngx_calls = calls }
  if not ok then out.raised = tostring(tokens)
  elseif tokens then out.ok = true
  else out.kind, out.code, out.text = err.kind, err.code, tostring(err) end
  ngx.say(cjson.encode(out))
end

return M
