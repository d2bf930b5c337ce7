-- The emulator's request pipeline, run for every request by nginx:
-- route (from the generated operation table, compiled once) -> fault rules ->
-- authenticate -> scopes -> revision -> rate limits -> JSON:API body checks ->
-- query values against the spec's lists (klaviyo.query_check, as the client checks them) ->
-- the operation's handler (or 501). Every answer is a Klaviyo JSON:API
-- document. The hot path (create_event) builds no per-request tables beyond the
-- request itself and logs nothing.
local ops = require "klaviyo.operations"
local state = require "emulator.state"
local jsonapi = require "emulator.jsonapi"
local ratelimit = require "emulator.ratelimit"
local faults = require "emulator.faults"
local recorder = require "emulator.recorder"
local multipart = require "emulator.multipart"
local query_check = require "klaviyo.query_check"
local cjson = require "cjson.safe"

local ngx = ngx
local var, req_api = ngx.var, ngx.req
local decode = cjson.decode
local encode_doc, jerror = jsonapi.encode, jsonapi.error
local sub, find, byte, gmatch, format = string.sub, string.find, string.byte, string.gmatch, string.format
local pairs, ipairs, type, pcall, tostring, tonumber = pairs, ipairs, type, pcall, tostring, tonumber

local M = {}

local HANDLER_MODULES = { "profiles", "profile_import", "events", "metrics", "lists", "segments", "flows",
                          "subscriptions", "client", "images", "webhooks" }

-- Revisions: the first public one, the one this table was generated from.
local FIRST_REVISION, LATEST_REVISION = "2022-10-17", "2026-07-15"
M.LATEST_REVISION = LATEST_REVISION

---------------------------------------------------------------- routing

-- static[path][method] = op_id for paths without parameters; templated paths
-- live in a trie of segments (literal children first, then one parameter child).
local static, trie = {}, { lit = {} }
local handlers = {}

local function add_route(op_id, op)
  local path = op.path
  if not find(path, "{", 1, true) then
    static[path] = static[path] or {}
    static[path][op.method] = op_id
    return
  end
  local node = trie
  for seg in gmatch(path, "[^/]+") do
    local pname = seg:match("^{(.+)}$")
    if pname then
      node.param = node.param or { lit = {}, names = {} }
      node = node.param
    else
      node.lit[seg] = node.lit[seg] or { lit = {} }
      node = node.lit[seg]
    end
  end
  node.methods = node.methods or {}
  node.methods[op.method] = op_id
end

