-- Client (browser/mobile) endpoints under /client/, authenticated by the public key in
-- `company_id` (the server has checked it): create_client_event (the same ingestion as
-- create_event), create_client_profile (create or update, never changing an existing
-- profile's identifiers, as Klaviyo documents), create_client_subscription (consent
-- plus list membership) and bulk_create_client_events. All answer 202 with no body.
local cjson = require("cjson.safe")
local state = require("emulator.state")
local collection = require("emulator.collection")
local jsonapi = require("emulator.jsonapi")
local consent = require("emulator.consent")
local events = require("emulator.handlers.events")
local subscriptions = require("emulator.handlers.subscriptions")

local null = cjson.null
local type, pairs, format, tostring = type, pairs, string.format, tostring

local H = {}

local function present(v) return v ~= nil and v ~= null end

local STRING_ATTRS = {
  email = true, phone_number = true, external_id = true, anonymous_id = true, _kx = true,
  first_name = true, last_name = true, organization = true, locale = true, title = true,
  image = true,
}
local OBJECT_ATTRS = {location = true, properties = true}

-- Profile attributes a client may send, checked; returns a flat copy or nil, status, doc.
local function profile_attrs(a, ptr)
  if type(a) ~= "table" then
    return nil, collection.bad(ptr, "Profile 'attributes' must be an object.")
  end
  local out = {}
  for k, v in pairs(a) do
    if STRING_ATTRS[k] then
      if v ~= null and type(v) ~= "string" then
        return nil, collection.bad(ptr .. "/" .. k, format("'%s' must be a string.", k))
      end
    elseif OBJECT_ATTRS[k] then
      if v ~= null and (type(v) ~= "table" or v[1] ~= nil) then
        return nil, collection.bad(ptr .. "/" .. k, format("'%s' must be an object.", k))
      end
    elseif k ~= "subscriptions" then
      return nil, collection.bad(ptr .. "/" .. k, format("'%s' is not a profile attribute.", k))
    end
    if k ~= "subscriptions" and k ~= "anonymous_id" and k ~= "_kx" then out[k] = v end
  end
  return out
end

-- The profile identified by id or identifiers; created when none matches. With
-- `keep_identifiers`, an existing profile's identifiers are left as they are.
local function client_upsert(acct, id, attrs, keep_identifiers)
  local p
  if present(id) then p = acct.profiles[id] end
  if not p then p = state.find_profile(acct, attrs) end
  if not p then return state.create_profile(acct, attrs) end
  local apply = {}
  for k, v in pairs(attrs) do
    local ident = k == "email" or k == "phone_number" or k == "external_id"
    if ident then
      local owner = type(v) == "string" and acct.profile_index[k][v]
      -- identifiers never move away from another profile, nor change when asked to keep
      if not keep_identifiers and v ~= null and (not owner or owner == p.id) then apply[k] = v end
    else
      apply[k] = v
    end
  end
  state.apply_profile_attributes(acct, p, apply)
  return p
end

function H.create_client_event(req)
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  return events.record(req.account, data.attributes)
end

local MAX_BULK_EVENTS = 1000

-- Up to 1000 events of one profile. Every event is validated before any is stored, so one
-- bad event rejects the request (its pointer naming it) and nothing is half-recorded.
function H.bulk_create_client_events(req)
  local acct = req.account
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local a = jsonapi.attributes(data)
  local pdata = type(a.profile) == "table" and a.profile.data or nil
  local evs = type(a.events) == "table" and a.events.data or nil
  local base = "/data/attributes/events/data"
  if type(evs) ~= "table" or evs[1] == nil then
    return collection.bad(base, "'events.data' must be a non-empty array.")
  end
  if #evs > MAX_BULK_EVENTS then
    return collection.bad(base, format("At most %d events may be sent per request; got %d.",
      MAX_BULK_EVENTS, #evs))
  end
  local backfill = a.backfill
  if backfill ~= nil and backfill ~= null and type(backfill) ~= "boolean" then
    return collection.bad("/data/attributes/backfill", "'backfill' must be a boolean.")
  end
  local now = state.now()
  local specs = {}
  for i, ev in ipairs(evs) do
    local ptr = format("%s/%d", base, i - 1)
    if type(ev) ~= "table" or ev.type ~= "event" then
      return collection.bad(ptr .. "/type", "Each event must be an 'event' resource.")
    end
    local attrs = ev.attributes
    if type(attrs) == "table" and attrs.backfill == nil and type(backfill) == "boolean" then
      attrs.backfill = backfill
    end
    local spec
    spec, st, doc = events.validate_event(attrs, ptr .. "/attributes", pdata,
      "/data/attributes/profile/data", now)
    if not spec then return st, doc end
    if spec.profile_id and not acct.profiles[spec.profile_id] then
      return collection.bad("/data/attributes/profile/data/id",
        format("Profile '%s' does not exist.", tostring(spec.profile_id)))
    end
    specs[i] = spec
  end
  for _, spec in ipairs(specs) do events.store_event(acct, spec, now) end
  return 202, nil
end

function H.create_client_profile(req)
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local attrs
  attrs, st, doc = profile_attrs(data.attributes, "/data/attributes")
  if not attrs then return st, doc end
  st, doc = events.check_identifiers(attrs, "/data", data.id, true)
  if st then return st, doc end
  if present(data.id) and not req.account.profiles[data.id] then
    return collection.bad("/data/id", format("Profile %s does not exist.", tostring(data.id)))
  end
  client_upsert(req.account, data.id, attrs, true)
  return 202, nil
end

function H.create_client_subscription(req)
  local acct = req.account
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local list
  list, st, doc = subscriptions.related_list(req, data, true)
  if not list then return st, doc end
  local a = jsonapi.attributes(data)
  local pdata = type(a.profile) == "table" and a.profile.data
  if type(pdata) ~= "table" then
    return collection.bad("/data/attributes/profile/data", "'profile.data' is required.")
  end
  local ptr = "/data/attributes/profile/data"
  local attrs
  attrs, st, doc = profile_attrs(pdata.attributes, ptr .. "/attributes")
  if not attrs then return st, doc end
  st, doc = events.check_identifiers(attrs, ptr, nil, false)
  if st then return st, doc end
  if not present(attrs.email) and not present(attrs.phone_number) then
    return collection.bad(ptr .. "/attributes", "Either email or phone_number is required.")
  end
  -- Without a subscriptions object, every identifier given subscribes its marketing channel.
  local asked = pdata.attributes.subscriptions
  if not present(asked) then
    asked = {}
    if present(attrs.email) then asked.email = {marketing = {consent = "SUBSCRIBED"}} end
    if present(attrs.phone_number) then asked.sms = {marketing = {consent = "SUBSCRIBED"}} end
  end
  local chans
  chans, st, doc = consent.requested(asked, attrs, nil, ptr .. "/attributes/subscriptions",
    "SUBSCRIBED", false)
  if not chans then return st, doc end
  local p = client_upsert(acct, pdata.id, attrs, false)
  -- A double opt-in list waits for a confirmation the emulator never receives.
  if list.opt_in_process == "double_opt_in" then return 202, nil end
  subscriptions.subscribe_to_list(acct, p, chans, list, a.custom_source, false)
  return 202, nil
end

-- Same rules as the server endpoint (subscriptions.lua).
function H.create_client_back_in_stock_subscription(req)
  return subscriptions.back_in_stock(req)
end

return H
