-- Flows: create from a definition (one trigger: a metric, list or segment the account has,
-- or a date/price/inventory trigger that the emulator keeps but never fires), read,
-- filter, change status (draft | manual | live), delete, and the flows a metric triggers.
-- New flows are drafts: only a live flow starts runs (see flowrunner).
local cjson = require("cjson.safe")
local state = require("emulator.state")
local jsonapi = require("emulator.jsonapi")
local collection = require("emulator.collection")
local flowrunner = require("emulator.flowrunner")
local conditions = require("emulator.conditions")

local null = cjson.null
local type, ipairs, pairs, format, tostring = type, ipairs, pairs, string.format, tostring

local STATUSES = {draft = true, manual = true, live = true}
local ACTION_TYPES = {}
for _, t in ipairs({"action-output-split", "back-in-stock-delay", "conditional-split",
  "content-experiment", "send-email", "send-mobile-push", "send-sms", "send-webhook",
  "send-internal-alert", "send-whatsapp", "time-delay", "trigger-split", "update-profile",
  "target-date", "countdown-delay", "ab-test", "internal-service", "code", "multi-branch-split",
  "list-update"}) do
  ACTION_TYPES[t] = true
end
-- Action links that name another action (rewritten from temporary ids to real ones).
local LINK_KEYS = {"next", "next_if_true", "next_if_false"}
-- Triggers that name a resource of the account, and where it lives.
local TRIGGER_STORES = {metric = "metrics", list = "lists", segment = "segments"}

local H = {}

local function not_found(id)
  return jsonapi.not_found(format("A flow with id %s does not exist.", tostring(id)))
end

local function copy(v)
  if type(v) ~= "table" or v == null then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return out
end

local function self_link(req)
  return {self = jsonapi.url(req, collection.path(req), req.query)}
end

-- Checks a definition and returns a stored copy with real action ids, plus the trigger;
-- or nil, status, doc naming the offending member.
local function compile_definition(acct, def)
  local P = "/data/attributes/definition"
  if type(def) ~= "table" or def[1] ~= nil then
    return nil, collection.bad(P, "The flow definition must be an object.")
  end
  local triggers = def.triggers
  if type(triggers) ~= "table" or #triggers ~= 1 then
    return nil, collection.bad(P .. "/triggers", "A flow definition needs exactly one trigger.")
  end
  local t = triggers[1]
  if type(t) ~= "table" or type(t.type) ~= "string" or not flowrunner.TRIGGER_TYPES[t.type] then
    return nil, collection.bad(P .. "/triggers/0/type",
      "The trigger type must be one of list, segment, metric, date, price-drop, low-inventory.")
  end
  local store = TRIGGER_STORES[t.type]
  if store then
    if type(t.id) ~= "string" or t.id == "" then
      return nil, collection.bad(P .. "/triggers/0/id",
        format("A %s trigger needs the %s's id.", t.type, t.type))
    end
    if not (acct[store] and acct[store][t.id]) then
      return nil, collection.bad(P .. "/triggers/0/id", format("There is no %s with id %s.", t.type, t.id))
    end
  end
  local actions = def.actions
  if type(actions) ~= "table" or (next(actions) ~= nil and actions[1] == nil) then
    return nil, collection.bad(P .. "/actions", "actions must be an array.")
  end
  -- First pass: give every action its real id, remembering temporary ids.
  local out_actions, ids = {}, {}
  for i, a in ipairs(actions) do
    local ptr = P .. "/actions/" .. (i - 1)
    if type(a) ~= "table" or not ACTION_TYPES[a.type] then
      return nil, collection.bad(ptr .. "/type", format("Unknown action type '%s'.",
        type(a) == "table" and tostring(a.type) or "?"))
    end
    local tmp = a.temporary_id
    if a.id ~= nil and a.id ~= null then
      return nil, collection.bad(ptr .. "/id", "New actions use 'temporary_id', not 'id'.")
    end
    if type(tmp) ~= "string" or tmp == "" then
      return nil, collection.bad(ptr .. "/temporary_id", "Each new action needs a 'temporary_id'.")
    end
    if ids[tmp] then
      return nil, collection.bad(ptr .. "/temporary_id", format("temporary_id '%s' is used twice.", tmp))
    end
    local c = copy(a)
    c.temporary_id = nil
    c.id = state.new_id()
    ids[tmp] = c.id
    out_actions[i] = c
  end
  -- Second pass: links must name actions of this definition.
  for i, c in ipairs(out_actions) do
    if type(c.links) == "table" then
      for _, k in ipairs(LINK_KEYS) do
        local v = c.links[k]
        if v ~= nil and v ~= null then
          if not ids[v] then
            return nil, collection.bad(format("%s/actions/%d/links/%s", P, i - 1, k),
              format("'%s' is not the temporary_id of an action in this definition.", tostring(v)))
          end
          c.links[k] = ids[v]
        end
      end
    end
  end
  local entry = def.entry_action_id
  local out = copy(def)
  out.actions = out_actions
  if #out_actions > 0 then
    if type(entry) ~= "string" or not ids[entry] then
      return nil, collection.bad(P .. "/entry_action_id",
        "entry_action_id must be the temporary_id of one of the actions.")
    end
    out.entry_action_id = ids[entry]
  else
    if entry ~= nil and entry ~= null then
      return nil, collection.bad(P .. "/entry_action_id", "entry_action_id names no action.")
    end
    out.entry_action_id = null
  end
  out.triggers = {copy(t)}
  -- Filters decide whether a trigger starts a run: compiled now, evaluated per trigger.
  local trigger = {type = t.type, id = t.id}
  local fn, st, doc
  if t.type == "metric" then
    fn, st, doc = conditions.compile(t.trigger_filter, P .. "/triggers/0/trigger_filter", {metric_id = t.id})
    if fn == nil then return nil, st, doc end
    trigger.match_event = fn or nil
  end
  fn, st, doc = conditions.compile(def.profile_filter, P .. "/profile_filter", {})
  if fn == nil then return nil, st, doc end
  trigger.match_profile = fn or nil
  return out, trigger
