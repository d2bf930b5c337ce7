-- Lists: CRUD, membership (add/remove at most 1000 profiles per call), members paginated,
-- and the flows a list triggers. Adding a profile to a list never changes its consent;
-- a profile joining a list starts the list's live flows.
local cjson = require("cjson.safe")
local state = require("emulator.state")
local jsonapi = require("emulator.jsonapi")
local collection = require("emulator.collection")
local groups = require("emulator.groups")
local flowrunner = require("emulator.flowrunner")
local shared = require("emulator.group_handlers")

local null = cjson.null
local type, ipairs, format = type, ipairs, string.format

local MAX_MEMBERS_PER_CALL = 1000
local OPT_IN = {double_opt_in = true, single_opt_in = true}

local H = {}

local function list_attributes(l, fields)
  local a = {
    name = l.name, created = state.iso(l.created), updated = state.iso(l.updated),
    opt_in_process = l.opt_in_process or null,
  }
  if fields then a = jsonapi.sparse(a, fields) end
  return a
end

local LIST = {
  type = "list", store = "lists", members = "list_members",
  attributes = list_attributes,
  filter = shared.base_filter(), sort = shared.SORT,
}

local function not_found(id) return shared.not_found(LIST, id) end

local function list_resource(req, l, fields)
  return shared.resource(req, LIST, l, fields)
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

-- The checked attributes of a create or update body, and fields[list]; or nil, status, doc.
local function checked_attributes(req, data, name_required)
  local a, st, doc = collection.attributes(data, true)
  if not a then return nil, st, doc end
  local ok
  ok, st, doc = check_name(a, name_required)
  if not ok then return nil, st, doc end
  ok, st, doc = check_opt_in(a)
  if not ok then return nil, st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "list")
  if fields == nil then return nil, st, doc end
  return a, fields
end

function H.create_list(req)
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local a, fields
  a, fields, doc = checked_attributes(req, data, true)
  if not a then return fields, doc end -- on failure: nil, status, doc
  local now = state.now()
  local opt = a.opt_in_process
  if opt == nil or opt == null then opt = "single_opt_in" end
  local l = {id = state.new_id(), name = a.name, opt_in_process = opt, created = now, updated = now}
  req.account.lists[l.id] = l
  local r = list_resource(req, l, fields)
  return 201, {data = r, links = {self = r.links.self}}
end

function H.get_lists(req) return shared.get_all(req, LIST) end

function H.get_list(req) return shared.get_one(req, LIST) end

function H.update_list(req)
  local id = req.params.id
  local l = req.account.lists[id]
  if not l then return not_found(id) end
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  if data.id ~= id then
    return collection.bad("/data/id", "The id in the body must match the list id in the path.")
  end
  local a, fields
  a, fields, doc = checked_attributes(req, data, false)
  if not a then return fields, doc end -- on failure: nil, status, doc
  if a.name ~= nil then l.name = a.name end
  if a.opt_in_process ~= nil and a.opt_in_process ~= null then l.opt_in_process = a.opt_in_process end
  l.updated = state.now()
  local r = list_resource(req, l, fields)
  return 200, {data = r, links = {self = r.links.self}}
end

function H.delete_list(req) return shared.delete(req, LIST) end

-- The profile ids of a membership body for the list in the path, each checked: at most
-- 1000, every id a known profile. One bad item rejects the whole request, its pointer
-- naming it.
local function member_ids(req)
  if not req.account.lists[req.params.id] then return nil, not_found(req.params.id) end
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
  local ids, st, doc = member_ids(req)
  if not ids then return st, doc end
  for _, pid in ipairs(ids) do
    if groups.join(acct.list_members, id, pid) then flowrunner.on_list_join(acct, id, pid) end
  end
  return 204, nil
end

function H.remove_profiles_from_list(req)
  local acct, id = req.account, req.params.id
  local ids, st, doc = member_ids(req)
  if not ids then return st, doc end
  groups.leave(acct.list_members, id, ids)
  return 204, nil
end

function H.get_profiles_for_list(req) return shared.members(req, LIST, false) end

function H.get_profile_ids_for_list(req) return shared.members(req, LIST, true) end

function H.get_flows_triggered_by_list(req) return shared.flows(req, LIST, false) end

function H.get_ids_for_flows_triggered_by_list(req) return shared.flows(req, LIST, true) end

function H.get_lists_for_profile(req) return shared.of_profile(req, LIST, false) end

function H.get_list_ids_for_profile(req) return shared.of_profile(req, LIST, true) end

return H
