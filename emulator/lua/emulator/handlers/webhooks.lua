-- System webhooks: create_webhook, get_webhooks, get_webhook, update_webhook,
-- delete_webhook, get_webhook_topics, get_webhook_topic; and their deliveries.
--
-- Topics are "event:klaviyo.<metric>" (the metric name in snake case), one for each metric
-- the account has plus Klaviyo's own message metrics. When an event is recorded (events.lua
-- calls on_event) every enabled webhook subscribed to its topic gets it: events recorded in
-- the same turn of the worker go out together in one POST from a timer, as Klaviyo sends
-- them: {"data": [{topic, external_id, payload}], "meta": {...}} with Klaviyo-Webhook-Id,
-- Klaviyo-Timestamp (IMF-fixdate, taken at each attempt) and Klaviyo-Signature (hex
-- HMAC-SHA256 of the body bytes followed by the timestamp text, keyed by the secret). An
-- answer other than 2xx, or none, is retried (RETRY_DELAYS); each delivery and its attempts
-- are kept for the admin API (`GET /__emulator/webhook-deliveries`). The emulator delivers
-- to loopback endpoints only (http, or https without certificate checks); others are
-- recorded as "skipped".
local ffi = require "ffi"
local state = require "emulator.state"
local jsonapi = require "emulator.jsonapi"

local ngx = ngx
local ipairs, type, tostring, tonumber = ipairs, type, tostring, tonumber
local format, byte, concat = string.format, string.byte, table.concat

local M = {}

-- Seconds between attempts: the first try, then one retry per entry.
M.RETRY_DELAYS = { 0.5, 1, 2 }
local MAX_EVENTS_PER_DELIVERY = 100
local MAX_DELIVERIES_KEPT = 1000

-- HMAC-SHA256 from the libcrypto nginx is linked with (a signer independent of the client's C core).
pcall(ffi.cdef, [[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d,
                    size_t n, unsigned char *md, unsigned int *md_len);
]])