end

local function flow_opts(extra, include)
  return {definition = extra and extra.definition, actions = include and include["flow-actions"],
    tags = include and include.tags}
end

local function action_resource(req, flow, a)
  local base = (req.base_url or "") .. "/api/flow-actions/" .. a.id
  return jsonapi.resource("flow-action", a.id, {
    created = state.iso(flow.created), updated = state.iso(flow.updated), definition = a,
  }, {
    flow = {data = {type = "flow", id = flow.id}, links = {self = base .. "/relationships/flow",
      related = base .. "/flow"}},
    ["flow-messages"] = collection.rel_links(base, "flow-messages"),
  }, base)
end

function H.create_flow(req)
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local a
  a, st, doc = collection.attributes(data, true)
  if not a then return st, doc end
  if type(a.name) ~= "string" or a.name:match("^%s*$") then
    return collection.bad("/data/attributes/name", "A flow name must be a non-empty string.")
  end
  local fields
  fields, st, doc = jsonapi.fields(req, "flow")
  if fields == nil then return st, doc end
  local extra
  extra, st, doc = collection.additional(req, "flow", {"definition"})
  if not extra then return st, doc end
  local acct = req.account
  local def, trigger, edoc = compile_definition(acct, a.definition)
  if not def then return trigger, edoc end
  local now = state.now()
  local flow = {
    id = state.new_id(), name = a.name, status = "draft", archived = false,
    trigger = trigger, trigger_type = flowrunner.TRIGGER_TYPES[trigger.type],
    definition = def, created = now, updated = now,
  }
  acct.flows[flow.id] = flow
  acct.flow_actions = acct.flow_actions or {}
  for _, act in ipairs(def.actions) do acct.flow_actions[act.id] = flow.id end
  local r = flowrunner.flow_resource(req, flow, fields, flow_opts(extra))
  return 201, {data = r, links = {self = r.links.self}}
end

local FLOW_FILTER = {
  id = {type = "string"},
  name = {type = "string"},
  status = {type = "string"},
  archived = {get = function(f) return f.archived or false end},
  created = {type = "datetime", get = function(f) return math.floor(f.created) end},
  updated = {type = "datetime", get = function(f) return math.floor(f.updated) end},
  trigger_type = {type = "string"},
  ["and"] = true,
}
local FLOW_SORT = {
  created = function(f) return f.created end, id = function(f) return f.id end,
  name = function(f) return f.name end, status = function(f) return f.status end,
  trigger_type = function(f) return f.trigger_type end, updated = function(f) return f.updated end,
}

