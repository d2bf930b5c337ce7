-- Sends attempted from nginx phases without cosockets (init, init_worker, set, header_filter,
-- body_filter, log): each attempt's outcome is kept in the shared dict `ngxapp` under
-- "phase:<name>" and read back with GET /phase/result?name=<name>. And the remedy the
-- refusal suggests: a send from ngx.timer.at (GET /phase/timer).
-- luacheck: globals ngx
local ngx = ngx
local cjson = require("cjson.safe").new()
local klaviyo = require "klaviyo"

local _M = {}

local EVENT = { data = { type = "event", attributes = {
  metric = { data = { type = "metric", attributes = { name = "Phase Event" } } },
  profile = { data = { type = "profile", attributes = { email = "phase@example.com" } } },
  properties = { from = "phase spec" },
} } }

-- The configured client options (POST /configure), or a client nobody answers (init).
local function options()
  local raw = ngx.shared.ngxapp:get("config")
  if raw then return cjson.decode(raw) end
  return { api_key = "pk_init_phase_key", base_url = "http://127.0.0.1:9" }
end

-- Tries one send in the current phase; records "sent", "error: <err>" or "raised: <msg>".
function _M.try(name)
  local outcome
  local ok, e = pcall(function()
    local client = assert(klaviyo.new(options()))
    local doc, err = client:call("create_event", { body = EVENT })
    outcome = doc and "sent" or ("error: " .. tostring(err))
  end)
  if not ok then outcome = "raised: " .. tostring(e) end
  ngx.shared.ngxapp:set("phase:" .. name, outcome)
  return outcome
end

-- init_by_lua: the refused send, and a client made the common way, once in the master
-- (module level in an app), with the shared limiter; workers use it later (/init-client).
function _M.init(emulator_url)
  _M.try("init")
  _M.init_client = assert(klaviyo.new {
    access_token = "emu_at_placeholder_until_configured", base_url = emulator_url,
    limiter = { store = "shdict", dict = "klaviyo_limits" } })
end

-- GET /init-client: the client made in init_by_lua, given the configured account's OAuth
-- token, gets the profiles -> {status =} | {err =}.
function _M.init_client_call()
  local token = options().access_token
  local client = _M.init_client
  local out = { transport = client.transport and "ngx" or "curl" }
  assert(client:set_access_token(token))
  local doc, res = client:call("get_profiles", {})
  if doc then out.status = res.status else out.err = tostring(res) end
  ngx.say(cjson.encode(out))
end

function _M.init_worker()
  if ngx.worker.id() == 0 then _M.try("init_worker") end
end

function _M.timer()
  ngx.shared.ngxapp:delete("phase:timer")
  local ok, err = ngx.timer.at(0, function(premature)
    if not premature then _M.try("timer") end
  end)
  ngx.say(ok and "scheduled" or ("timer failed: " .. tostring(err)))
end

function _M.result()
  local v = ngx.shared.ngxapp:get("phase:" .. (ngx.var.arg_name or ""))
  if v == nil then ngx.status = 404; ngx.say("none"); return end
  ngx.say(v)
end

return _M
