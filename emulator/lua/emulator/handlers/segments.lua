-- Segments, read side. Klaviyo computes segment membership from conditions; the emulator
-- has no condition engine, so segments and their members are stated by the admin API
-- (`POST /__emulator/segments`, flowrunner.define_segment) and read here like Klaviyo's.
local cjson = require("cjson.safe")
local state = require("emulator.state")
local jsonapi = require("emulator.jsonapi")
local collection = require("emulator.collection")
local groups = require("emulator.groups")
local flowrunner = require("emulator.flowrunner")

local null = cjson.null
local type, ipairs, pairs, format, tostring = type, ipairs, pairs, string.format, tostring

local SEGMENT_FIELDS = {"name", "created", "updated", "is_active", "is_processing", "is_starred"}

local H = {}

local function not_found(id)
  return jsonapi.not_found(format("A segment with id %s does not exist.", tostring(id)))
end

local function segment_resource(req, s, fields, extra, include)
  local base = (req.base_url or "") .. "/api/segments/" .. s.id
  local a = {
    name = s.name, created = state.iso(s.created), updated = state.iso(s.updated),
    is_active = s.is_active ~= false, is_processing = false, is_starred = s.is_starred or false,
  }
  if fields then
    local full = a
    a = jsonapi.sparse(a, fields)
    -- the spec's segment schemas require these three whatever fields[segment] says
    a.is_active, a.is_processing, a.is_starred = full.is_active, full.is_processing, full.is_starred
  end
  if extra and extra.profile_count then
    a.profile_count = groups.count(req.account.segment_members, s.id)
  end
  local rel = {
    profiles = collection.rel_links(base, "profiles"),
    tags = collection.rel_links(base, "tags"),
    ["flow-triggers"] = collection.rel_links(base, "flow-triggers"),
  }
  if include and include["flow-triggers"] then
    local d = {}
    for i, f in ipairs(flowrunner.flows_triggered_by(req.account, "segment", s.id)) do
      d[i] = {type = "flow", id = f.id}
    end
    rel["flow-triggers"].data = jsonapi.array(d)
  end
  if include and include.tags then rel.tags.data = jsonapi.array({}) end
  return jsonapi.resource("segment", s.id, a, rel, base)
end

