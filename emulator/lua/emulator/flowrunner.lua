-- Flows at run time: the part of the emulator that makes flows fire, plus what other
-- modules need to know about flows (their resource shape, which flows a trigger names).
--
-- A live flow starts one run per trigger: a recorded (non-backfill) event of its trigger
-- metric, a profile joining its trigger list, or a profile entering its trigger segment.
-- Draft and manual flows start none. Runs are appended to acct.flow_runs, which the admin
-- API (`GET /__emulator/flow-runs`) reads so a test can count exactly how often a flow fired.
--
-- Segments are defined here (for the admin API) because entering a segment is a flow
-- trigger; membership itself lives in groups.lua, filters in conditions.lua.
local state = require("emulator.state")
local groups = require("emulator.groups")
local consent = require("emulator.consent")
local jsonapi = require("emulator.jsonapi")

local _M = {}

local function runs(acct)
  local r = acct.flow_runs
  if not r then
    r = {}
    acct.flow_runs = r
  end
  return r
end

-- Starts a run of every live flow triggered by (trigger_type, trigger_id) whose filters
-- (trigger_filter on the event, profile_filter on the profile) let this trigger through.
local function start_runs(acct, trigger_type, trigger_id, profile_id, event, profile)
  local flows = acct.flows
  if not flows or next(flows) == nil then return 0 end
  local n, ctx = 0, nil
  for _, flow in pairs(flows) do
    local t = flow.trigger
    if flow.status == "live" and t and t.type == trigger_type and t.id == trigger_id then
      ctx = ctx or {event = event, profile = profile or (acct.profiles and acct.profiles[profile_id])}
      if (not t.match_event or t.match_event(ctx)) and (not t.match_profile or t.match_profile(ctx)) then
        local r = runs(acct)
        r[#r + 1] = {
          id = state.new_id(), flow_id = flow.id, profile_id = profile_id,
          trigger = trigger_type, event_id = event and event.id, created = state.now(),
        }
        n = n + 1
      end
    end
  end
  return n
end

-- Called by the events handler after an event is recorded (never for a duplicate).
-- Backfilled events are history, not activity: they start no flow.
function _M.on_event(acct, event, profile)
  if event.backfill == true then return 0 end
  local metric_id = event.metric_id
  if not metric_id and event.metric then metric_id = event.metric.id end
  if not metric_id then return 0 end
  local pid = (profile and profile.id) or event.profile_id
  return start_runs(acct, "metric", metric_id, pid, event, profile)
end

function _M.on_list_join(acct, list_id, profile_id)
  return start_runs(acct, "list", list_id, profile_id)
end

function _M.on_segment_join(acct, segment_id, profile_id)
  return start_runs(acct, "segment", segment_id, profile_id)
end

-- A profile that stops existing (deleted) leaves every list and segment.
_M.forget_profile = groups.forget_profile

-- merge_profiles: the destination inherits the source's list and segment memberships.
-- A merge is not a join, so no flow starts.
function _M.merge_profile(acct, src_id, dest_id)
  groups.transfer(acct.list_members, src_id, dest_id)
  groups.transfer(acct.segment_members, src_id, dest_id)
end

-- Admin `POST /__emulator/segments`: {"id"?, "name", "profile_ids": [...]}. Segments are
-- defined by conditions at Klaviyo; the emulator lets a test state the outcome directly.
-- Members are replaced; profiles entering the segment start segment-triggered flows.
function _M.define_segment(acct, spec)
  if type(spec) ~= "table" then return nil, "body must be a JSON object" end
  local name = spec.name
  if type(name) ~= "string" or name == "" then return nil, "name must be a non-empty string" end
  local ids = spec.profile_ids
  if ids == nil then ids = {} end
  if type(ids) ~= "table" then return nil, "profile_ids must be an array of profile ids" end
  for i, pid in ipairs(ids) do
    if type(pid) ~= "string" or not (acct.profiles and acct.profiles[pid]) then
      return nil, "profile_ids[" .. (i - 1) .. "]: unknown profile id " .. tostring(pid)
    end
  end
  local id = spec.id
  if id ~= nil and (type(id) ~= "string" or id == "") then return nil, "id must be a string" end
  acct.segments = acct.segments or {}
  acct.segment_members = acct.segment_members or {}
  local now = state.now()
  local seg = id and acct.segments[id]
  if seg then
    seg.name = name
    seg.updated = now
  else
    seg = {id = id or state.new_id(), name = name, created = now, updated = now}
    acct.segments[seg.id] = seg
  end
  local store = acct.segment_members
  local old = store[seg.id]
  local wanted = {}
  for _, pid in ipairs(ids) do wanted[pid] = true end
  if old then
    local gone = {}
    for _, pid in ipairs(old.order) do
      if not wanted[pid] then gone[#gone + 1] = pid end
    end
    groups.leave(store, seg.id, gone)
  end
  for _, pid in ipairs(ids) do
    if groups.join(store, seg.id, pid) then _M.on_segment_join(acct, seg.id, pid) end
  end
  return seg
end

---------------------------------------------------------------- flows as resources

-- trigger.type of a definition -> the trigger_type Klaviyo reports (segment flows are
-- "Added to List" there too: the enum has no segment value).
_M.TRIGGER_TYPES = {
  metric = "Metric", list = "Added to List", segment = "Added to List", date = "Date Based",
  ["price-drop"] = "Price Drop", ["low-inventory"] = "Low Inventory",
}

--- A flow as a JSON:API resource. `fields` is a sparse fieldset (or false);
-- opts.definition adds the definition, opts.actions the flow-actions linkage, opts.tags
-- the (empty) tags linkage.
function _M.flow_resource(req, flow, fields, opts)
  opts = opts or {}
  local base = (req.base_url or "") .. "/api/flows/" .. flow.id
  local a = {
    name = flow.name, status = flow.status, archived = flow.archived or false,
    created = state.iso(flow.created), updated = state.iso(flow.updated),
    trigger_type = flow.trigger_type,
  }
  if fields then a = jsonapi.sparse(a, fields) end
  if opts.definition then
    -- a shallow copy so the empty-array marker never lands in the stored definition
    local d = {}
    for k, v in pairs(flow.definition) do d[k] = v end
    d.actions = jsonapi.array(flow.definition.actions)
    a.definition = d
  end
  local rel = {
    ["flow-actions"] = {links = {self = base .. "/relationships/flow-actions",
      related = base .. "/flow-actions"}},
    tags = {links = {self = base .. "/relationships/tags", related = base .. "/tags"}},
  }
  if opts.tags then rel.tags.data = jsonapi.array({}) end -- tags are not emulated: none
  if opts.actions then
    local d = {}
    for i, act in ipairs(flow.definition.actions) do d[i] = {type = "flow-action", id = act.id} end
    rel["flow-actions"].data = jsonapi.array(d)
  end
  return jsonapi.resource("flow", flow.id, a, rel, base)
end

--- Flows whose trigger is (ttype, id), oldest first.
function _M.flows_triggered_by(acct, ttype, id)
  local out = {}
  for _, f in pairs(acct.flows or {}) do
    if f.trigger and f.trigger.type == ttype and f.trigger.id == id then out[#out + 1] = f end
  end
  table.sort(out, function(a, b) return a.id < b.id end)
  return out
end

-- Consent of a profile that was never subscribed, in the spec's Subscriptions shape.
_M.default_subscriptions = consent.default

return _M
