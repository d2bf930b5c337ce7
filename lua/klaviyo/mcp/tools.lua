-- klaviyo.mcp.tools: the MCP server's tools. Each is a small schema over one call of the
-- idiomatic modules (client.events, client.profiles, client.consent, client.lists,
-- client.flows, client.metrics) or client:call; none builds a request itself. A tool is
-- {name, description, inputSchema, annotations, read, destructive, run(client, args)}; run
-- returns a value to show, or nil and the text saying what to change.
local type, pairs, ipairs, tostring, pcall = type, pairs, ipairs, tostring, pcall
local setmetatable, getmetatable = setmetatable, getmetatable
local format, sort = string.format, table.sort

local klaviyo = require "klaviyo"
local operations = require "klaviyo.operations"
local policy = require "klaviyo.policy"
local schema = require "klaviyo.mcp.schema"

local array = klaviyo.array

local _M = {}

-- The text of a failure: the library's error line, or a raised message without the
-- "file:line:" position it carries.
local function why(e)
  if type(e) == "table" then return tostring(e) end
  return (tostring(e):gsub("^[^\n:]+:%d+: ", ""))
end
_M.why = why

-- Runs fn(...) -> value | nil, err; a raised misuse (wrong argument shape) becomes the text.
local function attempt(fn, ...)
  local ok, v, err = pcall(fn, ...)
  if not ok then return nil, why(v) end
  if v == nil then return nil, why(err) end
  return v
end

-- A result as shown to the agent: the library's flat tables without their raw documents.
local function plain(v, depth)
  if type(v) ~= "table" or depth > 40 then return v end
  local out = {}
  for k, x in pairs(v) do
    if k ~= "_raw" then out[k] = plain(x, depth + 1) end
  end
  local m = getmetatable(v)
  if type(m) == "table" then setmetatable(out, m) end
  return out
end
_M.plain = function(v) return plain(v, 0) end

-- Reads: GET operations and the queries (query_*: reports and metric aggregates, POSTs that
-- change nothing).
local function op_reads(id, op) return op.method == "GET" or id:find("^query_") ~= nil end

-- Destructive: deletes, suppressions, unsubscribes, a flow's status change, a campaign's
-- send (messages to its whole audience) and a profile merge (the merged profiles are gone).
local DESTRUCTIVE = {
  bulk_suppress_profiles = true, bulk_unsubscribe_profiles = true,
  request_profile_deletion = true, update_flow = true, send_campaign = true, merge_profiles = true,
}
local function op_destroys(id, op)
  return op.method == "DELETE" or DESTRUCTIVE[id] == true or id:find("^bulk_delete_") ~= nil
end
_M.op_reads, _M.op_destroys = op_reads, op_destroys

local function obj(props, required)
  local s = { type = "object", properties = props, additionalProperties = false }
  if required then s.required = array(required) end
  return s
end