local function hmac_hex(key, data)
  local out, len = ffi.new("unsigned char[32]"), ffi.new("unsigned int[1]")
  assert(ffi.C.HMAC(ffi.C.EVP_sha256(), key, #key, data, #data, out, len) ~= nil, "HMAC failed")
  local hex = {}
  for i = 0, 31 do hex[i + 1] = format("%02x", out[i]) end
  return concat(hex)
end
M.hmac_hex = hmac_hex

---------------------------------------------------------------- topics

local KLAVIYO_TOPICS = {
  "event:klaviyo.bounced_email", "event:klaviyo.clicked_email", "event:klaviyo.clicked_sms",
  "event:klaviyo.dropped_email", "event:klaviyo.failed_to_deliver_sms", "event:klaviyo.marked_email_as_spam",
  "event:klaviyo.opened_email", "event:klaviyo.received_email", "event:klaviyo.received_sms",
  "event:klaviyo.sent_sms", "event:klaviyo.subscribed_to_email", "event:klaviyo.subscribed_to_sms",
  "event:klaviyo.unsubscribed_from_email", "event:klaviyo.unsubscribed_from_sms",
}

--- The topic of events of the metric named `name`: "Placed Order" -> "event:klaviyo.placed_order".
function M.topic_for(name)
  local s = tostring(name):lower():gsub("[^%w]+", "_"):gsub("^_+", ""):gsub("_+$", "")
  return "event:klaviyo." .. s
end

local function topics(acct)
  local set, list = {}, {}
  local function add(t) if not set[t] then set[t] = true; list[#list + 1] = t end end
  for _, t in ipairs(KLAVIYO_TOPICS) do add(t) end
  for _, id in ipairs(acct.metric_order or {}) do
    local m = acct.metrics[id]
    if m then add(M.topic_for(m.name)) end
  end
  table.sort(list)
  return list, set
end

local function topic_resource(req, t)
  return jsonapi.resource("webhook-topic", t, nil, nil, req.base_url .. "/api/webhook-topics/" .. t)
end

local function bare_topic(req, t)
  local r = topic_resource(req, t)
  r.attributes = nil
  return r
end

M.get_webhook_topics = function(req)
  local _, st, doc = jsonapi.fields(req, "webhook-topic")
  if _ == nil then return st, doc end
  local list = topics(req.account)
  local data = {}
  for i, t in ipairs(list) do data[i] = bare_topic(req, t) end
  return 200, { data = jsonapi.array(data), links = { self = req.base_url .. req.path } }
end

M.get_webhook_topic = function(req)
  local _, set = topics(req.account)
  local id = req.params.id
  local found, st, doc = jsonapi.lookup(set, id, "Webhook topic")
  if not found then return st, doc end
  return jsonapi.single(req, bare_topic(req, id))
end

---------------------------------------------------------------- webhooks as resources

local function store(acct)
  local s = acct.webhooks
  if not s then
    s = { by_id = {}, order = {}, deliveries = {}, by_topic = {} }
    acct.webhooks = s
  end
  return s
end

-- The endpoint as Klaviyo shows it: scheme and host only ("truncated for security").
local function truncated(url)
  return url:match("^(https?://[^/?#]+)") or url
end

local function resource(req, wh, fields, with_topics)
  local a = { name = wh.name, description = wh.description == nil and jsonapi.null or wh.description,
              endpoint_url = truncated(wh.endpoint_url), enabled = wh.enabled,
              created_at = state.iso(wh.created), updated_at = state.iso(wh.updated) }
  local base = req.base_url .. "/api/webhooks/" .. wh.id
  local rel = { ["webhook-topics"] = { links = { self = base .. "/relationships/webhook-topics",
                                                 related = base .. "/webhook-topics" } } }
  if with_topics then
    local d = {}
    for i, t in ipairs(wh.topics) do d[i] = { type = "webhook-topic", id = t } end
    rel["webhook-topics"].data = jsonapi.array(d)
  end
  return jsonapi.resource("webhook", wh.id, jsonapi.sparse(a, fields), rel, base)
end

local function include_topics(req)
  local inc = req.query.include
  if inc == nil then return false end
  for _, v in ipairs(jsonapi.split(inc)) do
    if v ~= "webhook-topics" then
      return nil, jsonapi.invalid(format("'%s' is not a valid include for webhooks.", v),
        { parameter = "include" })
    end
  end
  return true
end

local function included(req, whs)
  local seen, out = {}, {}
  for _, wh in ipairs(whs) do
    for _, t in ipairs(wh.topics) do
      if not seen[t] then seen[t] = true; out[#out + 1] = bare_topic(req, t) end
    end
  end
  return jsonapi.array(out)
end

local function loopback_host(host)
  return host == "localhost" or host == "[::1]" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- {scheme, host, port, path} of an endpoint URL, or nil, why.
local function parse_url(url)
  -- no spaces or control characters: the path goes into the request line as it is
  local scheme, host, port, path = url:match("^(https?)://([%w%.%-]+)(:?%d*)(/?[^#%s%c]*)$")
  if not scheme then
    scheme, host, port, path = url:match("^(https?)://(%[::1%])(:?%d*)(/?[^#%s%c]*)$")
  end
  if not scheme then return nil end
  port = port ~= "" and tonumber(port:sub(2)) or (scheme == "https" and 443 or 80)
  if not port or port < 1 or port > 65535 then return nil end
  if path == "" then path = "/" end
  if byte(path, 1) ~= 47 then return nil end
  return { scheme = scheme, host = host, port = port, path = path }
end

-- Checks attributes and topics of a create (all required) or update (each optional).
-- Returns nil or an error status, doc.
local function check(acct, attrs, rels, creating)
  local P = "/data/attributes/"
  local function str(name, required, min)
    local v = attrs[name]
    if v == nil or v == jsonapi.null then
      if required then return jsonapi.invalid(format("'%s' is required.", name), { pointer = P .. name }) end
      return nil
    end
    if type(v) ~= "string" or #v < (min or 1) then
      return jsonapi.invalid(format("'%s' must be a string of at least %d characters.", name, min or 1),
        { pointer = P .. name })
    end
  end
  local st, doc = str("name", creating)
  if st then return st, doc end
  st, doc = str("secret_key", creating, 16)
  if st then return st, doc end
  st, doc = str("endpoint_url", creating)
  if st then return st, doc end
  local desc = attrs.description
  if desc ~= nil and desc ~= jsonapi.null and type(desc) ~= "string" then
    return jsonapi.invalid("'description' must be a string.", { pointer = P .. "description" })
  end
  if attrs.enabled ~= nil and attrs.enabled ~= jsonapi.null and type(attrs.enabled) ~= "boolean" then
    return jsonapi.invalid("'enabled' must be a boolean.", { pointer = P .. "enabled" })
  end
  local url = attrs.endpoint_url
  if type(url) == "string" then
    local u = parse_url(url)
    if not u or (u.scheme ~= "https" and not loopback_host(u.host)) then
      return jsonapi.invalid(
        "'endpoint_url' must be an https URL (the emulator also takes http on loopback).",
        { pointer = P .. "endpoint_url" })
    end
  end
  local t = rels and rels["webhook-topics"]
  if t == nil then
    if creating then
      return jsonapi.invalid("'webhook-topics' is required.",
        { pointer = "/data/relationships/webhook-topics" })
    end
    return nil
  end
  if type(t) ~= "table" or type(t.data) ~= "table" or (t.data[1] == nil and next(t.data) ~= nil) then
    return jsonapi.invalid("'webhook-topics' must hold a data array.",
      { pointer = "/data/relationships/webhook-topics/data" })
  end
  local _, known = topics(acct)
  for i, item in ipairs(t.data) do
    local ptr = format("/data/relationships/webhook-topics/data/%d", i - 1)
    if type(item) ~= "table" or item.type ~= "webhook-topic" or type(item.id) ~= "string" then
      return jsonapi.invalid("Each topic must be {\"type\": \"webhook-topic\", \"id\": ...}.",
        { pointer = ptr })
    end
    if not known[item.id] then
      return jsonapi.invalid(format("'%s' is not a webhook topic of this account.", item.id),
        { pointer = ptr .. "/id" })
    end
  end
  return nil
end

local function index_topics(s)
  local by = {}
  for _, id in ipairs(s.order) do
    local wh = s.by_id[id]
    for _, t in ipairs(wh.topics) do
      by[t] = by[t] or {}
      by[t][#by[t] + 1] = wh
    end
  end
  s.by_topic = by
end

local function topic_ids(rels)
  local out, seen = {}, {}
  for _, item in ipairs(rels["webhook-topics"].data) do
    if not seen[item.id] then seen[item.id] = true; out[#out + 1] = item.id end
  end
  return out
end

M.create_webhook = function(req)
  local data = req.body.data
  local attrs = jsonapi.attributes(data)
  local rels = type(data.relationships) == "table" and data.relationships or nil
  local fields, fst, fdoc = jsonapi.fields(req, "webhook")
  if fields == nil then return fst, fdoc end
  local st, doc = check(req.account, attrs, rels, true)
  if st then return st, doc end
  local s = store(req.account)
  local now = state.now()
  local wh = { id = state.new_id(), name = attrs.name, endpoint_url = attrs.endpoint_url,
               secret = attrs.secret_key, enabled = true, created = now, updated = now,
               topics = topic_ids(rels), base_url = req.base_url, pending = {} }
  if type(attrs.description) == "string" then wh.description = attrs.description end
  s.by_id[wh.id] = wh
  s.order[#s.order + 1] = wh.id
  index_topics(s)
  return 201, { data = resource(req, wh, fields, true),
                links = { self = req.base_url .. "/api/webhooks/" .. wh.id } }
end

M.get_webhooks = function(req)
  local fields, st, doc = jsonapi.fields(req, "webhook")
  if fields == nil then return st, doc end
  local inc, ierr, idoc = include_topics(req)
  if inc == nil then return ierr, idoc end
  local s = store(req.account)
  local whs = {}
  for _, id in ipairs(s.order) do whs[#whs + 1] = s.by_id[id] end
  local data = {}
  for i, wh in ipairs(whs) do data[i] = resource(req, wh, fields, inc) end
  local out = { data = jsonapi.array(data), links = { self = req.base_url .. req.path } }
  if inc then out.included = included(req, whs) end
  return 200, out
end

M.get_webhook = function(req)
  return jsonapi.get_one(req, store(req.account).by_id, "Webhook", "webhook", function(wh, fields)
    local inc, st, doc = include_topics(req)
    if inc == nil then return nil, st, doc end
    return resource(req, wh, fields, inc), inc and included(req, { wh }) or nil
  end)
end

M.update_webhook = function(req)
  local s = store(req.account)
  local wh, st, doc = jsonapi.lookup_update(req, s.by_id, "Webhook")
  if not wh then return st, doc end
  local data = req.body.data
  local fields = jsonapi.fields(req, "webhook")
  local attrs = jsonapi.attributes(data)
  local rels = type(data.relationships) == "table" and data.relationships or nil
  st, doc = check(req.account, attrs, rels, false)
  if st then return st, doc end
  local function set(k, field)
    local v = attrs[k]
    if v ~= nil and v ~= jsonapi.null then wh[field or k] = v end
  end
  set("name"); set("endpoint_url"); set("secret_key", "secret"); set("enabled")
  if attrs.description == jsonapi.null then wh.description = nil else set("description") end
  if rels and rels["webhook-topics"] then wh.topics = topic_ids(rels) end
  wh.updated = state.now()
  index_topics(s)
  return jsonapi.single(req, resource(req, wh, fields, true))
end

M.delete_webhook = function(req)
  local s = store(req.account)
  local id = req.params.id
  local wh, st, doc = jsonapi.lookup(s.by_id, id, "Webhook")
  if not wh then return st, doc end
  wh.deleted = true
  s.by_id[id] = nil
  for i, v in ipairs(s.order) do
    if v == id then table.remove(s.order, i) break end
  end
  index_topics(s)
  return 204, nil
end

---------------------------------------------------------------- deliveries

-- One HTTP POST over a cosocket: status code, or nil, error text.
local function post(u, headers, body)
  local sock = ngx.socket.tcp()
  sock:settimeouts(2000, 5000, 5000)
  local host = u.host == "[::1]" and "[::1]" or u.host
  local ok, err = sock:connect(host == "localhost" and "127.0.0.1" or host, u.port)
  if not ok then return nil, "connect: " .. tostring(err) end
  if u.scheme == "https" then
    ok, err = sock:sslhandshake(nil, u.host, false)
    if not ok then sock:close() return nil, "tls: " .. tostring(err) end
  end
  local lines = { "POST " .. u.path .. " HTTP/1.1", "Host: " .. u.host .. ":" .. u.port,
                  "User-Agent: Klaviyo-Webhooks (emulator)", "Content-Type: application/json",
                  "Content-Length: " .. #body, "Connection: close" }
  for _, h in ipairs(headers) do lines[#lines + 1] = h[1] .. ": " .. h[2] end
  ok, err = sock:send(concat(lines, "\r\n") .. "\r\n\r\n" .. body)
  if not ok then sock:close() return nil, "send: " .. tostring(err) end
  local line
  line, err = sock:receive("*l")
  sock:close()
  if not line then return nil, "receive: " .. tostring(err) end
  local status = tonumber(line:match("^HTTP/1%.[01] (%d%d%d)"))
  if not status then return nil, "not an HTTP answer" end
  return status
end

local attempt -- forward

local function schedule(delay, d, wh)
  local ok, err = ngx.timer.at(delay, attempt, d, wh)
  if not ok then
    d.outcome = "failed"
    d.attempts[#d.attempts + 1] = { error = "timer: " .. tostring(err), at = state.iso() }
  end
end

attempt = function(premature, d, wh)
  if premature then d.outcome = "failed" return end
  local u = parse_url(wh.endpoint_url)
  if not u or not loopback_host(u.host) then
    d.outcome = "skipped"
    d.attempts[#d.attempts + 1] = { error = "the emulator delivers to loopback endpoints only",
                                    at = state.iso() }
    return
  end
  local ts = ngx.http_time(ngx.time())
  local sig = hmac_hex(wh.secret, d.body .. ts)
  d.headers = { ["Klaviyo-Webhook-Id"] = wh.id, ["Klaviyo-Timestamp"] = ts, ["Klaviyo-Signature"] = sig }
  local status, err = post(u, { { "Klaviyo-Webhook-Id", wh.id }, { "Klaviyo-Timestamp", ts },
                                { "Klaviyo-Signature", sig } }, d.body)
  d.attempts[#d.attempts + 1] = { status = status, error = err, at = state.iso(), timestamp = ts }
  if status and status >= 200 and status < 300 then d.outcome = "delivered" return end
  local n = #d.attempts
  if n > #M.RETRY_DELAYS then d.outcome = "failed" return end
  schedule(M.RETRY_DELAYS[n], d, wh)
end

-- Sends what a webhook has pending, MAX_EVENTS_PER_DELIVERY events per POST.
local function flush(premature, acct, wh)
  wh.flush_scheduled = false
  local pending = wh.pending
  wh.pending = {}
  if premature or wh.deleted then return end
  local s = store(acct)
  local i = 1
  while i <= #pending do
    local items = {}
    for j = i, math.min(#pending, i + MAX_EVENTS_PER_DELIVERY - 1) do items[#items + 1] = pending[j] end
    i = i + #items
    local meta = { klaviyo_account_id = acct.id, klaviyo_webhook_id = wh.id, timestamp = state.iso() }
    local body = jsonapi.encode({ data = items, meta = meta })
    local ids = {}
    for k, it in ipairs(items) do ids[k] = it.external_id end
    local d = { id = state.new_id(), account = acct.id, webhook_id = wh.id, endpoint_url = wh.endpoint_url,
                event_ids = ids, body = body, attempts = {}, outcome = "pending", created = state.iso() }
    local list = s.deliveries
    list[#list + 1] = d
    if #list > MAX_DELIVERIES_KEPT then table.remove(list, 1) end
    attempt(false, d, wh)
  end
end

--- Called by the events handler after an event is recorded (never for a duplicate).
function M.on_event(acct, ev, metric, resource_of)
  local s = acct.webhooks
  if not s or not next(s.by_topic) then return end
  local subs = s.by_topic[M.topic_for(metric.name)]
  if not subs then return end
  for _, wh in ipairs(subs) do
    if wh.enabled then
      local item = { topic = M.topic_for(metric.name), external_id = ev.id,
                     payload = resource_of({ base_url = wh.base_url }, ev) }
      wh.pending[#wh.pending + 1] = item
      if not wh.flush_scheduled then
        wh.flush_scheduled = true
        local ok = ngx.timer.at(0, flush, acct, wh)
        if not ok then wh.flush_scheduled = false end
      end
    end
  end
end

--- Deliveries (newest last) of one account or of all: for the admin API.
function M.deliveries(accts)
  local out = {}
  for _, acct in ipairs(accts) do
    for _, d in ipairs(acct.webhooks and acct.webhooks.deliveries or {}) do
      out[#out + 1] = { id = d.id, account = d.account, webhook_id = d.webhook_id,
                        endpoint_url = d.endpoint_url,
                        event_ids = d.event_ids, body = d.body, headers = d.headers, outcome = d.outcome,
                        attempts = jsonapi.array(d.attempts), created = d.created }
    end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

return M
