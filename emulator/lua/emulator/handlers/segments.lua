-- Segments, read side. Klaviyo computes segment membership from conditions; the emulator
-- has no condition engine, so segments and their members are stated by the admin API
-- (`POST /__emulator/segments`, flowrunner.define_segment) and read here like Klaviyo's.
local cjson = require("cjson.safe")
local state = require("emulator.state")
local jsonapi = require("emulator.jsonapi")
local collection = require("emulator.collection")
local shared = require("emulator.group_handlers")

local null = cjson.null
local type, ipairs = type, ipairs


local H = {}

local function segment_attributes(s, fields)
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
  return a
end

local SEGMENT = {
  type = "segment", store = "segments", members = "segment_members",
  attributes = segment_attributes, filter = shared.base_filter(), sort = shared.SORT,
}
SEGMENT.filter.is_active = {get = function(s) return s.is_active ~= false end}
SEGMENT.filter.is_starred = {get = function(s) return s.is_starred or false end}

local function not_found(id) return shared.not_found(SEGMENT, id) end

function H.get_segments(req) return shared.get_all(req, SEGMENT) end

function H.get_segment(req) return shared.get_one(req, SEGMENT) end

function H.get_profiles_for_segment(req) return shared.members(req, SEGMENT, false) end

function H.get_profile_ids_for_segment(req) return shared.members(req, SEGMENT, true) end

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
  fields, st, doc = jsonapi.fields(req, "segment")
  if fields == nil then return st, doc end
  if a.name ~= nil then s.name = a.name end
  if type(a.is_starred) == "boolean" then s.is_starred = a.is_starred end
  if type(a.is_active) == "boolean" then s.is_active = a.is_active end
  s.updated = state.now()
  local r = shared.resource(req, SEGMENT, s, fields)
  return 200, {data = r, links = {self = r.links.self}}
end

function H.delete_segment(req) return shared.delete(req, SEGMENT) end

function H.get_flows_triggered_by_segment(req) return shared.flows(req, SEGMENT, false) end

function H.get_ids_for_flows_triggered_by_segment(req) return shared.flows(req, SEGMENT, true) end

function H.get_segments_for_profile(req) return shared.of_profile(req, SEGMENT, false) end

function H.get_segment_ids_for_profile(req) return shared.of_profile(req, SEGMENT, true) end

return H
