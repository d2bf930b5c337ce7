--- lua-klaviyo: a Klaviyo API client. The C core (klaviyo.core) decides what to send and what a
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
-- @module klaviyo
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
local policy = require "klaviyo.policy"
local stats = require "klaviyo.stats"
local body_check = require("klaviyo.body_check").check
local V = require "klaviyo.validate"

local cjson_decode = cjson.decode
local build = request.build
local wrap = errors.wrap
local unique_ids, safe = policy.unique_ids, policy.safe

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
  metrics = "klaviyo.metrics", client_api = "klaviyo.client_api", images = "klaviyo.images",
}

-- Methods come from _M; an idiomatic module is made for the client on first use and kept.
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

-- The JSON encoder of the C core (names the path of a bad value); c:request encodes table
-- bodies with it straight into C memory.
_M.encode = core.encode

local array_mt = { __jsontype = "array" }
local object_mt = { __jsontype = "object" }

-- Gives t (or a new table) the metatable m of a JSON kind; raises, naming `fname`, when t is
-- not a table or already has another metatable. Called as `return (mark(...))`: the
-- parentheses keep it from being a tail call, so level 3 is the user's line in every Lua.
local function mark(t, m, fname)
  if t == nil then t = {} end
  if type(t) ~= "table" then error(fname .. ": expected a table, got " .. type(t), 3) end
  local cur = getmetatable(t)
  if cur ~= nil and cur ~= m then error(fname .. ": the table already has a metatable", 3) end
  return setmetatable(t, m)
end

--- klaviyo.array(t): marks t (or a new table) as a JSON array, so an empty one encodes as [].
---@param t table? the table to mark (default a new one)
---@return table t
function _M.array(t) return (mark(t, array_mt, "klaviyo.array")) end

--- klaviyo.object(t): marks t as a JSON object, so an empty one encodes as {} (the default for
-- unmarked empty tables too; this makes the intent explicit).
---@param t table? the table to mark (default a new one)
---@return table t
function _M.object(t) return (mark(t, object_mt, "klaviyo.object")) end

-- Option name -> accepted Lua type.
local OPTIONS = {
  api_key = "string", access_token = "string", public_key = "string", base_url = "string",
  revision = "string", timeout = "number", connect_timeout = "number", refresh = "function",
  user_agent = "string", transport = "string", limiter = "table", retry = "table",
  limits = "table", account = "string", oauth = "table", proxy = "string", ca_file = "string",
  ca_path = "string", client_cert = "string", client_key = "string", on_request = "function",
  on_response = "function", validate = "boolean",
}
local CORE_OPTIONS = { "api_key", "access_token", "public_key", "base_url", "revision",
                       "timeout", "connect_timeout", "user_agent", "proxy", "ca_file", "ca_path",
                       "client_cert", "client_key", "on_request", "on_response" }

-- The client-side rate limiter (limiter = ...):
--   nil or {store = "local", safety = 0.95}  in-process (default; curl transport)
--   {store = "redis", url = "redis://[:password@]host[:port][/db]", safety =, prefix =}
--                                            shared by every process using that Redis
--   {store = "shdict", dict = "<lua_shared_dict>", lock_ttl =, ...}  nginx workers (transport
--                                            "ngx"); with transport "ngx", store "redis" works too
--   false                                    no client-side limiting
-- Every store takes safety, limits and account. Option name -> accepted Lua type.
local LIMITER_OPTIONS = { store = "string", url = "string", safety = "number", prefix = "string",
                          limits = "table", account = "string", dict = "string",
                          lock_ttl = "number" }

-- Core options for the limiter of a curl-transport client.
local function curl_limiter(l, copts)
  if l == false then copts.limiter = "off"; return end
  if l == nil then return end
  local store = l.store or "local"
  if store == "shdict" then
    error('klaviyo.new: option limiter (store "shdict") needs transport "ngx"', 4)
  elseif store == "redis" then
    copts.limiter = "redis"
    copts.limiter_url = l.url
    copts.limiter_prefix = l.prefix
    copts.limiter_script = require "klaviyo.limiter.redis_script"
  elseif store == "local" then
    if l.url then error('klaviyo.new: limiter option url needs store "redis"', 4) end
    copts.limiter = "local"
  else
    error(format('klaviyo.new: limiter store must be "local", "redis" or "shdict", got %q', store), 4)
  end
  for _, k in ipairs({ "dict", "lock_ttl" }) do
    if l[k] ~= nil then error(format('klaviyo.new: limiter option %s needs store "shdict"', k), 4) end
  end
  if l.safety ~= nil then
    if not (l.safety > 0 and l.safety <= 1) then
      error("klaviyo.new: limiter option safety must be in (0, 1]", 4)
    end
    copts.limiter_safety = l.safety
  end
  copts.account = l.account or copts.account
