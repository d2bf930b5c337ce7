-- lua-klaviyo: a Klaviyo API client. The C core (klaviyo.core) decides what to send and what a
-- response means and moves the bytes with libcurl; this layer adds Lua manners: parameter
-- checks against the operation table generated from Klaviyo's spec, JSON bodies, decoded
-- responses, readable errors, OAuth refresh and pagination.
--
--   local klaviyo = require "klaviyo"
--   local client = assert(klaviyo.new{ api_key = os.getenv("KLAVIYO_API_KEY") })
--   local doc, err = client:call("get_profiles", {
--     filter = klaviyo.filter.equals("email", "a@b.com"), ["page[size]"] = 20 })
--   if not doc then print(err) end          -- err.status, err.code, err.detail, ...
--   for profile, perr in client:paginate("get_profiles", {}) do
--     if not profile then error(tostring(perr)) end
--     print(profile.id)
--   end
--
-- Results are `value` or `nil, err` (err: a table with status, code, title, detail, pointer,
-- parameter, retry_after, operation, request_id, kind; tostring gives one line). Programmer
-- errors (unknown options or operations, wrong types, missing parameters) raise.
local type, pairs, ipairs, tostring, error, pcall = type, pairs, ipairs, tostring, error, pcall
local setmetatable, getmetatable = setmetatable, getmetatable
local format, huge = string.format, math.huge

local core = require "klaviyo.core"
local cjson = require("cjson").new()   -- our own instance: users' cjson settings stay theirs
local operations = require "klaviyo.operations"
local filter = require "klaviyo.filter"
local errors = require "klaviyo.errors"
local request = require "klaviyo.request"
local paginate = require "klaviyo.paginate"

local cjson_decode = cjson.decode
local build = request.build
local wrap = errors.wrap

local _M = {
  _VERSION = "0.1.0",
  operations = operations,
  filter = filter,
  errors = errors,
  -- JSON null for request bodies and filters; cjson.null is accepted too, and decoded
  -- responses carry cjson.null (klaviyo.json_null) for nulls.
  null = filter.null,
  json_null = cjson.null,
}

-- The idiomatic modules, bound to a client on first use (client.events, client.profiles, ...):
-- each is a thin layer over client:call, loaded only by those who use it.
local MODULES = {
  events = "klaviyo.events", profiles = "klaviyo.profiles", consent = "klaviyo.subscriptions",
  lists = "klaviyo.lists", segments = "klaviyo.segments", flows = "klaviyo.flows",
  metrics = "klaviyo.metrics", client_api = "klaviyo.client_api",
}

local mt = {
  __index = function(self, k)
    local v = _M[k]
    if v ~= nil then return v end
    local name = MODULES[k]
    if name == nil then return nil end
    v = require(name).new(self)
    rawset(self, k, v)
    return v
  end,
}

-- The JSON encoder of the C core (names the path of a bad value); lua-cjson when the core was
-- built without it.
local encode = core.encode
if encode == nil then
  local cjson_encode = cjson.encode
  encode = function(v)
    local ok, s = pcall(cjson_encode, v)
    if ok then return s end
    return nil, s
  end
end
_M.encode = encode

local array_mt = { __jsontype = "array" }
local object_mt = { __jsontype = "object" }

