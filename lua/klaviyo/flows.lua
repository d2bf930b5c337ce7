--- Flows: read, create, switch status, delete, and find what triggers them.
--
--    local flows = client.flows
--    for f, err in flows:each{ status = "live", trigger = "metric" } do print(f.name) end
--    local f = assert(flows:create{ name = "Abandoned cart", trigger = { metric = metric_id },
--                                    status = "live" })
--    assert(flows:set_status(f.id, "manual"))
--
-- A flow's status is `draft`, `manual` or `live`; only live flows start runs. Flows start from
-- a metric (an event), a list, a segment, a date or a price drop.
-- @module klaviyo.flows
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"
local F = require "klaviyo.filter"

local type, error, tostring, ipairs = type, error, tostring, ipairs
local unpack = table.unpack or unpack -- luacheck: ignore

-- The module's functions, and the methods of the object `new(client)` returns.
---@class klaviyo.flows
local _M, mt = R.methods("flows")

local STATUS = V.set({ "draft", "manual", "live" })
local EACH_KEYS = V.set({ "status", "trigger", "name", "filter", "sort", "page_size" })

--- Trigger names accepted by `each{trigger=}` and the `trigger_type` Klaviyo reports.
_M.TRIGGER_TYPES = {
  metric = "Metric", list = "Added to List", date = "Date Based", price_drop = "Price Drop",
  low_inventory = "Low Inventory", unconfigured = "Unconfigured",
}