end

-- Which transport moves the bytes: "curl" (the core's libcurl; blocks) or "ngx" (nginx
-- cosockets, klaviyo.transport.ngx). Inside nginx "ngx" is the default: a blocking call there
-- would stall every request of the worker. nil means the core's own libcurl transport.
local function pick_transport(opts, retry)
  local name = opts.transport
  local ngx_transport
  if name == nil or name == "ngx" then
    ngx_transport = require "klaviyo.transport.ngx"
    if name == nil then name = ngx_transport.usable() and "ngx" or "curl" end
  end
  if name == "ngx" then
    local t = ngx_transport.from_options(opts, 3)
    t.retry = retry
    return t
  end
  if name ~= "curl" then
    error(format('klaviyo.new: option transport must be "curl" or "ngx", got %q', name), 3)
  end
  return nil
end

--- klaviyo.new(opts) -> client or nil, err (err when the core refuses a setting: a key holding
-- control characters, a private key over plain http to a non-loopback host, a bad revision...).
-- Besides the connection settings: limiter (above), limits = {operation_id = {burst=, steady=,
-- daily=}} (overrides the operation table's, e.g. for an OAuth app's own limits), retry =
-- {attempts = 4, max_time = 60, base = 0.5, cap = 20} (attempts in all; seconds), account =
-- "<name>" (names the account in limiter keys; default a hash of the key).
-- Proxies from the environment (http_proxy, https_proxy, ALL_PROXY) are used by the curl
-- transport for an https base URL only, tunnelled with CONNECT (the key stays inside TLS); a
-- plain-http or loopback base URL never goes through them. The ngx transport uses none. A
-- `proxy` option (curl transport) is used for every URL, as are ca_file, ca_path, client_cert
-- and client_key; on_request/on_response(info) see every attempt (README: Network and hooks).
-- validate = false sends request bodies without checking them against Klaviyo's spec first.
---@param opts klaviyo.Options?
---@return klaviyo.Client? client
---@return klaviyo.Error? err
function _M.new(opts)
  if opts == nil then opts = {} end
  if type(opts) ~= "table" then error("klaviyo.new: expected a table of options, got " .. type(opts), 2) end
  V.options(opts, OPTIONS, "klaviyo.new", "option", 2, "limiter")
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
  local mgr = false
  if opts.oauth then   -- klaviyo.oauth's manager: the store's token, refreshed before expiry
    if opts.api_key or opts.access_token or opts.refresh then
      error("klaviyo.new: oauth replaces api_key, access_token and refresh", 2)
    end
    local token
    mgr, token = require("klaviyo.oauth").manager(opts.oauth, opts.base_url)
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    o.oauth, o.access_token = nil, token
    o.refresh = function() return mgr:token(mgr.current) end   -- after a 401: once, shared
    opts, mgr.current = o, token
  end
  local retry = opts.retry
  if retry ~= nil then
    local msg = policy.check_retry(retry, false)
    if msg then error("klaviyo.new: " .. msg, 2) end
  end
  -- per-operation limits: the limiter's own override klaviyo.new's, operation by operation
  local overrides = {}
  local lim_limits = false
  if opts.limiter then
    -- the store checks the values
    V.options(opts.limiter, LIMITER_OPTIONS, "klaviyo.new", "limiter option", 2)
    lim_limits = opts.limiter.limits or false
  end
  for i, t in pairs({ opts.limits or false, lim_limits }) do
    if t then
      local o, lmsg = policy.check_limits(t)
      if o == nil then error("klaviyo.new: " .. (i == 2 and "limiter " or "") .. lmsg, 2) end
      for k, v in pairs(o) do overrides[k] = v end
    end
  end
  local transport = pick_transport(opts, retry)
  local copts = {}
  for _, name in ipairs(CORE_OPTIONS) do copts[name] = opts[name] end
  copts.account = opts.account
  if not transport then curl_limiter(opts.limiter, copts) end
  if retry then
    copts.retry_attempts, copts.retry_max_time = retry.attempts, retry.max_time
    copts.retry_base, copts.retry_cap = retry.base, retry.cap
  end
  local c, err = core.new(copts)
  if not c then return nil, wrap(err, "new") end
  if mgr then mgr:attach(c, transport) end   -- its token calls go through this client
  -- false, not nil, for what is absent: a nil field would be looked up through __index
  return setmetatable({ core = c, refresh = opts.refresh or false, oauth_manager = mgr,
                        transport = transport or false,
                        limited = opts.limiter ~= false, overrides = overrides,
                        validate = opts.validate ~= false,
                        hooks = (opts.on_request or opts.on_response) and true or false,
                        counters = stats.new(), info = {} }, mt)
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