local STR, BOOL, OBJ = { type = "string" }, { type = "boolean" }, { type = "object" }
local CONFIRM = { type = "boolean", description = "must be true: this change is destructive" }
local IDS = { type = "array", items = { type = "string" }, description = "profile ids" }
local IDENT = {
  email = STR, phone_number = { type = "string", description = "E.164, e.g. +15005550006" },
  external_id = STR, id = { type = "string", description = "Klaviyo profile id" },
}
local function with(base, extra)
  local t = {}
  for k, v in pairs(base) do t[k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  return t
end
local PROFILE = with(IDENT, {
  first_name = STR, last_name = STR, organization = STR, title = STR, locale = STR,
  properties = { type = "object", description = "custom profile properties" },
  location = OBJ,
})

-- Collects at most `limit` items of an iterator yielding item or false, err.
local function collect(iter, limit)
  local out = array()
  for item, err in iter do
    if not item then return nil, why(err) end
    out[#out + 1] = item
    if #out >= limit then break end
  end
  return out
end

local list = {}
local function tool(t) list[#list + 1] = t end

tool {
  name = "track_event", read = false, destructive = false, idempotent = true,
  description = "Record an event (e.g. Placed Order) for a profile; it can trigger flows. The " ..
    "result's unique_id identifies the event: repeat a call with the same unique_id and Klaviyo " ..
    "records it, and fires its flows, once.",
  inputSchema = obj({
    metric = { type = "string", description = "metric name, e.g. Placed Order" },
    profile = obj(PROFILE),
    properties = OBJ, value = { type = "number" }, value_currency = STR,
    time = { type = { "string", "integer" }, description = "ISO 8601 or epoch seconds" },
    unique_id = { type = "string", description = "repeat it to resend the same event" },
  }, { "metric", "profile" }),
  run = function(c, a)
    local ev = {}
    for k, v in pairs(a) do ev[k] = v end
    local ok, uid, err, uid2 = pcall(c.events.create, c.events, ev)
    if not ok then return nil, why(uid) end
    if uid == nil then
      return nil, why(err) .. (uid2 and format(" (unique_id %s: resend with it)", uid2) or "")
    end
    return { unique_id = uid, recorded = true }
  end,
}

tool {
  name = "get_profile", read = true,
  description = "Find one profile by email, phone_number (E.164), external_id or id.",
  inputSchema = obj(with(IDENT, { subscriptions = { type = "boolean",
    description = "include consent state" } })),
  run = function(c, a)
    local q = {}
    for k in pairs(IDENT) do q[k] = a[k] end
    return attempt(c.profiles.get, c.profiles, q, { subscriptions = a.subscriptions })
  end,
}

tool {
  name = "upsert_profile", read = false, destructive = false, idempotent = true,
  description = "Create a profile or update the one with the same identifier " ..
    "(email, phone_number, external_id); fields left out are kept.",
  inputSchema = obj(PROFILE),
  run = function(c, a)
    local ok, p, created = pcall(c.profiles.upsert, c.profiles, a)
    if not ok then return nil, why(p) end
    if p == nil then return nil, why(created) end
    return { profile = p, created = created }
  end,
}

local OPT_IN = obj({
  consented_at = { type = { "string", "integer" }, description = "when: ISO 8601 or epoch seconds" },
  source = { type = "string", description = "how, e.g. checkout checkbox" },
  historical = { type = "boolean", description = "true for consent captured over a day ago" },
  transactional = BOOL,
})

tool {
  name = "subscribe", read = false, destructive = false, idempotent = true,
  description = "Subscribe an email address to email marketing and/or a phone number to SMS. " ..
    "SMS needs sms_consent: the opt-in record (when and how consent was given).",
  inputSchema = obj({
    email = STR, phone_number = IDENT.phone_number,
    list_id = { type = "string", description = "also join this list" },
    email_consent = { type = { "boolean", "object" } }, sms_consent = OPT_IN,
  }),
  run = function(c, a)
    local s = { email = a.email, phone_number = a.phone_number, list = a.list_id,
                email_consent = a.email_consent, sms_consent = a.sms_consent }
    local v, err = attempt(c.consent.subscribe, c.consent, s)
    if v == nil then return nil, err end
    return { subscribed = true }
  end,
}

tool {
  name = "unsubscribe", read = false, destructive = true, idempotent = true,
  description = "Unsubscribe an email address and/or phone number from marketing.",
  inputSchema = obj({ email = STR, phone_number = IDENT.phone_number, list_id = STR, confirm = CONFIRM }),
  run = function(c, a)
    local v, err = attempt(c.consent.unsubscribe, c.consent,
      { email = a.email, phone_number = a.phone_number, list = a.list_id })
    if v == nil then return nil, err end
    return { unsubscribed = true }
  end,
}

tool {
  name = "add_to_list", read = false, destructive = false, idempotent = true,
  description = "Add profiles (by id) to a list. This does not subscribe them: use subscribe.",
  inputSchema = obj({ list_id = STR, profile_ids = IDS }, { "list_id", "profile_ids" }),
  run = function(c, a)
    local n, err = attempt(c.lists.add, c.lists, a.list_id, a.profile_ids)
    if n == nil then return nil, err end
    return { added = n }
  end,
}

tool {
  name = "remove_from_list", read = false, destructive = true, idempotent = true,
  description = "Remove profiles (by id) from a list.",
  inputSchema = obj({ list_id = STR, profile_ids = IDS, confirm = CONFIRM }, { "list_id", "profile_ids" }),
  run = function(c, a)
    local n, err = attempt(c.lists.remove, c.lists, a.list_id, a.profile_ids)
    if n == nil then return nil, err end
    return { removed = n }
  end,
}

tool {
  name = "list_flows", read = true,
  description = "List flows, optionally by status, trigger or exact name.",
  inputSchema = obj({
    status = { type = "string", enum = { "draft", "manual", "live" } },
    trigger = { type = "string", description = "metric, list, date, price_drop, ..." },
    name = STR, limit = { type = "integer", minimum = 1, maximum = 500, description = "default 50" },
  }),
  run = function(c, a)
    local ok, iter = pcall(c.flows.each, c.flows, { status = a.status, trigger = a.trigger, name = a.name })
    if not ok then return nil, why(iter) end
    local flows, err = collect(iter, a.limit or 50)
    if flows == nil then return nil, err end
    return { flows = flows }
  end,
}

tool {
  name = "get_flow", read = true,
  description = "Read one flow; actions and definition on request.",
  inputSchema = obj({ id = STR, actions = BOOL, definition = BOOL }, { "id" }),
  run = function(c, a)
    return attempt(c.flows.get, c.flows, a.id, { actions = a.actions, definition = a.definition })
  end,
}

tool {
  name = "set_flow_status", read = false, destructive = true, idempotent = true,
  description = "Set a flow's status: draft, manual or live (only live flows send).",
  inputSchema = obj({ id = STR, status = { type = "string", enum = { "draft", "manual", "live" } },
                      confirm = CONFIRM }, { "id", "status" }),
  run = function(c, a) return attempt(c.flows.set_status, c.flows, a.id, a.status) end,
}

tool {
  name = "find_metric", read = true,
  description = "Find a metric by its exact name, e.g. Placed Order.",
  inputSchema = obj({ name = STR }, { "name" }),
  run = function(c, a) return attempt(c.metrics.find, c.metrics, a.name) end,
}

tool {
  name = "flow_report", read = true,
  description = "A flow performance report (Klaviyo's query_flow_values).",
  inputSchema = obj({
    conversion_metric_id = { type = "string", description = "e.g. the Placed Order metric's id" },
    flow_id = { type = "string", description = "only this flow" },
    statistics = { type = "array", items = STR, description = "default opens, clicks, conversions" },
    timeframe = { type = "string", description = "a timeframe key, default last_30_days" },
  }, { "conversion_metric_id" }),
  run = function(c, a)
    local attrs = {
      statistics = array(a.statistics or { "opens", "clicks", "conversions" }),
      timeframe = { key = a.timeframe or "last_30_days" },
      conversion_metric_id = a.conversion_metric_id,
    }
    if a.flow_id then attrs.filter = tostring(klaviyo.filter.equals("flow_id", a.flow_id)) end
    return attempt(c.call, c, "query_flow_values",
      { body = { data = { type = "flow-values-report", attributes = attrs } } })
  end,
}

-- What describe_operation tells about an operation (facts of the operation table).
local function describe(id)
  local op = operations[id]
  local body_safe = policy.safe(id, op.method, id == "create_event" or id == "bulk_create_events")
  return {
    operation = id, method = op.method, path = op.path, tag = op.tag, scopes = op.scopes,
    rate_limits = op.limits, body = op.body or false, body_type = op.body_type,
    params = schema.operation(id), safe_to_repeat = body_safe,
    reads = op_reads(id, op), destructive = op_destroys(id, op), pre_release = op.pre_release,
  }
end

local OP_NAME = { type = "string", description = "operation id, e.g. get_profiles" }

local function unknown_op(id)
  return format("unknown operation %s: describe_operation with a word of it lists the matches",
    tostring(id))
end

tool {
  name = "describe_operation", read = true, local_only = true,
  description = "Describe a Klaviyo API operation (method, path, parameters as JSON Schema, " ..
    "body type, scopes, rate limits, safe to repeat). With `search`, list the operation ids " ..
    "containing that word.",
  inputSchema = obj({ operation = OP_NAME, search = STR }),
  run = function(_, a)
    if a.operation then
      if operations[a.operation] == nil then return nil, unknown_op(a.operation) end
      return describe(a.operation)
    end
    local word, found = (a.search or ""):lower(), array()
    for id in pairs(operations) do
      if id:find(word, 1, true) then found[#found + 1] = id end
    end
    sort(found)
    return { operations = found }
  end,
}

tool {
  name = "call_operation", read = false, destructive = true, any_operation = true,
  description = "Call any Klaviyo API operation by id with its params (path, query and header " ..
    "parameters by name, body as the JSON:API document); describe_operation gives the params' " ..
    "schema. Destructive operations need confirm: true.",
  inputSchema = obj({ operation = OP_NAME, params = OBJ, confirm = CONFIRM }, { "operation" }),
  run = function(c, a)
    local ok, doc, res = pcall(c.call, c, a.operation, a.params or {})
    if not ok then return nil, why(doc) end
    if doc == nil then return nil, why(res) end
    return { status = res and res.status, document = doc }
  end,
}

-- The operation a call_operation names, checked: op or nil, text.
function _M.operation_of(a)
  local op = operations[a.operation]
  if op == nil then return nil, unknown_op(a.operation) end
  local msg = schema.check(schema.operation(a.operation), a.params or {})
  if msg then return nil, format("%s: params%s", a.operation, msg) end
  return op
end

for _, t in ipairs(list) do
  t.annotations = {
    readOnlyHint = t.read == true, destructiveHint = t.destructive == true,
    idempotentHint = t.read == true or t.idempotent == true,
    openWorldHint = not t.local_only,
  }
end

_M.list = list
_M.by_name = {}
for _, t in ipairs(list) do _M.by_name[t.name] = t end

return _M