local function included_flows(req, segs, include)
  if not include["flow-triggers"] then return nil end
  local fields, st, doc = jsonapi.fields(req, "flow", flowrunner.FLOW_FIELDS)
  if fields == nil then return nil, st, doc end
  local seen, out = {}, {}
  for _, s in ipairs(segs) do
    for _, f in ipairs(flowrunner.flows_triggered_by(req.account, "segment", s.id)) do
      if not seen[f.id] then
        seen[f.id] = true
        out[#out + 1] = flowrunner.flow_resource(req, f, fields)
      end
    end
  end
  return out
end

local SEGMENT_FILTER = {
  name = {ops = {"any", "equals"}, type = "string"},
  id = {ops = {"any", "equals"}, type = "string"},
  created = {ops = {"greater-than"}, type = "datetime"},
  updated = {ops = {"greater-than"}, type = "datetime"},
  is_active = {ops = {"any", "equals"}, get = function(s) return s.is_active ~= false end},
  is_starred = {ops = {"equals"}, get = function(s) return s.is_starred or false end},
  ["and"] = true,
}
local SEGMENT_SORT = {
  created = function(s) return s.created end, id = function(s) return s.id end,
  name = function(s) return s.name end, updated = function(s) return s.updated end,
}

function H.get_segments(req)
  local pred, st, doc = collection.filter(req, SEGMENT_FILTER)
  if pred == nil then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "segment", SEGMENT_FIELDS)
  if fields == nil then return st, doc end
  local include
  include, st, doc = collection.includes(req, {"flow-triggers", "tags"})
  if not include then return st, doc end
  local items = {}
  for _, s in pairs(req.account.segments) do
    if not pred or pred(s) then items[#items + 1] = s end
  end
  local ok
  ok, st, doc = collection.sort(req, items, SEGMENT_SORT)
  if not ok then return st, doc end
  local shown = {}
  local status, out = jsonapi.page(req, items, function(s)
    shown[#shown + 1] = s
    return segment_resource(req, s, fields, nil, include)
  end, {default_size = 10})
  if status ~= 200 then return status, out end
  local inc
  inc, st, doc = included_flows(req, shown, include)
  if st then return st, doc end
  if inc then out.included = jsonapi.array(inc) end
  return 200, out
end

function H.get_segment(req)
  local s = req.account.segments[req.params.id]
  if not s then return not_found(req.params.id) end
  local fields, st, doc = jsonapi.fields(req, "segment", SEGMENT_FIELDS)
  if fields == nil then return st, doc end
  local extra
  extra, st, doc = collection.additional(req, "segment", {"profile_count"})
  if not extra then return st, doc end
  local include
  include, st, doc = collection.includes(req, {"flow-triggers", "tags"})
  if not include then return st, doc end
  local r = segment_resource(req, s, fields, extra, include)
  local out = {data = r, links = {self = r.links.self}}
  local inc
  inc, st, doc = included_flows(req, {s}, include)
  if st then return st, doc end
  if inc then out.included = jsonapi.array(inc) end
  return 200, out
end

function H.get_profiles_for_segment(req)
  local acct, id = req.account, req.params.id
  if not acct.segments[id] then return not_found(id) end
  return groups.members(req, acct.segment_members, id, {kind = "segment"})
end

function H.get_profile_ids_for_segment(req)
  local acct, id = req.account, req.params.id
  if not acct.segments[id] then return not_found(id) end
  return groups.members(req, acct.segment_members, id, {kind = "segment", ids_only = true})
end

-- Renames, stars or (de)activates a segment. Its definition cannot change here: the
-- emulator has no condition engine (members come from the admin API).
function H.update_segment(req)
  local id = req.params.id
  local s = req.account.segments[id]
  if not s then return not_found(id) end
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  if data.id ~= id then
    return collection.bad("/data/id", "The id in the body must match the segment id in the path.")
  end
  local a
  a, st, doc = collection.attributes(data, true)
  if not a then return st, doc end
  if a.definition ~= nil and a.definition ~= null then
    return jsonapi.error(501, "not_implemented", "Not implemented.",
      "The Klaviyo emulator does not evaluate segment definitions; " ..
      "set members with POST /__emulator/segments.")
  end
  if a.name ~= nil and (type(a.name) ~= "string" or a.name:match("^%s*$")) then
    return collection.bad("/data/attributes/name", "A segment name must be a non-empty string.")
  end
  for _, k in ipairs({"is_starred", "is_active"}) do
    if a[k] ~= nil and a[k] ~= null and type(a[k]) ~= "boolean" then
      return collection.bad("/data/attributes/" .. k, k .. " must be a boolean.")
    end
  end
  local fields
  fields, st, doc = jsonapi.fields(req, "segment", SEGMENT_FIELDS)
  if fields == nil then return st, doc end
  if a.name ~= nil then s.name = a.name end
  if type(a.is_starred) == "boolean" then s.is_starred = a.is_starred end
  if type(a.is_active) == "boolean" then s.is_active = a.is_active end
  s.updated = state.now()
  local r = segment_resource(req, s, fields)
  return 200, {data = r, links = {self = r.links.self}}
end

function H.delete_segment(req)
  local acct, id = req.account, req.params.id
  if not acct.segments[id] then return not_found(id) end
  acct.segments[id] = nil
  acct.segment_members[id] = nil
  return 204, nil
end

local function self_link(req)
  return {self = jsonapi.url(req, collection.path(req), req.query)}
end

function H.get_flows_triggered_by_segment(req)
  local acct, id = req.account, req.params.id
  if not acct.segments[id] then return not_found(id) end
  local fields, st, doc = jsonapi.fields(req, "flow", flowrunner.FLOW_FIELDS)
  if fields == nil then return st, doc end
  local d = {}
  for i, f in ipairs(flowrunner.flows_triggered_by(acct, "segment", id)) do
    d[i] = flowrunner.flow_resource(req, f, fields)
  end
  return 200, {data = jsonapi.array(d), links = self_link(req)}
end

function H.get_ids_for_flows_triggered_by_segment(req)
  local acct, id = req.account, req.params.id
  if not acct.segments[id] then return not_found(id) end
  local d = {}
  for i, f in ipairs(flowrunner.flows_triggered_by(acct, "segment", id)) do
    d[i] = {type = "flow", id = f.id}
  end
  return 200, {data = jsonapi.array(d), links = self_link(req)}
end

-- The segments a profile belongs to (no pagination in the spec).
local function profile_segments(req)
  local acct, pid = req.account, req.params.id
  if not acct.profiles[pid] then
    return nil, jsonapi.not_found(format("A profile with id %s does not exist.", tostring(pid)))
  end
  local out = {}
  for _, sid in ipairs(groups.groups_of(acct.segment_members, pid)) do
    if acct.segments[sid] then out[#out + 1] = acct.segments[sid] end
  end
  return out
end

function H.get_segments_for_profile(req)
  local segs, st, doc = profile_segments(req)
  if not segs then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "segment", SEGMENT_FIELDS)
  if fields == nil then return st, doc end
  local d = {}
  for i, sg in ipairs(segs) do d[i] = segment_resource(req, sg, fields) end
  return 200, {data = jsonapi.array(d), links = self_link(req)}
end

function H.get_segment_ids_for_profile(req)
  local segs, st, doc = profile_segments(req)
  if not segs then return st, doc end
  local d = {}
  for i, sg in ipairs(segs) do d[i] = {type = "segment", id = sg.id} end
  return 200, {data = jsonapi.array(d), links = self_link(req)}
end

return H
