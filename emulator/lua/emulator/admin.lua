-- The admin API under /__emulator/ (tests, benchmarks, people), plus Klaviyo's
-- OAuth endpoints /oauth/token and /oauth/revoke. No Klaviyo auth; loopback
-- only. Endpoints acting on one account take it from the `X-Emulator-Account`
-- header, an `account` query argument or an `account` body field; without one
-- they act on every account.
local cjson = require "cjson.safe"
local ops = require "klaviyo.operations"
local state = require "emulator.state"
local jsonapi = require "emulator.jsonapi"
local ratelimit = require "emulator.ratelimit"
local faults = require "emulator.faults"
local recorder = require "emulator.recorder"

local ngx = ngx
local encode, decode = cjson.encode, cjson.decode
local pairs, ipairs, type = pairs, ipairs, type

local M = {}

local function reply(status, doc, ctype)
  local body = doc ~= nil and (ctype and doc or jsonapi.encode(doc)) or nil
  ngx.status = status
  ngx.header["Content-Type"] = ctype or "application/json"
  ngx.header["Cache-Control"] = "no-store"
  if body then
    ngx.header["Content-Length"] = #body
    ngx.print(body)
  else
    ngx.header["Content-Length"] = 0
  end
  return ngx.exit(status)
end

local function bad(detail, status)
  return reply(status or 400, { error = detail })
end

local function read_json()
  ngx.req.read_body()
  local raw = ngx.req.get_body_data()
  if not raw or raw == "" then return {} end
  local t = decode(raw)
  if type(t) ~= "table" then return nil end
  return t
end

-- The account an admin call is about: nil (all), or acct; false when named but unknown.
local function which_account(body)
  local id = ngx.var.http_x_emulator_account
  if not id then
    local args = ngx.req.get_uri_args()
    id = args.account
  end
  if not id and type(body) == "table" and type(body.account) == "string" then id = body.account end
  if not id or id == "" then return nil end
  return state.account(id) or false
end

local function account_doc(acct)
  return {
    account_id = acct.id, private_key = acct.private_key, public_key = acct.public_key,
    access_token = acct.access_token, refresh_token = acct.refresh_token,
    client_id = acct.client_id, client_secret = acct.client_secret,
  }
end

---------------------------------------------------------------- admin endpoints

local routes = {}
local oauth = require "emulator.handlers.oauth"
oauth.register(routes, { reply = reply, bad = bad, read_json = read_json, which_account = which_account })

routes["GET health"] = function() return reply(200, { ok = true }) end

routes["POST reset"] = function()
  state.reset()
  ratelimit.reset()
  faults.reset()
  recorder.reset()
  return reply(200, { reset = true })
end

routes["POST accounts"] = function()
  local body = read_json()
  if not body then return bad("body must be a JSON object") end
  local scopes = body.scopes
  if scopes ~= nil then
    if type(scopes) ~= "table" then return bad("scopes must be an array of strings") end
    for _, s in ipairs(scopes) do
      if type(s) ~= "string" then return bad("scopes must be an array of strings") end
    end
  end
  local acct = state.new_account { scopes = scopes }
  return reply(201, account_doc(acct))
end

routes["POST expire-tokens"] = function()
  local acct = which_account(read_json())
  if acct == false then return bad("unknown account", 404) end
  state.expire_tokens(acct)
  return reply(200, { expired = true })
end

routes["POST faults"] = function()
  local body = read_json()
  if not body then return bad("body must be a JSON object") end
  local ok, err = faults.set(body.rules, ops)
  if not ok then return bad(err) end
  return reply(200, { rules = jsonapi.array(faults.list()) })
end

routes["GET faults"] = function() return reply(200, { rules = jsonapi.array(faults.list()) }) end
routes["DELETE faults"] = function()
  faults.reset()
  return reply(200, { rules = jsonapi.array({}) })
end

routes["GET requests"] = function()
  local acct = which_account()
  if acct == false then return bad("unknown account", 404) end
  local args = ngx.req.get_uri_args()
  local list = recorder.list { account = acct and acct.id, operation = args.operation, limit = args.limit }
  return reply(200, { requests = jsonapi.array(list) })
end

