-- Lists: CRUD, membership (add/remove at most 1000 profiles per call), members paginated,
-- and the flows a list triggers. Adding a profile to a list never changes its consent;
-- a profile joining a list starts the list's live flows.
local cjson = require("cjson.safe")
local state = require("emulator.state")
local jsonapi = require("emulator.jsonapi")
local collection = require("emulator.collection")
local groups = require("emulator.groups")
local flowrunner = require("emulator.flowrunner")

local null = cjson.null
local type, ipairs, format = type, ipairs, string.format

local MAX_MEMBERS_PER_CALL = 1000
local OPT_IN = {double_opt_in = true, single_opt_in = true}
local LIST_FIELDS = {"name", "created", "updated", "opt_in_process"}

local H = {}

local function not_found(id)
  return jsonapi.not_found(format("A list with id %s does not exist.", tostring(id)))
end

local function list_resource(req, l, fields, extra, include)
  local base = (req.base_url or "") .. "/api/lists/" .. l.id
  local a = {
    name = l.name, created = state.iso(l.created), updated = state.iso(l.updated),
    opt_in_process = l.opt_in_process or null,
  }
  if fields then a = jsonapi.sparse(a, fields) end
  if extra and extra.profile_count then
    a.profile_count = groups.count(req.account.list_members, l.id)
  end
  local rel = {
    profiles = collection.rel_links(base, "profiles"),
    tags = collection.rel_links(base, "tags"),
    ["flow-triggers"] = collection.rel_links(base, "flow-triggers"),
  }
  if include and include["flow-triggers"] then
    local d = {}
    for i, f in ipairs(flowrunner.flows_triggered_by(req.account, "list", l.id)) do
      d[i] = {type = "flow", id = f.id}
    end
    rel["flow-triggers"].data = jsonapi.array(d)
  end
  if include and include.tags then rel.tags.data = jsonapi.array({}) end
  return jsonapi.resource("list", l.id, a, rel, base)
end

-- Flows named by the lists' flow-triggers linkage, once each, for `included`.
local function included_flows(req, lists, include)
  if not include["flow-triggers"] then return nil end
  local fields, st, doc = jsonapi.fields(req, "flow", flowrunner.FLOW_FIELDS)
  if fields == nil then return nil, st, doc end
  local seen, out = {}, {}
  for _, l in ipairs(lists) do
    for _, f in ipairs(flowrunner.flows_triggered_by(req.account, "list", l.id)) do
      if not seen[f.id] then
        seen[f.id] = true
        out[#out + 1] = flowrunner.flow_resource(req, f, fields)
      end
    end
  end
  return out
end

local function check_name(a, required)
  local name = a.name
  if name == nil and not required then return true end
  if type(name) ~= "string" or name:match("^%s*$") then
    return nil, collection.bad("/data/attributes/name", "A list name must be a non-empty string.")
  end
  return true
end

local function check_opt_in(a)
  local v = a.opt_in_process
  if v == nil or v == null or OPT_IN[v] then return true end
  return nil, collection.bad("/data/attributes/opt_in_process",
    "opt_in_process must be 'double_opt_in' or 'single_opt_in'.")
end

function H.create_list(req)
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local a
  a, st, doc = collection.attributes(data, true)
  if not a then return st, doc end
  local ok
  ok, st, doc = check_name(a, true)
  if not ok then return st, doc end
  ok, st, doc = check_opt_in(a)
  if not ok then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "list", LIST_FIELDS)
  if fields == nil then return st, doc end
  local now = state.now()
  local opt = a.opt_in_process
  if opt == nil or opt == null then opt = "single_opt_in" end
  local l = {id = state.new_id(), name = a.name, opt_in_process = opt, created = now, updated = now}
  req.account.lists[l.id] = l
  local r = list_resource(req, l, fields)
  return 201, {data = r, links = {self = r.links.self}}
end

