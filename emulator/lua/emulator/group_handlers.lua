-- The read side that lists and segments share (handlers/lists.lua, handlers/segments.lua):
-- the resource with its relationships, the collection and single reads with included flows,
-- the member collections, the flows a group triggers and the groups of a profile.
--
-- A kind describes one of the two:
--   {type = "list", store = "lists", members = "list_members",
--    attributes = function(g, fields) -> attribute table (already sparse),
--    filter = collection.filter spec (base_filter() plus any own keys), sort = SORT}
-- `store` is both the account table and the URL segment (/api/lists/<id>).
local jsonapi = require("emulator.jsonapi")
local collection = require("emulator.collection")
local groups = require("emulator.groups")
local flowrunner = require("emulator.flowrunner")

local ipairs, pairs, format, tostring = ipairs, pairs, string.format, tostring

local INCLUDES = {"flow-triggers", "tags"}

local _M = {}

--- The filter keys both kinds accept; a fresh table, so a kind may add its own.
function _M.base_filter()
  return {
    name = {type = "string"},
    id = {type = "string"},
    created = {type = "datetime"},
    updated = {type = "datetime"},
    ["and"] = true,
  }
end

_M.SORT = {
  created = function(g) return g.created end, id = function(g) return g.id end,
  name = function(g) return g.name end, updated = function(g) return g.updated end,
}

function _M.not_found(kind, id)
  return jsonapi.not_found(format("A %s with id %s does not exist.", kind.type, tostring(id)))
end

local function self_link(req)
  return {self = jsonapi.url(req, collection.path(req), req.query)}
end

function _M.resource(req, kind, g, fields, extra, include)
  local base = (req.base_url or "") .. "/api/" .. kind.store .. "/" .. g.id
  local a = kind.attributes(g, fields)
  if extra and extra.profile_count then
    a.profile_count = groups.count(req.account[kind.members], g.id)
  end
  local rel = {
    profiles = collection.rel_links(base, "profiles"),
    tags = collection.rel_links(base, "tags"),
    ["flow-triggers"] = collection.rel_links(base, "flow-triggers"),
  }
  if include and include["flow-triggers"] then
    local d = {}
    for i, f in ipairs(flowrunner.flows_triggered_by(req.account, kind.type, g.id)) do
      d[i] = {type = "flow", id = f.id}
    end
    rel["flow-triggers"].data = jsonapi.array(d)
  end
  if include and include.tags then rel.tags.data = jsonapi.array({}) end
  return jsonapi.resource(kind.type, g.id, a, rel, base)
end

-- Flows named by the groups' flow-triggers linkage, once each, for `included`.
local function included_flows(req, kind, shown, include)
  if not include["flow-triggers"] then return nil end
  local fields, st, doc = jsonapi.fields(req, "flow")
  if fields == nil then return nil, st, doc end
  local seen, out = {}, {}
  for _, g in ipairs(shown) do
    for _, f in ipairs(flowrunner.flows_triggered_by(req.account, kind.type, g.id)) do
      if not seen[f.id] then
        seen[f.id] = true
        out[#out + 1] = flowrunner.flow_resource(req, f, fields)
      end
    end
  end
  return out
end

-- Adds `included` to a 200 document when include names flow-triggers.
local function with_included(req, kind, out, shown, include)
  local inc, st, doc = included_flows(req, kind, shown, include)
  if st then return st, doc end
  if inc then out.included = jsonapi.array(inc) end
  return 200, out
end

--- get_lists / get_segments: filtered, sorted, paged, with included flows.
function _M.get_all(req, kind)
  local pred, st, doc = collection.filter(req, kind.filter)
  if pred == nil then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, kind.type)
  if fields == nil then return st, doc end
  local include
  include, st, doc = collection.includes(req, INCLUDES)
  if not include then return st, doc end
  local items = {}
  for _, g in pairs(req.account[kind.store]) do
    if not pred or pred(g) then items[#items + 1] = g end
  end
  local ok
  ok, st, doc = collection.sort(req, items, kind.sort)
  if not ok then return st, doc end
  -- included flows belong to the page shown, so page first, then collect them.
  local shown = {}
  local status, out = jsonapi.page(req, items, function(g)
    shown[#shown + 1] = g
    return _M.resource(req, kind, g, fields, nil, include)
  end, {default_size = 10})
  if status ~= 200 then return status, out end
  return with_included(req, kind, out, shown, include)
end

--- get_list / get_segment: one group, with additional-fields and included flows.
function _M.get_one(req, kind)
  local g = req.account[kind.store][req.params.id]
  if not g then return _M.not_found(kind, req.params.id) end
  local fields, st, doc = jsonapi.fields(req, kind.type)
  if fields == nil then return st, doc end
  local extra
  extra, st, doc = collection.additional(req, kind.type, {"profile_count"})
  if not extra then return st, doc end
  local include
  include, st, doc = collection.includes(req, INCLUDES)
  if not include then return st, doc end
  local r = _M.resource(req, kind, g, fields, extra, include)
  return with_included(req, kind, {data = r, links = {self = r.links.self}}, {g}, include)
end

--- delete_list / delete_segment: the group and its memberships go.
function _M.delete(req, kind)
  local acct, id = req.account, req.params.id
  if not acct[kind.store][id] then return _M.not_found(kind, id) end
  acct[kind.store][id] = nil
  acct[kind.members][id] = nil
  return 204, nil
end

--- get_profiles_for_* (ids_only false) and get_profile_ids_for_* (ids_only true).
function _M.members(req, kind, ids_only)
  local acct, id = req.account, req.params.id
  if not acct[kind.store][id] then return _M.not_found(kind, id) end
  return groups.members(req, acct[kind.members], id, {kind = kind.type, ids_only = ids_only})
end

--- get_flows_triggered_by_* (full flows) and get_ids_for_flows_triggered_by_* (ids_only).
function _M.flows(req, kind, ids_only)
  local acct, id = req.account, req.params.id
  if not acct[kind.store][id] then return _M.not_found(kind, id) end
  local fields, st, doc
  if not ids_only then
    fields, st, doc = jsonapi.fields(req, "flow")
    if fields == nil then return st, doc end
  end
  local d = {}
  for i, f in ipairs(flowrunner.flows_triggered_by(acct, kind.type, id)) do
    d[i] = ids_only and {type = "flow", id = f.id} or flowrunner.flow_resource(req, f, fields)
  end
  return 200, {data = jsonapi.array(d), links = self_link(req)}
end

--- get_lists_for_profile / get_segments_for_profile (ids_only false) and the *_ids_ variants
-- (no pagination in the spec).
function _M.of_profile(req, kind, ids_only)
  local acct, pid = req.account, req.params.id
  if not acct.profiles[pid] then
    return jsonapi.not_found(format("A profile with id %s does not exist.", tostring(pid)))
  end
  local fields, st, doc
  if not ids_only then
    fields, st, doc = jsonapi.fields(req, kind.type)
    if fields == nil then return st, doc end
  end
  local d, store = {}, acct[kind.store]
  for _, gid in ipairs(groups.groups_of(acct[kind.members], pid)) do
    local g = store[gid]
    if g then
      d[#d + 1] = ids_only and {type = kind.type, id = g.id} or _M.resource(req, kind, g, fields)
    end
  end
  return 200, {data = jsonapi.array(d), links = self_link(req)}
end

return _M
