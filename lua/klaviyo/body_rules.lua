--- klaviyo.body_rules: what Klaviyo documents beyond its schemas for a request body (a profile
-- needs an identifier, events stay within the ingestion limits and Klaviyo's time window, bulk
-- requests within their sizes), per operation, built from the checks of klaviyo.validate that
-- the idiomatic modules use. klaviyo.body_check runs it on a body the generated schema check
-- accepted, so the members a rule reads are there and of their types.
-- @module klaviyo.body_rules
local V = require "klaviyo.validate"

local type, format = type, string.format
local LIMITS, value = V.LIMITS, V.value

local _M = {}

-- The identifiers of a JSON:API profile resource `data` (its id, its attributes' email,
-- phone_number, external_id) at pointer `at`: nil, or pointer, expected, given.
local function resource_identity(data, at, given)
  local a = type(data) == "table" and data.attributes
  if type(a) ~= "table" then return nil end
  local flat = a   -- the attributes name the identifiers as a flat profile does, id apart
  if data.id ~= nil or a.id ~= nil then
    flat = { id = data.id, email = a.email, phone_number = a.phone_number,
             external_id = a.external_id }
  end
  local ok, msg, ptr = V.profile_identity(flat, "")
  if ok then return nil end
  if ptr == "" then
    return at .. "/attributes", "at least one identifier (id, email, phone_number or external_id)",
      "none"
  end
  local k = ptr:sub(2)
  local expected = k == "email" and "an email address" or k == "phone_number" and
    "a phone number in E.164 (e.g. +15005550006)" or "a non-empty string"
  return k == "id" and at .. "/id" or at .. "/attributes/" .. k, expected, given(flat[k]), msg
end

-- An event's attributes at `at`: its properties within the ingestion limits, its time within
-- Klaviyo's window.
local function event_rules(a, at, given, profile)
  if profile then
    local p, e, g = resource_identity(a.profile.data, at .. "/profile/data", given)
    if p then return p, e, g end
  end
  local props = a.properties
  if props ~= nil then
    local size, msg, ptr = V.properties(props, at .. "/properties")
    if not size then return ptr, "a value within Klaviyo's ingestion limits", msg end
  end
  local t = a.time
  if type(t) == "string" then
    local ok, msg = V.event_time(t)
    if not ok then return at .. "/time", "a time after 1990 and at most a year ahead", msg end
  end
  return nil
end

-- At most n items in list at `at`.
local function at_most(list, n, at, what)
  if #list > n then
    return at, format("at most %d %s", n, what), format("%d %s", #list, what)
  end
end

-- The whole body's encoded size (`bytes` when the caller gave JSON text) within max bytes.
local function payload(body, max, bytes)
  local size, msg, ptr = bytes, nil, nil
  if not size then size, msg, ptr = value(body) end
  if not size then return ptr, "a value JSON can hold", msg end
  if size > max then
    return "", format("a body of at most %d bytes", max), format("%d bytes", size)
  end
end

-- Per operation: the rules Klaviyo documents beyond the schema, run on a body the schema
-- check already accepted (so the members they read are there and of their types).
local BODY = {
  create_event = function(b, given)
    return event_rules(b.data.attributes, "/data/attributes", given, true)
  end,
  create_client_event = function(b, given)
    return event_rules(b.data.attributes, "/data/attributes", given, true)
  end,
  bulk_create_events = function(b, given, bytes)
    local at = "/data/attributes/events-bulk-create/data"
    local entries = b.data.attributes["events-bulk-create"].data
    local total = 0
    for i = 1, #entries do
      local ea = entries[i].attributes
      local eat = at .. "/" .. (i - 1) .. "/attributes"
      local p, e, g = resource_identity(ea.profile.data, eat .. "/profile/data", given)
      if p then return p, e, g end
      local evs = ea.events.data
      total = total + #evs
      if total > LIMITS.bulk_events then
        return eat .. "/events/data", format("at most %d events in one request", LIMITS.bulk_events),
          format("%d or more events", total)
      end
      for j = 1, #evs do
        p, e, g = event_rules(evs[j].attributes, eat .. "/events/data/" .. (j - 1) .. "/attributes",
          given, false)
        if p then return p, e, g end
      end
    end
    return payload(b, LIMITS.payload_bytes, bytes)
  end,
  create_profile = function(b, given)
    return resource_identity(b.data, "/data", given)
  end,
  create_client_profile = function(b, given)
    return resource_identity(b.data, "/data", given)
  end,
  create_or_update_profile = function(b, given, bytes)
    local p, e, g = resource_identity(b.data, "/data", given)
    if p then return p, e, g end
    return payload(b, LIMITS.profile_bytes, bytes)
  end,
  bulk_import_profiles = function(b, given, bytes)
    local at = "/data/attributes/profiles/data"
    local list = b.data.attributes.profiles.data
    local p, e, g = at_most(list, LIMITS.bulk_profiles, at, "profiles")
    if p then return p, e, g end
    for i = 1, #list do
      p, e, g = resource_identity(list[i], at .. "/" .. (i - 1), given)
      if p then return p, e, g end
    end
    return payload(b, LIMITS.payload_bytes, bytes)
  end,
  add_profiles_to_list = function(b)
    return at_most(b.data, LIMITS.list_members, "/data", "profiles")
  end,
  remove_profiles_from_list = function(b)
    return at_most(b.data, LIMITS.list_members, "/data", "profiles")
  end,
}

--- The rules Klaviyo documents beyond its schemas for the body of op_id (a profile needs an
-- identifier, the ingestion limits, bulk sizes), on a body the generated schema check accepted.
-- `given(v)` words a value for the message (klaviyo.body_check passes its own); `bytes` is the
-- body's size when it was given as JSON text.
---@param op_id string
---@param body table the decoded body
---@param given fun(v: any): string
---@param bytes integer?
---@return string? pointer JSON pointer of the first problem (nil when none)
---@return string? expected
---@return string? given
function _M.check(op_id, body, given, bytes)
  local rule = BODY[op_id]
  if rule == nil then return nil end
  return rule(body, given, bytes)
end

return _M
