-- Handlers of spec/net/ngx/nginx.conf.in: each reads a JSON body and answers JSON.
-- luacheck: globals ngx
local cjson = require "cjson"
local klaviyo = require "klaviyo"

local M = {}
local trackers = {}   -- kept alive: their timers deliver after the request ended

local function input()
  ngx.req.read_body()
  return cjson.decode(ngx.req.get_body_data())
end

local function reply(t)
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

-- POST {base_url, api_key | access_token, raise}: one get_lists with hooks capturing each
-- attempt; {seen = {{"request"|"response", info}...}, ok =, hook_error =, err =}.
function M.hooks()
  local a, seen = input(), {}
  local c = assert(klaviyo.new { base_url = a.base_url, api_key = a.api_key, access_token = a.access_token,
    retry = { base = 0.05, cap = 0.05 },
    on_request = function(i)
      seen[#seen + 1] = { "request", i }
      if a.raise then error("hook broke") end
    end,
    on_response = function(i) seen[#seen + 1] = { "response", i } end })
  local doc, res = c:call("get_lists", {})
  reply { seen = seen, ok = doc ~= nil, hook_error = res and res.hook_error,
          err = not doc and { status = res.status, code = res.code, message = res.message } or nil,
          transport = c.transport and "ngx" or "curl" }
end

-- The network options klaviyo.new refuses with the ngx transport: {name = message}.
function M.refuse()
  local out = {}
  for _, k in ipairs({ "proxy", "ca_file", "ca_path", "client_cert", "client_key" }) do
    local v = k == "proxy" and "http://127.0.0.1:1" or "/x"
    local ok, err = pcall(klaviyo.new, { api_key = "pk_x", [k] = v })
    out[k] = ok and "accepted" or tostring(err)
  end
  reply(out)
end

-- POST {base_url, api_key, spool}: a tracker whose timer delivers (and fails) after the request.
function M.tracker()
  local a = input()
  local c = assert(klaviyo.new { base_url = a.base_url, api_key = a.api_key, retry = { attempts = 1 } })
  local t = assert(c:tracker { spool = a.spool, interval = 0.1, auto = false })
  assert(t:track { metric = "Placed Order", profile = { email = "timer@example.com" } })
  trackers[#trackers + 1] = t
  reply { ok = true }
end

-- POST {base_url, public_key, timeout, redis_url}: one create_client_event (with a Redis limiter
-- store at redis_url, if given), timed; {ok =, err =, elapsed =}.
function M.dns()
  local a = input()
  local c = assert(klaviyo.new { base_url = a.base_url, public_key = a.public_key, timeout = a.timeout,
                                 retry = { attempts = 1 },
                                 limiter = a.redis_url and { store = "redis", url = a.redis_url } or nil })
  ngx.update_time()
  local t0 = ngx.now()
  local doc, err = c:call("create_client_event", { body = { data = { type = "event", attributes = {
    metric = { data = { type = "metric", attributes = { name = "Resolved" } } },
    profile = { data = { type = "profile", attributes = { email = "dns@example.com" } } },
    properties = {} } } } })
  ngx.update_time()
  reply { ok = doc ~= nil, elapsed = ngx.now() - t0,
          err = not doc and { kind = err.kind, code = err.code, sent = err.sent, message = err.message,
                              text = tostring(err) } or nil }
end

return M