-- Actions of the shown flows, for `included` (include=flow-actions).
local function included_actions(req, flows, include)
  if not include["flow-actions"] then return nil end
  local out = {}
  for _, f in ipairs(flows) do
    for _, a in ipairs(f.definition.actions) do out[#out + 1] = action_resource(req, f, a) end
  end
  return out
end

function H.get_flows(req)
  local pred, st, doc = collection.filter(req, FLOW_FILTER)
  if pred == nil then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "flow")
  if fields == nil then return st, doc end
  local include
  include, st, doc = collection.includes(req, {"flow-actions", "tags"})
  if not include then return st, doc end
  local items = {}
  for _, f in pairs(req.account.flows) do
    if not pred or pred(f) then items[#items + 1] = f end
  end
  local ok
  ok, st, doc = collection.sort(req, items, FLOW_SORT)
  if not ok then return st, doc end
  local shown = {}
  local status, out = jsonapi.page(req, items, function(f)
    shown[#shown + 1] = f
    return flowrunner.flow_resource(req, f, fields, flow_opts(nil, include))
  end, {default_size = 50})
  if status ~= 200 then return status, out end
  local inc = included_actions(req, shown, include)
  if inc then out.included = jsonapi.array(inc) end
  return 200, out
end

function H.get_flow(req)
  local flow = req.account.flows[req.params.id]
  if not flow then return not_found(req.params.id) end
  local fields, st, doc = jsonapi.fields(req, "flow")
  if fields == nil then return st, doc end
  local extra
  extra, st, doc = collection.additional(req, "flow", {"definition"})
  if not extra then return st, doc end
  local include
  include, st, doc = collection.includes(req, {"flow-actions", "tags"})
  if not include then return st, doc end
  local r = flowrunner.flow_resource(req, flow, fields, flow_opts(extra, include))
  local out = {data = r, links = {self = r.links.self}}
  local inc = included_actions(req, {flow}, include)
  if inc then out.included = jsonapi.array(inc) end
  return 200, out
end

function H.update_flow(req)
  local id = req.params.id
  local flow = req.account.flows[id]
  if not flow then return not_found(id) end
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  if data.id ~= id then
    return collection.bad("/data/id", "The id in the body must match the flow id in the path.")
  end
  local a
  a, st, doc = collection.attributes(data, true)
  if not a then return st, doc end
  if not STATUSES[a.status] then
    return collection.bad("/data/attributes/status", "status must be one of draft, manual, live.")
  end
  local fields
  fields, st, doc = jsonapi.fields(req, "flow")
  if fields == nil then return st, doc end
  flow.status = a.status
  flow.updated = state.now()
  local r = flowrunner.flow_resource(req, flow, fields)
  return 200, {data = r, links = {self = r.links.self}}
end

function H.delete_flow(req)
  local acct, id = req.account, req.params.id
  local flow = acct.flows[id]
  if not flow then return not_found(id) end
  for _, a in ipairs(flow.definition.actions) do
    if acct.flow_actions then acct.flow_actions[a.id] = nil end
  end
  acct.flows[id] = nil
  return 204, nil
end

local function metric_not_found(id)
  return jsonapi.not_found(format("A metric with id %s does not exist.", tostring(id)))
end

function H.get_flows_triggered_by_metric(req)
  local acct, id = req.account, req.params.id
  if not acct.metrics[id] then return metric_not_found(id) end
  local fields, st, doc = jsonapi.fields(req, "flow")
  if fields == nil then return st, doc end
  local d = {}
  for i, f in ipairs(flowrunner.flows_triggered_by(acct, "metric", id)) do
    d[i] = flowrunner.flow_resource(req, f, fields)
  end
  return 200, {data = jsonapi.array(d), links = self_link(req)}
end

function H.get_ids_for_flows_triggered_by_metric(req)
  local acct, id = req.account, req.params.id
  if not acct.metrics[id] then return metric_not_found(id) end
  local d = {}
  for i, f in ipairs(flowrunner.flows_triggered_by(acct, "metric", id)) do
    d[i] = {type = "flow", id = f.id}
  end
  return 200, {data = jsonapi.array(d), links = self_link(req)}
end

local ACTION_FILTER = {
  id = {get = function(x) return x.a.id end},
  action_type = {get = function(x) return x.a.type end},
  status = {get = function(x)
    return type(x.a.data) == "table" and x.a.data.status or nil
  end},
  -- an action shows its flow's created and updated times
  created = {type = "datetime", get = function(x) return math.floor(x.f.created) end},
  updated = {type = "datetime", get = function(x) return math.floor(x.f.updated) end},
  ["and"] = true,
}
local ACTION_SORT = {
  action_type = function(x) return x.a.type end, id = function(x) return x.a.id end,
  status = function(x) return type(x.a.data) == "table" and x.a.data.status or "" end,
  created = function(x) return x.i end, updated = function(x) return x.i end,
}

local function actions_of(req, ids_only)
  local flow = req.account.flows[req.params.id]
  if not flow then return not_found(req.params.id) end
  local pred, st, doc = collection.filter(req, ACTION_FILTER)
  if pred == nil then return st, doc end
  local items = {}
  for i, a in ipairs(flow.definition.actions) do
    local x = {a = a, i = i, f = flow}
    if not pred or pred(x) then items[#items + 1] = x end
  end
  local ok
  ok, st, doc = collection.sort(req, items, ACTION_SORT, nil, function(x) return x.i end)
  if not ok then return st, doc end
  if ids_only then
    return jsonapi.page(req, items, function(x) return {type = "flow-action", id = x.a.id} end,
      {default_size = 50})
  end
  return jsonapi.page(req, items, function(x) return action_resource(req, flow, x.a) end,
    {default_size = 50})
end

-- The flow and action an action id names (actions are indexed at create_flow), or nil,
-- 404, doc.
local function action_by_id(req)
  local acct, id = req.account, req.params.id
  local flow = acct.flow_actions and acct.flows[acct.flow_actions[id] or ""]
  if flow then
    for _, a in ipairs(flow.definition.actions) do
      if a.id == id then return flow, a end
    end
  end
  return nil, jsonapi.not_found(format("A flow action with id %s does not exist.", tostring(id)))
end

-- The messages of an action: the message its definition carries (send-email, send-sms, ...),
-- with an id given on first read and kept, or none.
local function message_resources(req, flow, a)
  local msg = type(a.data) == "table" and a.data.message
  if type(msg) ~= "table" then return {} end
  local acct = req.account
  acct.flow_message_ids = acct.flow_message_ids or {}
  local id = acct.flow_message_ids[a.id]
  if not id then
    id = state.new_id()
    acct.flow_message_ids[a.id] = id
  end
  local base = (req.base_url or "") .. "/api/flow-messages/" .. id
  local channel = type(a.type) == "string" and a.type:gsub("^send%-", "") or nil
  return {jsonapi.resource("flow-message", id, {
    channel = channel, created = state.iso(flow.created), updated = state.iso(flow.updated),
    definition = msg,
  }, {
    ["flow-action"] = {data = {type = "flow-action", id = a.id},
      links = {self = base .. "/relationships/flow-action", related = base .. "/flow-action"}},
  }, base)}
end

function H.get_flow_action_messages(req)
  local flow, a, err = action_by_id(req)
  if not flow then return a, err end
  return jsonapi.page(req, message_resources(req, flow, a), function(r) return r end,
    {default_size = 50})
end

function H.get_flow_action(req)
  local flow, a, err = action_by_id(req)
  if not flow then return a, err end
  local include, st, doc = collection.includes(req, {"flow", "flow-messages"})
  if not include then return st, doc end
  local r = action_resource(req, flow, a)
  local out = {data = r, links = {self = r.links.self}}
  local included = {}
  if include["flow-messages"] then
    local ids = {}
    for _, m in ipairs(message_resources(req, flow, a)) do
      ids[#ids + 1] = {type = m.type, id = m.id}
      included[#included + 1] = m
    end
    r.relationships["flow-messages"].data = jsonapi.array(ids)
  end
  if include.flow then
    local fields
    fields, st, doc = jsonapi.fields(req, "flow")
    if fields == nil then return st, doc end
    included[#included + 1] = flowrunner.flow_resource(req, flow, fields)
  end
  if #included > 0 then out.included = included end
  return 200, out
end

function H.get_flow_for_flow_action(req)
  local flow, st, doc = action_by_id(req)
  if not flow then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "flow")
  if fields == nil then return st, doc end
  return 200, {data = flowrunner.flow_resource(req, flow, fields), links = self_link(req)}
end

function H.get_flow_id_for_flow_action(req)
  local flow, st, err = action_by_id(req)
  if not flow then return st, err end
  return 200, {data = {type = "flow", id = flow.id}, links = self_link(req)}
end

function H.get_actions_for_flow(req) return actions_of(req, false) end
function H.get_action_ids_for_flow(req) return actions_of(req, true) end

return H
