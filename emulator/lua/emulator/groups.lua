-- Membership of lists and segments (one shape for both) and the member collections
-- (`get_profiles_for_list|segment`, `get_profile_ids_for_list|segment`).
--
-- A store maps group id -> {order = {profile ids in join order}, set = {[pid] = joined}}
-- where `joined` is the epoch the profile joined (so `joined_group_at` is real).
local state = require("emulator.state")
local jsonapi = require("emulator.jsonapi")
local collection = require("emulator.collection")
-- handlers.profiles requires flowrunner, which requires this module: load it on first use.
local profile_handlers

local ipairs, pairs = ipairs, pairs

local _M = {}

function _M.group(store, group_id)
  local g = store[group_id]
  if not g then
    g = {order = {}, set = {}}
    store[group_id] = g
  end
  return g
end

--- Adds a profile; true when it was not a member before (a join, which may start flows).
function _M.join(store, group_id, profile_id)
  local g = _M.group(store, group_id)
  if g.set[profile_id] then return false end
  g.set[profile_id] = state.now()
  g.order[#g.order + 1] = profile_id
  return true
end

--- Removes several profiles with one pass over the order, so removing 1000 of many
-- members stays linear. Returns how many were members.
function _M.leave(store, group_id, profile_ids)
  local g = store[group_id]
  if not g then return 0 end
  local n = 0
  for _, pid in ipairs(profile_ids) do
    if g.set[pid] then
      g.set[pid] = nil
      n = n + 1
    end
  end
  if n > 0 then
    local kept = {}
    for _, pid in ipairs(g.order) do
      if g.set[pid] then kept[#kept + 1] = pid end
    end
    g.order = kept
  end
  return n
end

function _M.is_member(store, group_id, profile_id)
  local g = store and store[group_id]
  return g ~= nil and g.set[profile_id] ~= nil
end

function _M.count(store, group_id)
  local g = store and store[group_id]
  return g and #g.order or 0
end

--- Ids of the groups in `store` that have `profile_id` as a member.
function _M.groups_of(store, profile_id)
  local out = {}
  for gid, g in pairs(store or {}) do
    if g.set[profile_id] then out[#out + 1] = gid end
  end
  table.sort(out)
  return out
end

--- Moves every membership of `src` to `dest` (a merge): dest keeps its own join time
-- where it was already a member, else takes src's.
function _M.transfer(store, src, dest)
  for gid, g in pairs(store or {}) do
    local at = g.set[src]
    if at then
      _M.leave(store, gid, {src})
      if not g.set[dest] then
        g.set[dest] = at
        g.order[#g.order + 1] = dest
      end
    end
  end
end

--- A profile that stops existing (merged away, deleted) leaves every list and segment.
function _M.forget_profile(acct, profile_id)
  for _, store in ipairs({acct.list_members or {}, acct.segment_members or {}}) do
    for gid in pairs(store) do _M.leave(store, gid, {profile_id}) end
  end
end

---------------------------------------------------------------- member collections

-- A member: the profile as get_profile shows it, plus joined_group_at (required by the
-- member schemas, so kept even when fields[profile] leaves it out).
local function member_resource(req, p, joined)
  local at = state.iso(joined)
  profile_handlers = profile_handlers or require("emulator.handlers.profiles")
  local r = profile_handlers.resource(req, p, {joined_group_at = at})
  r.attributes.joined_group_at = at
  return r
end

local FILTER_FIELDS = {
  email = {get = function(m) return m.p.email end},
  phone_number = {get = function(m) return m.p.phone_number end},
  -- Push tokens and _kx are not emulated: no member has one, so these match nothing.
  push_token = {get = function() return nil end},
  _kx = {get = function() return nil end},
  joined_group_at = {type = "datetime", get = function(m) return m.at end},
  ["and"] = true,
}
local SEGMENT_FILTER_FIELDS = {profile_id = {get = function(m) return m.p.id end}}
for k, v in pairs(FILTER_FIELDS) do SEGMENT_FILTER_FIELDS[k] = v end

local SORT_KEYS = {joined_group_at = function(m) return m.at end}

--- Answers a member collection. opts.kind = "list"|"segment"; opts.ids_only for the
-- relationships variant (ids only).
function _M.members(req, store, group_id, opts)
  local pred, st, doc = collection.filter(req, opts.kind == "segment" and SEGMENT_FILTER_FIELDS
    or FILTER_FIELDS)
  if pred == nil then return st, doc end
  if not opts.ids_only then
    local ok
    ok, st, doc = jsonapi.fields(req, "profile")
    if ok == nil then return st, doc end
    ok, st, doc = collection.additional(req, "profile", {"subscriptions", "predictive_analytics"})
    if not ok then return st, doc end
  end
  local profiles = req.account.profiles
  local g = store[group_id]
  local items = {}
  if g then
    for i, pid in ipairs(g.order) do
      local p = profiles[pid]
      if p then
        local m = {p = p, at = g.set[pid], i = i}
        if not pred or pred(m) then items[#items + 1] = m end
      end
    end
  end
  local ok
  ok, st, doc = collection.sort(req, items, SORT_KEYS, nil, function(m) return m.i end)
  if not ok then return st, doc end
  local to_resource
  if opts.ids_only then
    to_resource = function(m) return {type = "profile", id = m.p.id} end
  else
    to_resource = function(m) return member_resource(req, m.p, m.at) end
  end
  return jsonapi.page(req, items, to_resource, {default_size = 20})
end

return _M