-- What the send loop did for a request sent once with no wait (c:request says so).
local PLAIN = { plain = true, attempts = 1, retries = 0, throttled = 0, waited = 0, backoff = 0 }

-- One request through the client's transport: res | nil, err; then what the send loop did
-- (PLAIN, or the client's info table, refilled by every call: stats.add reads it at once).
local function perform(self, req, op_id)
  local t = self.transport
  if t then return t:request(self.core, req, op_id) end
  local c = self.core
  local res, err, plain = c:request(req)
  if plain and not self.hooks then return res, nil, PLAIN end
  return res, err, c:info(self.info)
end

-- A table body the core could not encode (err.kind "encode", from c:request or c:batch) is the
-- caller's mistake: raised where they called (level 2 from call or batch), nothing sent.
local function body_error(op_id, err, level)
  error(format("klaviyo: %s: parameter body: %s", op_id, tostring(err.message)), level + 1)
end

-- Sends one core request (waiting for the rate limiter and retrying inside the transport); on
-- a 401 with an OAuth refresh function, refreshes the token once and repeats the request once.
local function send(self, req, op_id)
  local mgr = self.oauth_manager
  if mgr then   -- an OAuth client's token, refreshed when it is about to expire
    local token, terr = mgr:token()
    if not token then return nil, terr end
    if token ~= mgr.current then self.core:set_access_token(token); mgr.current = token end
  end
  if self.limited and req.limits == nil then req.limits = policy.limits_of(self.overrides, op_id) end
  local refreshed = false
  while true do
    local res, err, info = perform(self, req, op_id)
    -- a hook that raised did not stop the call: its message comes with the result
    if info and info.hook_error then (res or err).hook_error = info.hook_error end
    if res then
      stats.add(self.counters, op_id, info, nil)
      return decode(res, op_id)
    end
    if err.kind == "encode" then return nil, err end   -- call raises it at the caller's level
    stats.add(self.counters, op_id, info, err)
    if refreshed or not self.refresh or err.status ~= 401 then return nil, wrap(err, op_id) end
    refreshed = true
    local token, rerr = self.refresh(self)
    if errors.is_error(rerr) and rerr.kind == "oauth_revoked" then return nil, rerr end
    if type(token) ~= "string" or token == "" then
      err.refresh_error = rerr ~= nil and tostring(rerr) or "refresh returned no token"
      return nil, wrap(err, op_id)
    end
    local ok, serr = self.core:set_access_token(token)
    if mgr then mgr.current = token end
    if ok == nil then
      err.refresh_error = tostring(serr)
      return nil, wrap(err, op_id)
    end
  end
end

local CALL_OPTIONS = { retry = "table", idempotent = "boolean", validate = "boolean" }

-- The request table for one call: params checked, the body checked against the spec (unless
-- validate is false for the client or the call: nil, the refusal), events given unique_ids,
-- and what the send loop needs (limits, safe to repeat, per-call retry); raises on misuse.
local function prepare(self, op_id, params, opts, level)
  level = level + 1
  local idempotent, retry, validate = false, nil, self.validate
  if opts ~= nil then
    local name = tostring(op_id)
    if type(opts) ~= "table" then error(format("klaviyo: %s: call options must be a table", name), level) end
    V.options(opts, CALL_OPTIONS, "klaviyo: " .. name, "call option", level)
    idempotent, retry = opts.idempotent, opts.retry
    if opts.validate ~= nil then validate = opts.validate end
    if retry then
      local msg = policy.check_retry(retry, true)
      if msg then error(format("klaviyo: %s: %s", tostring(op_id), msg), level) end
    end
  end
  local req, msg, refusal = build(op_id, params, validate)
  if req == nil then
    if refusal then return nil, refusal end   -- a file that cannot be sent: nil, err
    error(msg, level)
  end
  if validate and req.body ~= nil then   -- what Klaviyo would refuse is not sent
    refusal = body_check(op_id, params.body)
    if refusal then return nil, refusal end
  end
  local has_uids = unique_ids(op_id, params)
  req.unique_ids = has_uids   -- the core stamps every event without one (in the bytes only)
  req.safe = safe(op_id, req.method, has_uids, idempotent)
  if retry then req.retry_attempts, req.retry_max_time = retry.attempts, retry.max_time end
  -- limits here for call and batch (batch sends without send); send sets them for pages
  if self.limited and req.limits == nil then req.limits = policy.limits_of(self.overrides, op_id) end
  return req
end

--- client:call(operation_id, params [, opts]) -> document (true for an empty body), response
-- ({status, headers, ratelimit}) | nil, err.
-- opts: {retry = {attempts =, max_time =}} for this call, {idempotent = true} to allow repeating
-- a call that is not safe to repeat by itself once it may have reached Klaviyo, {validate =
-- false} to send the body without checking it (klaviyo.body_check: a body Klaviyo would refuse
-- is `nil, err` with kind "refused", pointer, expected and given, and nothing is sent).
-- create_event and bulk_create_events bodies get a unique_id in every event that has none (in
-- the encoded bytes: params are never changed), so a repeated send is recorded once.
---@param self klaviyo.Client
---@param op_id string operation id (see klaviyo.operations)
---@param params table? path, query and body parameters
---@param opts klaviyo.CallOptions?
---@return any|nil doc the decoded document (true for an empty body)
---@return klaviyo.Response|klaviyo.Error res_or_err
function _M.call(self, op_id, params, opts)
  local req, refusal = prepare(self, op_id, params, opts, 2)
  if req == nil then return nil, refusal end
  local doc, res = send(self, req, op_id)
  if doc == nil and res.kind == "encode" then body_error(op_id, res, 2) end
  return doc, res
end

--- client:build(operation_id, params [, opts]) -> the request as client:call would send it
-- ({method, url, headers = {{name, value}...}, body}; events get their unique_ids) | nil, err.
-- Nothing is sent. The Authorization header holds the credential: redact it before showing.
---@param self klaviyo.Client
---@param op_id string operation id
---@param params table? parameters as for call
---@param opts klaviyo.CallOptions?
---@return klaviyo.Request? req
---@return klaviyo.Error? err
function _M.build(self, op_id, params, opts)
  local req, refusal = prepare(self, op_id, params, opts, 2)
  if req == nil then return nil, refusal end
  local b, err = self.core:build(req)
  if b == nil then
    if err.kind == "encode" then body_error(op_id, err, 2) end
    return nil, wrap(err, op_id)
  end
  return b
end

--- client:batch(requests [, {concurrency = 8}]) runs many calls at once (libcurl's multi
-- interface), through the same rate limiter and retry rules as client:call. requests: a list
-- of {operation_id, params [, opts]}. Returns a list in the same order whose items are
-- {doc, response} for a success and {nil, err} for a failure (doc as client:call gives it),
-- i.e. `local doc, err = results[i][1], results[i][2]`. Misuse (unknown operation, bad
-- parameters) raises before anything is sent.
---@param self klaviyo.Client
---@param requests table[] list of {operation_id, params [, opts]}
---@param opts {concurrency: integer?}?
---@return table[] results {doc, response} or {nil, err}, in order
function _M.batch(self, requests, opts)
  if type(requests) ~= "table" then error("klaviyo: batch: expected a list of {operation_id, params}", 2) end
  local conc = 8
  if opts ~= nil then
    if type(opts) ~= "table" then error("klaviyo: batch: options must be a table", 2) end
    for k in pairs(opts) do
      if k ~= "concurrency" then error("klaviyo: batch: unknown option " .. tostring(k), 2) end
    end
    conc = opts.concurrency or conc
    if type(conc) ~= "number" or conc ~= math.floor(conc) or conc < 1 or conc > 1024 then
      error("klaviyo: batch: concurrency must be an integer in 1..1024", 2)
    end
  end
  if self.transport then error("klaviyo: batch needs the curl transport", 2) end
  local reqs, ids = {}, {}
  for i = 1, #requests do
    local r = requests[i]
    if type(r) ~= "table" or type(r[1]) ~= "string" then
      error(format("klaviyo: batch: request %d must be {operation_id, params}", i), 2)
    end
    local req, refusal = prepare(self, r[1], r[2], r[3], 2)
    if req == nil then error(format("klaviyo: batch: request %d: %s", i, tostring(refusal)), 2) end
    reqs[i] = req
    ids[i] = r[1]
  end
  local raw, berr = self.core:batch(reqs, conc)
  if raw == nil then body_error(ids[berr.index], berr, 2) end
  local out = {}
  for i = 1, #reqs do
    local e, op_id = raw[i], ids[i]
    local res, err = e[1], e[2]
    if res then
      stats.add(self.counters, op_id, e.info or PLAIN, nil)
      local doc, derr = decode(res, op_id)
      out[i] = { doc, derr }
    else
      stats.add(self.counters, op_id, e.info or PLAIN, err)
      out[i] = { nil, wrap(err, op_id) }
    end
  end
  if self.hooks then out.hook_error = self.core:info().hook_error end
  return out
end

--- client:stats() -> {operation_id = {requests, attempts, retries, throttled (429s received),
-- waited (seconds waiting for the rate limiter), backoff (seconds between attempts),
-- errors = {[status or "kind:code"] = count}}}
---@param self klaviyo.Client
---@return table<string, table> counters by operation id
function _M.stats(self)
  return stats.snapshot(self.counters)
end

-- The iterator of pages of a GET operation, or of its one failure: a query value the spec does
-- not allow, refused unsent. Raises on misuse, at the caller of pages or paginate (called from
-- them, never as a tail call, so level 3 is the user's line).
local function pages_of(self, op_id, params)
  local req, msg, refusal = build(op_id, params, self.validate)
  if refusal then return paginate.failure(refusal) end
  if req == nil and msg then error(msg, 3) end
  if req == nil or req.method ~= "GET" then
    error(format("klaviyo: %s: only GET operations are paginated", op_id), 3)
  end
  return paginate.pages(function(r, id) return send(self, r, id) end, req, op_id)
end

--- client:pages(operation_id, params): iterator of page documents (see klaviyo.paginate). A
-- query value the spec does not allow is yielded as the one failure, `false, err`, unsent.
---@param self klaviyo.Client
---@param op_id string a GET operation id
---@param params table?
---@return fun(): table|false|nil, klaviyo.Error? iterator of page documents
function _M.pages(self, op_id, params)
  return (pages_of(self, op_id, params))
end

--- client:paginate(operation_id, params): iterator of every resource of every page; a failure
-- (a page that failed, or a query value refused before sending) is yielded once as
-- `false, err` (nil would end a generic for silently), then the loop ends.
---@param self klaviyo.Client
---@param op_id string a GET operation id
---@param params table?
---@return fun(): table|false|nil, klaviyo.Error? iterator of resources
function _M.paginate(self, op_id, params)
  return paginate.items(pages_of(self, op_id, params), op_id)
end

--- client:tracker{spool=, batch=, interval=, ...}: a durable, batched event tracker bound to
-- this client (see klaviyo.tracker).
---@param self klaviyo.Client
---@param opts klaviyo.TrackerOptions
---@return klaviyo.Tracker? tracker
---@return klaviyo.Error? err
function _M.tracker(self, opts)
  local t, err = require("klaviyo.tracker").new(self, opts, 3)
  return t, err
end

--- Replaces the OAuth access token (e.g. after refreshing it yourself).
---@param self klaviyo.Client
---@param token string
---@return true? ok
---@return klaviyo.Error? err
function _M.set_access_token(self, token)
  if type(token) ~= "string" then
    error("klaviyo: set_access_token: expected a string, got " .. type(token), 2)
  end
  local ok, err = self.core:set_access_token(token)
  if ok == nil and err ~= nil then return nil, wrap(err, "set_access_token") end
  return true
end

--- Closes the connection; safe to call twice (the core's close is idempotent).
---@param self klaviyo.Client
---@return true
function _M.close(self)
  self.core:close()
  return true
end

return _M