--- Iterate over flows (`get_flows`).
---@param q table? `status` ("draft" | "manual" | "live"), `trigger` ("metric", "list",
--   "date", "price_drop", "low_inventory", "unconfigured", or Klaviyo's `trigger_type` text),
--   `name` (exact), `filter` (instead of those), `sort`, `page_size` (1..50)
---@return function # iterator of flat flows (`id`, `name`, `status`, `trigger_type`,
--   `archived`, `created`, `updated`, `flow_action_ids`, ...); `false, err` once on failure
function _M:each(q)
  V.self(self, mt, "flows:each")
  q = V.table_arg(q or {}, EACH_KEYS, "flows:each", 1)
  local parts = {}
  if q.status ~= nil then
    if not STATUS[q.status] then
      error("flows:each: status must be \"draft\", \"manual\" or \"live\", got " ..
        tostring(q.status), 2)
    end
    parts[#parts + 1] = F.equals("status", q.status)
  end
  if q.trigger ~= nil then
    V.argcheck(type(q.trigger) == "string", "flows:each", 1, "string trigger", q.trigger)
    parts[#parts + 1] = F.equals("trigger_type", _M.TRIGGER_TYPES[q.trigger] or q.trigger)
  end
  if q.name ~= nil then parts[#parts + 1] = F.equals("name", q.name) end
  local filter = q.filter
  if #parts > 0 then
    if filter then error("flows:each: give filter or status/trigger/name, not both", 2) end
    filter = #parts == 1 and parts[1] or F.and_(unpack(parts))
  end
  return R.flat_iter(self.client:paginate("get_flows", { filter = filter, sort = q.sort,
    ["page[size]"] = q.page_size }))
end

--- Read a flow (`get_flow`), optionally with its actions and their messages.
---@param id string
---@param opts table? `actions` (true: `flow.actions`, flat actions in order),
--   `messages` (true: each action's `messages` too; implies actions), `definition` (true:
--   the flow's definition as `flow.definition`)
---@return table # flat flow, or nil, err
function _M:get(id, opts)
  V.self(self, mt, "flows:get")
  V.id(id, "flows:get", "flow")
  opts = V.table_arg(opts or {}, V.set({ "actions", "messages", "definition" }), "flows:get", 2)
  local want_actions = opts.actions or opts.messages
  local doc, err = self.client:call("get_flow", { id = id,
    include = want_actions and { "flow-actions" } or nil,
    ["additional-fields[flow]"] = opts.definition and { "definition" } or nil })
  if not doc then return nil, err end
  local flow, ferr = R.from_document(doc, "get_flow")
  if not flow then return nil, ferr end
  if want_actions then
    local actions = {}
    for _, inc in ipairs(flow._included or {}) do
      if inc.type == "flow-action" then actions[#actions + 1] = inc end
    end
    flow.actions = actions
    if opts.messages then
      for _, action in ipairs(actions) do
        local msgs = {}
        for m, merr in self.client:paginate("get_flow_action_messages", { id = action.id }) do
          if not m then return nil, merr end
          msgs[#msgs + 1] = R.flatten(m)
        end
        action.messages = msgs
      end
    end
  end
  return flow
end

--- Switch a flow's status (`update_flow`).
---@param id string
---@param status string "draft" | "manual" | "live"
---@return table # the flow (flat), or nil, err
function _M:set_status(id, status)
  V.self(self, mt, "flows:set_status")
  V.id(id, "flows:set_status", "flow")
  if not STATUS[status] then
    error("flows:set_status: status must be \"draft\", \"manual\" or \"live\", got " ..
      tostring(status), 2)
  end
  return R.one("update_flow", self.client:call("update_flow", { id = id, body = { data = {
    type = "flow", id = id, attributes = { status = status } } } }))
end

--- Delete a flow (`delete_flow`).
---@param id string
---@return boolean # true, or nil, err
function _M:delete(id)
  V.self(self, mt, "flows:delete")
  V.id(id, "flows:delete", "flow")
  local ok, err = self.client:call("delete_flow", { id = id })
  if not ok then return nil, err end
  return true
end

local CREATE_KEYS = V.set({ "name", "definition", "trigger", "actions", "entry_action_id",
  "profile_filter", "reentry_criteria", "status" })
local TRIGGER_KEYS = { "metric", "list", "segment" }

--- Create a flow (`create_flow`, 100 a day at Klaviyo) and optionally switch it on.
---@param d table `name`; either `definition` (Klaviyo's flow definition table, sent as is)
--   or `trigger = {metric=id}|{list=id}|{segment=id}` with optional `actions` (array of
--   Klaviyo action definitions), `entry_action_id`, `profile_filter`, `reentry_criteria`;
--   `status` ("manual" or "live": set right after creation; new flows are drafts)
---@return table # the flow (flat), or nil, err (and the created flow if only the status
--   change failed)
function _M:create(d)
  V.self(self, mt, "flows:create")
  V.table_arg(d, CREATE_KEYS, "flows:create", 1)
  if type(d.name) ~= "string" or d.name == "" then
    return nil, V.refuse("create_flow", "a flow needs a name", "/name")
  end
  if d.status ~= nil and not STATUS[d.status] then
    error("flows:create: status must be \"draft\", \"manual\" or \"live\"", 2)
  end
  local kl = require "klaviyo"
  local def = d.definition
  if def == nil then
    local t = d.trigger
    V.argcheck(type(t) == "table", "flows:create", 1, "definition or trigger table", t)
    local trigger
    for _, k in ipairs(TRIGGER_KEYS) do
      if t[k] ~= nil then
        if trigger then error("flows:create: a flow has exactly one trigger", 2) end
        V.argcheck(type(t[k]) == "string" and t[k] ~= "", "flows:create", 1,
          "trigger." .. k .. " id", t[k])
        trigger = { type = k, id = t[k] }
      end
    end
    if not trigger then
      error("flows:create: trigger needs metric=, list= or segment= (an id)", 2)
    end
    def = { triggers = kl.array({ trigger }), actions = kl.array(d.actions or {}),
      entry_action_id = d.entry_action_id or kl.null, profile_filter = d.profile_filter,
      reentry_criteria = d.reentry_criteria }
  elseif d.trigger or d.actions or d.entry_action_id then
    error("flows:create: give definition or trigger/actions, not both", 2)
  end
  local size, msg, ptr = V.value(d.name, nil, "/name")
  if size then size, msg, ptr = V.value(def, nil, "/definition") end
  if not size then return nil, V.refuse("create_flow", msg, ptr) end
  local doc, err = self.client:call("create_flow", { body = { data = {
    type = "flow", attributes = { name = d.name, definition = def } } } })
  if not doc then return nil, err end
  local flow, ferr = R.from_document(doc, "create_flow")
  if not flow then return nil, ferr end
  if d.status and d.status ~= flow.status then
    local updated, uerr = self:set_status(flow.id, d.status)
    if not updated then return nil, uerr, flow end
    flow = updated
  end
  return flow
end

--- Flows started by a metric, a list or a segment
-- (`get_flows_triggered_by_metric|list|segment`).
---@param q table exactly one of `metric`, `list`, `segment` (an id)
---@return table # array of flat flows, or nil, err
function _M:triggered_by(q)
  V.self(self, mt, "flows:triggered_by")
  V.table_arg(q, V.set(TRIGGER_KEYS), "flows:triggered_by", 1)
  local kind
  for _, k in ipairs(TRIGGER_KEYS) do
    if q[k] ~= nil then
      if kind then error("flows:triggered_by: give exactly one of metric, list, segment", 2) end
      kind = k
    end
  end
  if not kind then error("flows:triggered_by: give one of metric, list, segment (an id)", 2) end
  V.argcheck(type(q[kind]) == "string" and q[kind] ~= "", "flows:triggered_by", 1,
    kind .. " id", q[kind])
  local op = "get_flows_triggered_by_" .. kind
  return R.many(op, self.client:call(op, { id = q[kind] }))
end

return _M