local function match(node, segs, i, values)
  if i > #segs then
    if node.methods then return node, values end
    return nil
  end
  local s = segs[i]
  local child = node.lit[s]
  if child then
    local found = match(child, segs, i + 1, values)
    if found then return found, values end
  end
  if node.param then
    values[#values + 1] = s
    local found = match(node.param, segs, i + 1, values)
    if found then return found, values end
    values[#values] = nil
  end
  return nil
end

--- Resolves (method, path) to op_id, params; or nil, allowed-methods table
-- (path exists, method does not); or nil (unknown path).
function M.route(method, path)
  if #path > 1 and byte(path, -1) == 47 then path = sub(path, 1, -2) end -- trailing "/"
  local methods = static[path]
  local op_id
  if methods then
    op_id = methods[method]
    if op_id then return op_id, nil end
    return nil, methods
  end
  local segs = {}
  for seg in gmatch(path, "[^/]+") do segs[#segs + 1] = seg end
  local node, values = match(trie, segs, 1, {})
  if not node then return nil end
  op_id = node.methods[method]
  if not op_id then return nil, node.methods end
  local params = {}
  for k, name in ipairs(ops[op_id].path_params) do params[name] = values[k] end
  return op_id, nil, params
end

local function load_handlers()
  for _, name in ipairs(HANDLER_MODULES) do
    for op_id, fn in pairs(require("emulator.handlers." .. name)) do
      -- only operation ids are routes; modules may export helpers beside them
      if ops[op_id] and type(fn) == "function" then handlers[op_id] = fn end
    end
  end
end

local config = {}

function M.init(opts)
  config = opts or {}
  for op_id, op in pairs(ops) do add_route(op_id, op) end
  load_handlers()
  M.handlers = handlers
end

local function watch_parent()
  local pid = config.watch_pid
  if not pid or pid == "" then return end
  local function check(premature)
    if premature then return end
    local f = io.open("/proc/" .. pid .. "/stat", "r")
    if f then f:close() return end
    -- The process that started us is gone (a crashed test run): quit.
    local pf = io.open(config.pid_file or "", "r")
    local master = pf and pf:read("*l")
    if pf then pf:close() end
    if master and master:match("^%d+$") then os.execute("kill -QUIT " .. master) end
  end
  ngx.timer.every(1, check)
end

function M.init_worker()
  math.randomseed(ngx.time() + ngx.worker.pid() * 1000 + math.floor((ngx.now() % 1) * 1e6))
  assert(recorder.open_journal(config.journal))
  watch_parent()
  -- State only grows (events are kept): collect less eagerly, trading memory
  -- for throughput on the create_event path.
  collectgarbage("setpause", 400)
end

---------------------------------------------------------------- answering

local JSONAPI = "application/vnd.api+json"
local header = ngx.header
local seq = 0

-- Sends the answer, records it, applies an "after" fault. `ctx` carries what
-- the recorder needs.
local function finish(ctx, status, doc, extra, rule, rl_limit, rl_remaining, rl_reset)
  local body, ctype = nil, JSONAPI
  if type(doc) == "string" then
    body, ctype = doc, rule and rule.content_type or JSONAPI -- a fault's raw body
  elseif doc ~= nil then
    body = encode_doc(doc)
  end
  ctx.status = status
  ctx.response_body = body
  seq = seq + 1
  ctx.seq = seq
  recorder.record(ctx)
  if rule and rule.reset == "after" then return ngx.exit(444) end
  ngx.status = status
  if rl_limit then
    header["RateLimit-Limit"] = rl_limit
    header["RateLimit-Remaining"] = rl_remaining
    header["RateLimit-Reset"] = rl_reset
  end
  if extra then
    for k, v in pairs(extra) do header[k] = v end
  end
  if body then
    header["Content-Type"] = ctype
    if rule and rule.truncate then
      -- Promise the whole body, send half, drop the connection.
      header["Content-Length"] = #body
      ngx.print(sub(body, 1, math.floor(#body / 2)))
      ngx.flush(true)
      return ngx.exit(ngx.ERROR)
    end
    header["Content-Length"] = #body
    ngx.print(body)
  else
    header["Content-Length"] = 0
    ngx.send_headers()
  end
  return ngx.exit(ngx.HTTP_OK)
end

local function fail(ctx, status, code, title, detail, source, extra, rule,
                    rl_limit, rl_remaining, rl_reset)
  local _, doc = jerror(status, code, title, detail, source)
  return finish(ctx, status, doc, extra, rule, rl_limit, rl_remaining, rl_reset)
end

local function query_table()
  local args = req_api.get_uri_args(200)
  for k, v in pairs(args) do
    if type(v) == "table" then args[k] = v[#v]
    elseif v == true then args[k] = "" end
  end
  return args
end

-- Revision strings seen before, with their verdict (bounded cache).
local rev_cache, rev_cache_n = {}, 0
local DAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- nil when fine, else an error detail.
local function check_revision(rev)
  local y, m, d, suffix = rev:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then
    return format("Invalid revision '%s': expected YYYY-MM-DD or YYYY-MM-DD.suffix.", rev)
  end
  y, m, d = tonumber(y), tonumber(m), tonumber(d)
  local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
  if m < 1 or m > 12 or d < 1 or d > DAYS[m] or (m == 2 and d == 29 and not leap) then
    return format("Invalid revision '%s': not a calendar date.", rev)
  end
  if suffix ~= "" and not suffix:match("^%.[%w_]+$") then
    return format("Invalid revision '%s': bad suffix.", rev)
  end
  if sub(rev, 1, 10) < FIRST_REVISION then
    return format("Invalid revision '%s': the first revision is %s.", rev, FIRST_REVISION)
  end
  return nil
end

local function revision_error(rev)
  local v = rev_cache[rev]
  if v == nil then
    v = check_revision(rev) or false
    if rev_cache_n < 1000 then rev_cache[rev] = v; rev_cache_n = rev_cache_n + 1 end
  end
  return v or nil
end

local function read_body()
  req_api.read_body()
  local body = req_api.get_body_data()
  if body then return body end
  local file = req_api.get_body_file()
  if file then
    local f = io.open(file, "rb")
    if f then body = f:read("*a"); f:close() end
  end
  return body
end

local MAX_BODY = 10 * 1024 * 1024

-- Authentication. Returns acct, kind ("private"|"oauth"|"public") or nil, detail.
local function authenticate(op, query)
  local auth = var.http_authorization
  if op.auth == "public" then
    if auth and find(auth, "Klaviyo-API-Key", 1, true) then
      return nil, "Private API keys may not be used with client endpoints; send the public key as company_id."
    end
    local cid = query.company_id
    if not cid or cid == "" then
      return nil, "Missing company_id: client endpoints authenticate with the public key."
    end
    local acct = state.account_for_public_key(cid)
    if not acct then return nil, "Invalid company_id." end
    return acct, "public"
  end
  if not auth then return nil, "Authentication credentials were not provided." end
  local key
  if find(auth, "Klaviyo-API-Key ", 1, true) == 1 then
    key = sub(auth, 17)
    if find(key, " ", 1, true) then key = key:match("^%s*(%S+)%s*$") end
  end
  if key then
    local acct = state.account_for_private_key(key)
    if acct then return acct, "private" end
    return nil, "Incorrect authentication credentials."
  end
  local token = auth:match("^Bearer%s+(%S+)%s*$")
  if token then
    local acct = state.account_for_access_token(token)
    if acct then return acct, "oauth" end
    return nil, "Incorrect authentication credentials."
  end
  return nil, "Incorrect authentication credentials."
end

local function check_body_shape(op, raw, ctx)
  local ctype = var.content_type
  if op.content_type == "multipart/form-data" then
    if not ctype or not find(ctype:lower(), "^%s*multipart/form%-data") then
      return 415, "unsupported_media_type", "Unsupported media type.",
        format("Unsupported media type '%s'; send multipart/form-data.", tostring(ctype))
    end
    local fields, why = multipart.parse(ctype, raw)
    if not fields then return 400, "invalid", "Invalid input.", why end
    ctx.body_doc = fields
    return nil
  end
  if not ctype
    or not (find(ctype, JSONAPI, 1, true) == 1 or find(ctype, "application/json", 1, true) == 1) then
    return 415, "unsupported_media_type", "Unsupported media type.",
      format("Unsupported media type '%s'; send %s.", tostring(ctype), JSONAPI)
  end
  local body, err = decode(raw)
  if body == nil then
    return 400, "invalid", "Invalid input.", "JSON parse error - " .. tostring(err)
  end
  ctx.body_doc = body
  if type(body) ~= "table" then
    return 400, "invalid", "Invalid input.", "The request body must be a JSON object.", { pointer = "/" }
  end
  local data = body.data
  if type(data) ~= "table" then
    return 400, "invalid", "Invalid input.", "The request body must contain a 'data' object or array.",
      { pointer = "/data" }
  end
  local want = op.body_type
  if want then
    if data[1] ~= nil or next(data) == nil then
      for i, item in ipairs(data) do
        if type(item) ~= "table" or item.type ~= want then
          return 409, "conflict", "Conflict.",
            format("The resource object's type (%s) is not the type of this endpoint (%s).",
              type(item) == "table" and tostring(item.type) or "none", want),
            { pointer = format("/data/%d/type", i - 1) }
        end
      end
    elseif data.type == nil then
      return 400, "invalid", "Invalid input.", "The resource object must have a 'type'.",
        { pointer = "/data/type" }
    elseif data.type ~= want then
      return 409, "conflict", "Conflict.",
        format("The resource object's type (%s) is not the type of this endpoint (%s).",
          tostring(data.type), want), { pointer = "/data/type" }
    end
  end
  return nil
end

local function not_emulated(op_id)
  return jerror(501, "not_implemented", "Not implemented.",
    format("The Klaviyo emulator does not emulate the operation '%s'.", op_id))
end

-- "http://host:port" as the client addressed us, for links (cached per Host).
local base_urls, base_urls_n = {}, 0
local function base_url()
  local host = var.http_host or ("127.0.0.1:" .. var.server_port)
  local b = base_urls[host]
  if not b then
    b = "http://" .. host
    if base_urls_n < 100 then base_urls[host] = b; base_urls_n = base_urls_n + 1 end
  end
  return b
end

local admin -- required lazily (admin.lua requires this module for route())

---------------------------------------------------------------- the pipeline

function M.handle()
  local uri = var.uri
  local method = req_api.get_method()
  if find(uri, "/__emulator/", 1, true) == 1 or find(uri, "/oauth/", 1, true) == 1 then
    admin = admin or require "emulator.admin"
    return admin.handle(uri, method)
  end

  local ctx = { method = method, path = uri, query = var.args, raw_header = req_api.raw_header(),
                connection = var.connection }
  local op_id, allowed, params = M.route(method, uri)
  if not op_id then
    if allowed then
      local list = {}
      for m in pairs(allowed) do list[#list + 1] = m end
      table.sort(list)
      return fail(ctx, 405, "method_not_allowed", "Method not allowed.",
        format('Method "%s" not allowed.', method), nil, { Allow = table.concat(list, ", ") })
    end
    return fail(ctx, 404, "not_found", "Not found.", "Not found: no operation at " .. uri .. ".")
  end
  ctx.operation = op_id
  local op = ops[op_id]

  local rule
  if faults.active then
    rule = faults.pick(op_id)
    if rule then
      -- attribute the exchange to its account (GET requests filters on it)
      local who = authenticate(op, var.args and query_table() or {})
      if who then ctx.account = who.id end
      -- answers a rule alters are not Klaviyo's: the contract check skips them
      if rule.status or rule.reset or rule.truncate then ctx.fault = true end
      if rule.delay_ms and rule.delay_ms > 0 then ngx.sleep(rule.delay_ms / 1000) end
      if rule.reset == "before" then
        ctx.status = 0
        seq = seq + 1
        ctx.seq = seq
        recorder.record(ctx)
        return ngx.exit(444)
      end
      if rule.status then
        local extra = rule.retry_after and { ["Retry-After"] = tostring(rule.retry_after) } or nil
        if rule.body then return finish(ctx, rule.status, rule.body, extra, rule) end
        return fail(ctx, rule.status, "fault_injected", "Injected fault.",
          format("The emulator answered %d because a fault rule asked for it.", rule.status),
          nil, extra, rule)
      end
    end
  end

  local query = var.args and query_table() or {}
  local acct, kind = authenticate(op, query)
  if not acct then
    return fail(ctx, 401, "not_authenticated", "Authentication credentials were not provided.",
      kind, nil, nil, rule)
  end
  ctx.account = acct.id

  if kind ~= "public" then
    local scopes = acct.scopes
    for _, s in ipairs(op.scopes) do
      if not scopes[s] then
        return fail(ctx, 403, "permission_denied", "You do not have permission to perform this action.",
          format("The API key or token is missing the scope '%s' this operation needs.", s),
          nil, nil, rule)
      end
    end
  end

  local rev = var.http_revision
  if not rev or rev == "" then
    return fail(ctx, 400, "invalid", "Invalid input.", "Missing required header 'revision'.",
      { parameter = "revision" }, nil, rule)
  end
  local rev_err = revision_error(rev)
  if rev_err then
    return fail(ctx, 400, "invalid", "Invalid input.", rev_err, { parameter = "revision" }, nil, rule)
  end
  local ok, retry, limit, remaining, reset = ratelimit.check(acct, op_id, op, ngx.now())
  if not ok then
    return fail(ctx, 429, "throttled", "Request was throttled.",
      format("Request was throttled. Expected available in %d seconds.", retry), nil,
      { ["Retry-After"] = tostring(retry) }, rule)
  end
  local body
  if op.body then
    local raw = read_body()
    ctx.request_body = raw
    if not raw or raw == "" then
      if op.body == "required" then
        return fail(ctx, 400, "invalid", "Invalid input.", "A request body is required.",
          { pointer = "/data" }, nil, rule, limit, remaining, reset)
      end
    elseif #raw > MAX_BODY then
      return fail(ctx, 413, "request_too_large", "Request too large.",
        "The request body is larger than the emulator accepts (10 MB).", nil, nil, rule,
        limit, remaining, reset)
    else
      local status, code, title, detail, source = check_body_shape(op, raw, ctx)
      if status then
        return fail(ctx, status, code, title, detail, source, nil, rule, limit, remaining, reset)
      end
      body = ctx.body_doc
      -- the recorder keeps ctx; it needs the text, not the tables
      ctx.body_doc = nil
    end
  end

  local problem = query_check.check_query(op_id, query)
  if problem then
    local detail = problem.detail
    if problem.parameter == "filter" then
      detail = "Invalid filter provided: " .. detail:gsub("^filter: ", "", 1)
    end
    return fail(ctx, 400, "invalid", "Invalid input.", detail, { parameter = problem.parameter },
      nil, rule, limit, remaining, reset)
  end

  local handler = handlers[op_id]
  if not handler then
    local st, doc = not_emulated(op_id)
    return finish(ctx, st, doc, nil, rule, limit, remaining, reset)
  end
  local req = { account = acct, op = op, op_id = op_id, params = params or {}, query = query,
                body = body, body_size = ctx.request_body and #ctx.request_body or 0,
                path = uri, auth_kind = kind,
                base_url = base_url() }
  local okh, status, doc, hdrs = pcall(handler, req)
  if not okh then
    ngx.log(ngx.ERR, "handler ", op_id, " failed: ", tostring(status))
    local st, edoc = jerror(500, "error", "A server error occurred.",
      "The emulator failed handling this request: " .. tostring(status))
    return finish(ctx, st, edoc, nil, rule, limit, remaining, reset)
  end
  return finish(ctx, status, doc, hdrs, rule, limit, remaining, reset)
end

return M
