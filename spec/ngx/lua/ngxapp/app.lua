-- The test bed's application, run inside nginx (LuaJIT, cosockets): it uses lua-klaviyo the
-- way an OpenResty app would, and reports what happened as JSON so busted specs (outside
-- nginx) can check it against the emulator's records.
--   POST /call       {client = {klaviyo.new options}, calls = {{op, params}, ...}}
--                    -> {results = {{doc=, status=, ratelimit=} | {err = {...}}}, transport=}
--                    or {new_err = {...}} or {raised = "message"}
--   POST /paginate   {client, op, params, max} -> {items = {ids}, pages =, err =}
--   POST /configure  {client options} for /event (stored in the shared dict: every worker)
--   GET  /event?n=   sends one create_event with the configured client -> 202/4xx/5xx
--   GET  /ping       answers at once (the bench's "other location")
--   GET  /limiter?key=   the shared limiter's state of one key
-- luacheck: globals ngx
local ngx = ngx
local cjson = require("cjson.safe").new()
local klaviyo = require "klaviyo"

local _M = {}

local function reply(status, t)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function body_json()
  ngx.req.read_body()
  local raw = ngx.req.get_body_data()
  if not raw then return nil, "no body" end
  return cjson.decode(raw)
end

-- An error table as plain JSON-able fields, with its one-line text.
local function plain_err(err)
  if type(err) ~= "table" then return { text = tostring(err) } end
  local out = {}
  for _, k in ipairs({ "kind", "status", "code", "title", "detail", "pointer", "parameter",
                       "retry_after", "operation", "request_id", "sent", "message" }) do
    out[k] = err[k]
  end
  out.text = tostring(err)
  return out
end
_M.plain_err = plain_err

local function new_client(opts)
  return klaviyo.new(opts)
end

function _M.call()
  local input, jerr = body_json()
  if not input then return reply(400, { raised = "bad input: " .. tostring(jerr) }) end
  local out = {}
  local ok, e = pcall(function()
    local client, err = new_client(input.client or {})
    if not client then out.new_err = plain_err(err); return end
    out.transport = client.transport and "ngx" or "curl"
    out.results = {}
    for i, c in ipairs(input.calls or {}) do
      local doc, res = client:call(c[1], c[2] or {})
      if doc then
        out.results[i] = { doc = doc, status = res.status, ratelimit = res.ratelimit,
                           headers = res.headers }
      else
        out.results[i] = { err = plain_err(res) }
      end
    end
    client:close()
  end)
  if not ok then out.raised = tostring(e) end
  reply(200, out)
end

function _M.paginate()
  local input = assert(body_json())
  local out = { items = {}, pages = 0 }
  local ok, e = pcall(function()
    local client = assert(new_client(input.client))
    for item, err in client:paginate(input.op, input.params or {}) do
      if not item then out.err = plain_err(err); break end
      out.items[#out.items + 1] = item.id
      if input.max and #out.items >= input.max then break end
    end
    for page, err in client:pages(input.op, input.params or {}) do
      if not page then out.pages_err = plain_err(err); break end
      out.pages = out.pages + 1
    end
  end)
  if not ok then out.raised = tostring(e) end
  reply(200, out)
end

-- /event's client: one per worker, rebuilt when /configure changes the options.
local configured, client_version

function _M.configure()
  local raw
  ngx.req.read_body()
  raw = ngx.req.get_body_data() or "{}"
  local opts = cjson.decode(raw)
  if type(opts) ~= "table" then return reply(400, { raised = "expected a JSON object" }) end
  local ok, e = pcall(klaviyo.new, opts)   -- check it here, once, with a clear answer
  if not ok or not e then return reply(400, { raised = tostring(e) }) end
  local dict = ngx.shared.ngxapp
  dict:set("config", raw)
  dict:incr("config_version", 1, 0)
  reply(200, { ok = true })
end

local function event_client()
  local dict = ngx.shared.ngxapp
  local v = dict:get("config_version")
  if not v then return nil, "not configured: POST /configure first" end
  if v ~= client_version then
    configured = assert(klaviyo.new(cjson.decode(dict:get("config"))))
    client_version = v
  end
  return configured
end
_M.event_client = event_client

function _M.event()
  local client, cerr = event_client()
  if not client then return reply(500, { raised = cerr }) end
  local n = ngx.var.arg_n or "0"
  local ok, res = client:call("create_event", { body = { data = { type = "event", attributes = {
    metric = { data = { type = "metric", attributes = { name = "Bench Event" } } },
    profile = { data = { type = "profile", attributes = { email = "bench" .. n .. "@example.com" } } },
    properties = { n = tonumber(n) },
    unique_id = ngx.var.arg_uid,
  } } } })
  if ok then return reply(202, { ok = true, worker = ngx.worker.pid() }) end
  reply(res.status or 502, { err = plain_err(res) })
end

-- GET /limiter?key=K: what the shared limiter holds for key K ("<account>/<operation>"):
-- {blocked = us, head = n, cap_left = n, cap_until = us (each absent when unset), now = us}.
function _M.limiter()
  local dict, key = ngx.shared.klaviyo_limits, ngx.var.arg_key or ""
  ngx.update_time()
  reply(200, { blocked = dict:get(key .. "#blocked"), head = dict:get(key .. "#head"),
               cap_left = dict:get(key .. "#cap_left"), cap_until = dict:get(key .. "#cap_until"),
               now = math.floor(ngx.now() * 1e6) })
end

-- /chunked/<api path>: the emulator's answer (through the internal /emu/ proxy) sent back in
-- three flushed pieces with no Content-Length, i.e. Transfer-Encoding: chunked, so the
-- transport's chunked reader meets real Klaviyo semantics.
local SKIP = { ["content-length"] = true, connection = true, ["transfer-encoding"] = true,
               ["keep-alive"] = true }
function _M.chunked()
  ngx.req.read_body()
  local res = ngx.location.capture((ngx.var.uri:gsub("^/chunked", "/emu")), {
    method = ngx["HTTP_" .. ngx.req.get_method()], body = ngx.req.get_body_data(),
    args = ngx.var.args })
  ngx.status = res.status
  for k, v in pairs(res.header) do
    if not SKIP[k:lower()] then ngx.header[k] = v end
  end
  local body = res.body or ""
  local third = math.floor(#body / 3)
  for _, piece in ipairs({ body:sub(1, third), body:sub(third + 1, 2 * third), body:sub(2 * third + 1) }) do
    if piece ~= "" then
      ngx.print(piece)
      ngx.flush(true)
    end
  end
end

return _M