local LIST_FILTER = {
  name = {ops = {"any", "equals"}, type = "string"},
  id = {ops = {"any", "equals"}, type = "string"},
  created = {ops = {"greater-than"}, type = "datetime"},
  updated = {ops = {"greater-than"}, type = "datetime"},
  ["and"] = true,
}
local LIST_SORT = {
  created = function(l) return l.created end, id = function(l) return l.id end,
  name = function(l) return l.name end, updated = function(l) return l.updated end,
}

function H.get_lists(req)
  local pred, st, doc = collection.filter(req, LIST_FILTER)
  if pred == nil then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "list", LIST_FIELDS)
  if fields == nil then return st, doc end
  local include
  include, st, doc = collection.includes(req, {"flow-triggers", "tags"})
  if not include then return st, doc end
  local items = {}
  for _, l in pairs(req.account.lists) do
    if not pred or pred(l) then items[#items + 1] = l end
  end
  local ok
  ok, st, doc = collection.sort(req, items, LIST_SORT)
  if not ok then return st, doc end
  -- included flows belong to the page shown, so page first, then collect them.
  local shown = {}
  local status, out = jsonapi.page(req, items, function(l)
    shown[#shown + 1] = l
    return list_resource(req, l, fields, nil, include)
  end, {default_size = 10})
  if status ~= 200 then return status, out end
  local inc
  inc, st, doc = included_flows(req, shown, include)
  if st then return st, doc end
  if inc then out.included = jsonapi.array(inc) end
  return 200, out
end

function H.get_list(req)
  local l = req.account.lists[req.params.id]
  if not l then return not_found(req.params.id) end
  local fields, st, doc = jsonapi.fields(req, "list", LIST_FIELDS)
  if fields == nil then return st, doc end
  local extra
  extra, st, doc = collection.additional(req, "list", {"profile_count"})
  if not extra then return st, doc end
  local include
  include, st, doc = collection.includes(req, {"flow-triggers", "tags"})
  if not include then return st, doc end
  local r = list_resource(req, l, fields, extra, include)
  local out = {data = r, links = {self = r.links.self}}
  local inc
  inc, st, doc = included_flows(req, {l}, include)
  if st then return st, doc end
  if inc then out.included = jsonapi.array(inc) end
  return 200, out
end

function H.update_list(req)
  local id = req.params.id
  local l = req.account.lists[id]
  if not l then return not_found(id) end
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  if data.id ~= id then
    return collection.bad("/data/id", "The id in the body must match the list id in the path.")
  end
  local a
  a, st, doc = collection.attributes(data, true)
  if not a then return st, doc end
  local ok
  ok, st, doc = check_name(a, false)
  if not ok then return st, doc end
  ok, st, doc = check_opt_in(a)
  if not ok then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "list", LIST_FIELDS)
  if fields == nil then return st, doc end
  if a.name ~= nil then l.name = a.name end
  if a.opt_in_process ~= nil and a.opt_in_process ~= null then l.opt_in_process = a.opt_in_process end
  l.updated = state.now()
  local r = list_resource(req, l, fields)
  return 200, {data = r, links = {self = r.links.self}}
end

function H.delete_list(req)
  local id = req.params.id
  local acct = req.account
  if not acct.lists[id] then return not_found(id) end
  acct.lists[id] = nil
  acct.list_members[id] = nil
  return 204, nil
end

-- The profile ids of a membership body, each checked: at most 1000, every id a known
-- profile. One bad item rejects the whole request, its pointer naming it.
local function member_ids(req)
  local data, st, doc = collection.data(req, "array")
  if not data then return nil, st, doc end
  if #data > MAX_MEMBERS_PER_CALL then
    return nil, collection.bad("/data", format(
      "At most %d profiles may be given per request; got %d.", MAX_MEMBERS_PER_CALL, #data))
  end
  local ids, profiles = {}, req.account.profiles
  for i, item in ipairs(data) do
    local ptr = "/data/" .. (i - 1)
    if type(item) ~= "table" or item.type ~= "profile" then
      return nil, collection.bad(ptr .. "/type", "Each item must be of type 'profile'.")
    end
    if type(item.id) ~= "string" or item.id == "" then
      return nil, collection.bad(ptr .. "/id", "Each profile needs an 'id'.")
    end
    if not profiles[item.id] then
      return nil, collection.bad(ptr .. "/id", format("Profile %s does not exist.", item.id))
    end
    ids[i] = item.id
  end
  return ids
end

function H.add_profiles_to_list(req)
  local acct, id = req.account, req.params.id
  if not acct.lists[id] then return not_found(id) end
  local ids, st, doc = member_ids(req)
  if not ids then return st, doc end
  for _, pid in ipairs(ids) do
    if groups.join(acct.list_members, id, pid) then flowrunner.on_list_join(acct, id, pid) end
  end
  return 204, nil
end

function H.remove_profiles_from_list(req)
  local acct, id = req.account, req.params.id
  if not acct.lists[id] then return not_found(id) end
  local ids, st, doc = member_ids(req)
  if not ids then return st, doc end
  groups.leave(acct.list_members, id, ids)
  return 204, nil
end

function H.get_profiles_for_list(req)
  local acct, id = req.account, req.params.id
  if not acct.lists[id] then return not_found(id) end
  return groups.members(req, acct.list_members, id, {kind = "list"})
end

function H.get_profile_ids_for_list(req)
  local acct, id = req.account, req.params.id
  if not acct.lists[id] then return not_found(id) end
  return groups.members(req, acct.list_members, id, {kind = "list", ids_only = true})
end

function H.get_flows_triggered_by_list(req)
  local acct, id = req.account, req.params.id
  if not acct.lists[id] then return not_found(id) end
  local fields, st, doc = jsonapi.fields(req, "flow", flowrunner.FLOW_FIELDS)
  if fields == nil then return st, doc end
  local d = {}
  for i, f in ipairs(flowrunner.flows_triggered_by(acct, "list", id)) do
    d[i] = flowrunner.flow_resource(req, f, fields)
  end
  return 200, {data = jsonapi.array(d), links = {self = jsonapi.url(req, collection.path(req), req.query)}}
end

function H.get_ids_for_flows_triggered_by_list(req)
  local acct, id = req.account, req.params.id
  if not acct.lists[id] then return not_found(id) end
  local d = {}
  for i, f in ipairs(flowrunner.flows_triggered_by(acct, "list", id)) do
    d[i] = {type = "flow", id = f.id}
  end
  return 200, {data = jsonapi.array(d), links = {self = jsonapi.url(req, collection.path(req), req.query)}}
end

-- The lists a profile belongs to (no pagination in the spec).
local function profile_lists(req)
  local acct, pid = req.account, req.params.id
  if not acct.profiles[pid] then
    return nil, jsonapi.not_found(format("A profile with id %s does not exist.", tostring(pid)))
  end
  local out = {}
  for _, lid in ipairs(groups.groups_of(acct.list_members, pid)) do
    if acct.lists[lid] then out[#out + 1] = acct.lists[lid] end
  end
  return out
end

function H.get_lists_for_profile(req)
  local lists, st, doc = profile_lists(req)
  if not lists then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "list", LIST_FIELDS)
  if fields == nil then return st, doc end
  local d = {}
  for i, l in ipairs(lists) do d[i] = list_resource(req, l, fields) end
  return 200, {data = jsonapi.array(d), links = {self = jsonapi.url(req, collection.path(req), req.query)}}
end

function H.get_list_ids_for_profile(req)
  local lists, st, doc = profile_lists(req)
  if not lists then return st, doc end
  local d = {}
  for i, l in ipairs(lists) do d[i] = {type = "list", id = l.id} end
  return 200, {data = jsonapi.array(d), links = {self = jsonapi.url(req, collection.path(req), req.query)}}
end

return H