routes["GET flow-runs"] = function()
  local acct = which_account()
  if acct == false then return bad("unknown account", 404) end
  local out = {}
  local function add(a)
    for _, r in ipairs(a.flow_runs or {}) do
      out[#out + 1] = { id = r.id, account = a.id, flow_id = r.flow_id, profile_id = r.profile_id,
                        trigger = r.trigger, event_id = r.event_id, created = state.iso(r.created),
                        created_epoch = r.created }
    end
  end
  if acct then add(acct) else for _, a in pairs(state.accounts) do add(a) end end
  table.sort(out, function(x, y)
    if x.created_epoch ~= y.created_epoch then return x.created_epoch < y.created_epoch end
    return x.id < y.id
  end)
  return reply(200, { flow_runs = jsonapi.array(out) })
end

routes["GET webhook-deliveries"] = function()
  local acct = which_account()
  if acct == false then return bad("unknown account", 404) end
  local accts = {}
  if acct then accts[1] = acct else for _, a in pairs(state.accounts) do accts[#accts + 1] = a end end
  local list = require("emulator.handlers.webhooks").deliveries(accts)
  return reply(200, { deliveries = jsonapi.array(list) })
end

routes["GET stats"] = function()
  local s = recorder.stats()
  local total, throttled = 0, 0
  for _, v in pairs(s) do total = total + v.answers; throttled = throttled + v.throttled end
  return reply(200, { operations = s, answers = total, throttled = throttled })
end

routes["POST limits"] = function()
  local body = read_json()
  if not body then return bad("body must be a JSON object") end
  local acct = which_account(body)
  if acct == false then return bad("unknown account", 404) end
  local ok, err = ratelimit.override(body, acct or nil, ops)
  if not ok then return bad(err) end
  return reply(200, { ok = true })
end

routes["POST segments"] = function()
  local body = read_json()
  if not body then return bad("body must be a JSON object") end
  local acct = which_account(body)
  if not acct then
    return bad("segments need an account (X-Emulator-Account header or account field)",
      acct == false and 404 or 400)
  end
  local fr = require "emulator.flowrunner"
  if type(body.name) ~= "string" or body.name == "" then return bad("name is required") end
  if type(body.profile_ids) ~= "table" then return bad("profile_ids must be an array") end
  local seg, err = fr.define_segment(acct, body)
  if not seg then return bad(err) end
  return reply(201, { id = seg.id, name = seg.name })
end

routes["GET jobs"] = function()
  local acct = which_account()
  if not acct then
    return bad("jobs need an account (X-Emulator-Account header or account argument)",
      acct == false and 404 or 400)
  end
  local events = require "emulator.handlers.events"
  local args = ngx.req.get_uri_args()
  -- settle=1 finishes queued jobs now; without it a job completes on its own shortly after.
  if args.settle == "1" or args.settle == "true" then events.settle(acct) end
  return reply(200, { jobs = jsonapi.array(events.jobs(acct)) })
end

routes["GET accounts"] = function()
  local out = {}
  for _, a in pairs(state.accounts) do out[#out + 1] = { account_id = a.id, public_key = a.public_key } end
  return reply(200, { accounts = jsonapi.array(out) })
end

function M.handle(uri, method)
  local addr = ngx.var.remote_addr
  if addr ~= "127.0.0.1" and addr ~= "::1" then
    return reply(403, { error = "the admin API answers loopback clients only" })
  end
  if uri == "/oauth/token" or uri == "/oauth/token/" then
    if method ~= "POST" then return reply(405, { error = "invalid_request" }) end
    return oauth.token(reply)
  end
  if uri == "/oauth/revoke" or uri == "/oauth/revoke/" then
    if method ~= "POST" then return reply(405, { error = "invalid_request" }) end
    return oauth.revoke(reply)
  end
  local name = uri:match("^/__emulator/(.-)/?$")
  if not name then return reply(404, { error = "unknown admin endpoint " .. uri }) end
  local fn = routes[method .. " " .. name]
  if not fn then
    for k in pairs(routes) do
      if k:match("^%S+ (.*)$") == name then
        return reply(405, { error = method .. " not allowed on " .. uri })
      end
    end
    return reply(404, { error = "unknown admin endpoint " .. uri })
  end
  return fn()
end

M.encode = encode
return M