-- klaviyo.array(t): marks t (or a new table) as a JSON array, so an empty one encodes as [].
function _M.array(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then error("klaviyo.array: expected a table, got " .. type(t), 2) end
  local m = getmetatable(t)
  if m ~= nil and m ~= array_mt then error("klaviyo.array: the table already has a metatable", 2) end
  return setmetatable(t, array_mt)
end

-- klaviyo.object(t): marks t as a JSON object, so an empty one encodes as {} (the default for
-- unmarked empty tables too; this makes the intent explicit).
function _M.object(t)
  if t == nil then t = {} end
  if type(t) ~= "table" then error("klaviyo.object: expected a table, got " .. type(t), 2) end
  local m = getmetatable(t)
  if m ~= nil and m ~= object_mt then error("klaviyo.object: the table already has a metatable", 2) end
  return setmetatable(t, object_mt)
end

-- Option name -> accepted Lua type.
local OPTIONS = {
  api_key = "string", access_token = "string", public_key = "string", base_url = "string",
  revision = "string", timeout = "number", connect_timeout = "number", refresh = "function",
  user_agent = "string", transport = "string", limiter = "table",
}
local CORE_OPTIONS = { "api_key", "access_token", "public_key", "base_url", "revision",
                       "timeout", "connect_timeout", "user_agent" }

-- Which transport moves the bytes: "curl" (the core's libcurl; blocks) or "ngx" (nginx
-- cosockets, klaviyo.transport.ngx). Inside nginx "ngx" is the default: a blocking call there
-- would stall every request of the worker. nil means the core's own libcurl transport.
local function pick_transport(opts)
  local name = opts.transport
  local ngx_transport
  if name == nil or name == "ngx" then
    ngx_transport = require "klaviyo.transport.ngx"
    if name == nil then name = ngx_transport.usable() and "ngx" or "curl" end
  end
  if name == "ngx" then return ngx_transport.from_options(opts, 3) end
  if name ~= "curl" then
    error(format('klaviyo.new: option transport must be "curl" or "ngx", got %q', name), 3)
  end
  if opts.limiter ~= nil then
    error('klaviyo.new: option limiter (store "shdict") needs transport "ngx"', 3)
  end
  return nil
end

-- klaviyo.new(opts) -> client or nil, err (err when the core refuses a setting: a key holding
-- control characters, a private key over plain http to a non-loopback host, a bad revision...).
function _M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("klaviyo.new: expected a table of options, got " .. type(opts), 2) end
  for k, v in pairs(opts) do
    local want = OPTIONS[k]
    if want == nil then
      error(format("klaviyo.new: unknown option %s", tostring(k)), 2)
    end
    if type(v) ~= want then
      error(format("klaviyo.new: option %s must be a %s, got %s", k, want, type(v)), 2)
    end
  end
  if opts.api_key and opts.access_token then
    error("klaviyo.new: give api_key or access_token, not both", 2)
  end
  if opts.refresh and not opts.access_token then
    error("klaviyo.new: refresh needs access_token", 2)
  end
  for _, name in ipairs({ "timeout", "connect_timeout" }) do
    local v = opts[name]
    if v ~= nil and not (v > 0 and v < huge) then
      error(format("klaviyo.new: option %s must be a positive number of seconds", name), 2)
    end
  end
  local transport = pick_transport(opts)
  local copts = {}
  for _, name in ipairs(CORE_OPTIONS) do copts[name] = opts[name] end
  local c, err = core.new(copts)
  if not c then return nil, wrap(err, "new") end
  return setmetatable({ core = c, refresh = opts.refresh, transport = transport }, mt)
end

-- Decodes a successful response: the JSON document, or true for an empty body (202/204).
local function decode(res, op_id)
  local body = res.body
  if body == nil or body == "" then return true, res end
  local ok, doc = pcall(cjson_decode, body)
  if ok then return doc, res end
  return nil, errors.new("decode", op_id, "response body is not JSON: " .. tostring(doc),
    { status = res.status, body = body })
end

-- One request through the client's transport: res | nil, err.
local function perform(self, req, op_id)
  local t = self.transport
  if t then return t:request(self.core, req, op_id) end
  return self.core:request(req)
end

-- Sends one core request; on a 401 with an OAuth refresh function, refreshes the token once
-- and repeats the request once.
local function send(self, req, op_id)
  local c = self.core
  local res, err = perform(self, req, op_id)
  if res then return decode(res, op_id) end
  local refresh = self.refresh
  if refresh and err.status == 401 then
    local token, rerr = refresh(self)
    if type(token) ~= "string" or token == "" then
      err.refresh_error = rerr ~= nil and tostring(rerr) or "refresh returned no token"
      return nil, wrap(err, op_id)
    end
    local ok, serr = c:set_access_token(token)
    if ok == nil then
      err.refresh_error = tostring(serr)
      return nil, wrap(err, op_id)
    end
    res, err = perform(self, req, op_id)
    if res then return decode(res, op_id) end
  end
  return nil, wrap(err, op_id)
end

-- client:call(operation_id, params) -> document (true for an empty body), response
-- ({status, headers, ratelimit}) | nil, err.
function _M.call(self, op_id, params)
  local req, msg = build(op_id, params, encode)
  if req == nil then error(msg, 2) end
  return send(self, req, op_id)
end

local function check_paged(op_id, params)
  local req, msg = build(op_id, params, encode)
  if req == nil then error(msg, 3) end
  if req.method ~= "GET" then
    error(format("klaviyo: %s: only GET operations are paginated", op_id), 3)
  end
  return req
end

-- client:pages(operation_id, params): iterator of page documents (see klaviyo.paginate).
function _M.pages(self, op_id, params)
  local req = check_paged(op_id, params)
  return paginate.pages(function(r, id) return send(self, r, id) end, req, op_id)
end

-- client:paginate(operation_id, params): iterator of every resource of every page; a failure
-- is yielded once as `false, err` (nil would end a generic for silently), then the loop ends.
function _M.paginate(self, op_id, params)
  local req = check_paged(op_id, params)
  return paginate.items(paginate.pages(function(r, id) return send(self, r, id) end, req, op_id))
end

-- client:tracker{spool=, batch=, interval=, ...}: a durable, batched event tracker bound to
-- this client (see klaviyo.tracker).
function _M.tracker(self, opts)
  return require("klaviyo.tracker").new(self, opts)
end

-- Replaces the OAuth access token (e.g. after refreshing it yourself).
function _M.set_access_token(self, token)
  if type(token) ~= "string" then
    error("klaviyo: set_access_token: expected a string, got " .. type(token), 2)
  end
  local ok, err = self.core:set_access_token(token)
  if ok == nil and err ~= nil then return nil, wrap(err, "set_access_token") end
  return true
end

-- Closes the connection; safe to call twice (the core's close is idempotent).
function _M.close(self)
  self.core:close()
  return true
end

return _M
