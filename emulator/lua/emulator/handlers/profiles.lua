-- Profiles: create (409 duplicate_profile), get, get_profiles (filters on the
-- identifiers, pagination, sparse fields, subscriptions), update,
-- create_or_update (201/200, null clears) and merge. `resource` and `upsert`
-- are exported for the list, segment and client handlers.
local cjson = require "cjson.safe"
local state = require "emulator.state"
local jsonapi = require "emulator.jsonapi"
local filter = require "emulator.filter"
local events = require "emulator.handlers.events"

local null = cjson.null
local type, pairs, ipairs, tostring, format = type, pairs, ipairs, tostring, string.format

local consent = require "emulator.consent"
local flowrunner = require "emulator.flowrunner"

local M = {}

local STRING_ATTRS = { "email", "phone_number", "external_id", "first_name", "last_name",
                       "organization", "locale", "title", "image" }
local LOCATION_KEYS = { "address1", "address2", "city", "country", "latitude", "longitude",
                        "region", "zip", "timezone", "ip" }
local WRITABLE = { location = "object", properties = "object", _kx = "string", anonymous_id = "string" }
for _, k in ipairs(STRING_ATTRS) do WRITABLE[k] = "string" end
local LOCATION = {}
for _, k in ipairs(LOCATION_KEYS) do LOCATION[k] = true end

local MAX_PROFILE_PAYLOAD = 100 * 1024

local function invalid(detail, pointer)
  return jsonapi.invalid(detail, pointer and { pointer = pointer } or nil)
end

local function duplicate(other)
  return jsonapi.error(409, "duplicate_profile", "Conflict.",
    "A profile already exists with one of these identifiers.", { pointer = "/data/attributes" },
    { duplicate_profile_id = other.id })
end

--- Validates profile attributes (data.attributes). Returns a flat table of
-- the attributes to apply (cjson.null kept: it clears), or nil, status, doc.
function M.validate(attrs, pointer, id, need_identifier)
  pointer = pointer or "/data"
  if attrs == nil or attrs == null then attrs = {} end
  if type(attrs) ~= "table" then
    return nil, invalid("'attributes' must be an object.", pointer .. "/attributes")
  end
  local out = {}
  for k, v in pairs(attrs) do
    local kind = WRITABLE[k]
    if not kind then
      return nil, invalid(format("'%s' is not a valid profile attribute.", tostring(k)),
        pointer .. "/attributes/" .. tostring(k))
    end
    if v ~= null then
      if kind == "string" and type(v) ~= "string" then
        return nil, invalid(format("'%s' must be a string.", k), pointer .. "/attributes/" .. k)
      end
      if kind == "object" and (type(v) ~= "table" or v[1] ~= nil) then
        return nil, invalid(format("'%s' must be an object.", k), pointer .. "/attributes/" .. k)
      end
      if k == "location" then
        for lk, lv in pairs(v) do
          if not LOCATION[lk] then
            return nil, invalid(format("'%s' is not a valid location field.", tostring(lk)),
              pointer .. "/attributes/location/" .. tostring(lk))
          end
          local coord = (lk == "latitude" or lk == "longitude") and type(lv) == "number"
          if lv ~= null and type(lv) ~= "string" and not coord then
            return nil, invalid(format("location '%s' must be a string.", lk),
              pointer .. "/attributes/location/" .. lk)
          end
        end
      end
    end
    if k ~= "_kx" and k ~= "anonymous_id" then out[k] = v end
  end
  local st, doc = events.check_identifiers(attrs, pointer, id, need_identifier)
  if st then return nil, st, doc end
  return out
end

--- Validated upsert (create_or_update semantics). Returns profile, created or
-- nil, status, doc.
function M.upsert(acct, attrs, id, pointer)
  local clean, st, doc = M.validate(attrs, pointer, id, id == nil or id == null)
  if not clean then return nil, st, doc end
  if id ~= nil and id ~= null then clean.id = id end
  local p, created, other = state.upsert_profile(acct, clean)
  if p then return p, created end
  if created == "conflict" then return nil, duplicate(other) end
  return nil, jsonapi.not_found(format("Profile '%s' not found.", tostring(id)))
end

---------------------------------------------------------------- serializer

local function value(v) if v == nil then return null end return v end

local function attributes(p, extra)
  local loc = {}
  local pl = p.location or {}
  for _, k in ipairs(LOCATION_KEYS) do loc[k] = value(pl[k]) end
  local a = {
    created = state.iso(p.created), updated = state.iso(p.updated),
    last_event_date = p.last_event_time and state.iso(p.last_event_time) or null,
    location = loc, properties = p.properties or {},
  }
  for _, k in ipairs(STRING_ATTRS) do a[k] = value(p[k]) end
  if extra then for k, v in pairs(extra) do a[k] = v end end
  return a
end

local function rel_links(req, base, name)
  return { links = { self = req.base_url .. base .. "/relationships/" .. name,
                     related = req.base_url .. base .. "/" .. name } }
end

--- Resource for a profile as the read endpoints show it, honouring
-- fields[profile] and additional-fields[profile] of req. `extra` attributes
-- (e.g. joined_group_at) are merged in. opts.plain: no relationships.
function M.resource(req, p, extra, opts)
  local a = attributes(p, extra)
  local add = req.query and jsonapi.additional(req, "profile") or {}
  if add.subscriptions then
    a.subscriptions = consent.view(p) or p.subscriptions or null
  end
  if add.predictive_analytics then a.predictive_analytics = null end
  local fields = req.query and req.query["fields[profile]"] and jsonapi.fields(req, "profile")
  if fields then a = jsonapi.sparse(a, fields) end
  local base = "/api/profiles/" .. p.id
  local rels
  if not (opts and opts.plain) then
    rels = { lists = rel_links(req, base, "lists"), segments = rel_links(req, base, "segments"),
             ["push-tokens"] = rel_links(req, base, "push-tokens") }
  end
  return jsonapi.resource("profile", p.id, a, rels, req.base_url .. base)
end

local function check_fields(req)
  local f, st, doc = jsonapi.fields(req, "profile")
  if f == nil then return st, doc end
  local raw = req.query["additional-fields[profile]"]
  if raw then
    for _, v in ipairs(jsonapi.split(raw)) do
      if v ~= "subscriptions" and v ~= "predictive_analytics" then
        return jsonapi.invalid(format("'%s' is not a valid additional field for profiles.", v),
          { parameter = "additional-fields[profile]" })
      end
    end
  end
  return nil
end

local function single(req, p, status)
  return status or 200,
    { data = M.resource(req, p), links = { self = req.base_url .. "/api/profiles/" .. p.id } }
end

---------------------------------------------------------------- operations

local function too_big(req)
  if req.body_size and req.body_size > MAX_PROFILE_PAYLOAD then
    return invalid("A profile payload may not be larger than 100 KB.", "/data")
  end
end

M.create_profile = function(req)
  local st, doc = too_big(req)
  if st then return st, doc end
  local acct, data = req.account, req.body.data
  local clean
  clean, st, doc = M.validate(data.attributes, "/data", nil, true)
  if not clean then return st, doc end
  local other = state.conflicting_profile(acct, clean)
  if other then return duplicate(other) end
  local p = state.create_profile(acct, clean)
  return single(req, p, 201)
end

M.get_profile = function(req)
  local st, doc = check_fields(req)
  if st then return st, doc end
  local p
  p, st, doc = jsonapi.lookup(req.account.profiles, req.params.id, "Profile")
  if not p then return st, doc end
  if req.query.include then
    for _, v in ipairs(jsonapi.split(req.query.include)) do
      if v ~= "lists" and v ~= "segments" and v ~= "push-tokens" and v ~= "conversation" then
        return jsonapi.invalid(format("'%s' is not a valid include for profiles.", v),
          { parameter = "include" })
      end
    end
  end
  return single(req, p)
end

local function ident_get(field)
  return function(p) return p[field] end
end

local PROFILE_FILTER = {
  id = { type = "string" },
  email = { type = "string" },
  phone_number = { type = "string" },
  external_id = { type = "string" },
  _kx = { type = "string", get = ident_get("_kx") },
  created = { type = "datetime",
              get = function(p) return p.created end },
  updated = { type = "datetime",
              get = function(p) return p.updated end },
  ["and"] = true,
}
-- The email marketing suppressions (list-level and account-level) a profile has: a leaf on
-- one of their keys holds when it holds for any of them (each = true).
local function suppressions(kind, key, as_time)
  return { each = true, type = as_time and "datetime" or "string", get = function(p)
    local m = p.subscriptions and p.subscriptions.email and p.subscriptions.email.marketing
    local out = {}
    for i, s in ipairs(m and m[kind] or {}) do
      out[i] = as_time and filter.parse_datetime(s[key]) or s[key]
    end
    return out
  end }
end
local SUPPRESSION = "subscriptions.email.marketing."
PROFILE_FILTER[SUPPRESSION .. "list_suppressions.reason"] = suppressions("list_suppressions", "reason")
PROFILE_FILTER[SUPPRESSION .. "list_suppressions.list_id"] = suppressions("list_suppressions", "list_id")
PROFILE_FILTER[SUPPRESSION .. "list_suppressions.timestamp"] =
  suppressions("list_suppressions", "timestamp", true)
PROFILE_FILTER[SUPPRESSION .. "suppression.reason"] = suppressions("suppression", "reason")
PROFILE_FILTER[SUPPRESSION .. "suppression.timestamp"] = suppressions("suppression", "timestamp", true)

-- Sort keys: getters. A profile sorts by its first suppression's time on those keys (none: last).
local function key_of(k) return function(p) return p[k] end end
local function first_suppression(kind)
  local times = suppressions(kind, "timestamp", true).get
  return function(p) return times(p)[1] end
end
local SORTS = { id = key_of("id"), created = key_of("created"), updated = key_of("updated"),
  email = key_of("email"),
  [SUPPRESSION .. "list_suppressions.timestamp"] = first_suppression("list_suppressions"),
  [SUPPRESSION .. "suppression.timestamp"] = first_suppression("suppression") }

M.get_profiles = function(req)
  local st, doc = check_fields(req)
  if st then return st, doc end
  local acct = req.account
  local pred, leaves
  if req.query.filter then
    pred, leaves = filter.compile(req.query.filter, PROFILE_FILTER)
    if not pred then return jsonapi.invalid(leaves, { parameter = "filter" }) end
  end
  local sort = req.query.sort
  local key, desc
  if sort then
    desc = sort:sub(1, 1) == "-"
    key = SORTS[desc and sort:sub(2) or sort]
    if not key then
      return jsonapi.invalid(format("'%s' is not a valid sort for profiles.", sort), { parameter = "sort" })
    end
  end
  local items = {}
  -- One equals() on an identifier: use the index instead of scanning.
  local leaf = leaves and #leaves == 1 and leaves[1]
  if leaf and leaf.op == "equals" and (leaf.field == "id" or acct.profile_index[leaf.field]) then
    local p
    if leaf.field == "id" then p = acct.profiles[leaf.value]
    else p = acct.profiles[acct.profile_index[leaf.field][leaf.value] or ""] end
    if p then items[1] = p end
  else
    for _, id in ipairs(acct.profile_order) do
      local p = acct.profiles[id]
      if p and (not pred or pred(p)) then items[#items + 1] = p end
    end
  end
  if key then
    table.sort(items, function(a, b)
      local x, y = key(a), key(b)
      if x == y then return a.id < b.id end
      if x == nil then return not desc end
      if y == nil then return desc end
      if desc then return x > y end
      return x < y
    end)
  end
  return jsonapi.page(req, items, function(p) return M.resource(req, p) end)
end

-- meta.patch_properties: unset (string or array of keys), append/unappend (key -> value).
local function patch_properties(p, meta)
  local pp = type(meta) == "table" and meta.patch_properties
  if type(pp) ~= "table" then return end
  p.properties = p.properties or {}
  local props = p.properties
  local unset = pp.unset
  if type(unset) == "string" then unset = { unset } end
  if type(unset) == "table" then for _, k in ipairs(unset) do props[k] = nil end end
  if type(pp.append) == "table" then
    for k, v in pairs(pp.append) do
      local cur = props[k]
      if type(cur) ~= "table" then cur = cur == nil and {} or { cur } end
      cur[#cur + 1] = v
      props[k] = cur
    end
  end
  if type(pp.unappend) == "table" then
    for k, v in pairs(pp.unappend) do
      local cur = props[k]
      if type(cur) == "table" then
        for i = #cur, 1, -1 do if cur[i] == v then table.remove(cur, i) end end
      end
    end
  end
end

M.update_profile = function(req)
  local st, doc = too_big(req)
  if st then return st, doc end
  local acct, data = req.account, req.body.data
  local p
  p, st, doc = jsonapi.lookup_update(req, acct.profiles, "Profile")
  if not p then return st, doc end
  local clean
  clean, st, doc = M.validate(data.attributes, "/data", p.id, false)
  if not clean then return st, doc end
  local other = state.conflicting_profile(acct, clean, p)
  if other then return duplicate(other) end
  state.apply_profile_attributes(acct, p, clean)
  patch_properties(p, data.meta)
  return single(req, p)
end

M.create_or_update_profile = function(req)
  local st, doc = too_big(req)
  if st then return st, doc end
  local acct, data = req.account, req.body.data
  local p, created, edoc = M.upsert(acct, data.attributes, data.id, "/data")
  if not p then return created, edoc end
  patch_properties(p, data.meta)
  return single(req, p, created and 201 or 200)
end

M.merge_profiles = function(req)
  local acct, data = req.account, req.body.data
  if data.type ~= "profile-merge" then
    return invalid("The body must be a 'profile-merge' resource.", "/data/type")
  end
  local dest = type(data.id) == "string" and acct.profiles[data.id]
  if not dest then
    return invalid(format("Destination profile '%s' not found.", tostring(data.id)), "/data/id")
  end
  local rel = type(data.relationships) == "table" and data.relationships.profiles
  local list = type(rel) == "table" and rel.data
  if type(list) ~= "table" or #list == 0 then
    return invalid("relationships.profiles.data must name the profiles to merge.",
      "/data/relationships/profiles/data")
  end
  local sources = {}
  for i, r in ipairs(list) do
    local src = type(r) == "table" and type(r.id) == "string" and acct.profiles[r.id]
    if not src then
      return invalid(format("Source profile '%s' not found.", type(r) == "table" and tostring(r.id) or "?"),
        format("/data/relationships/profiles/data/%d/id", i - 1))
    end
    if src.id == dest.id then
      return invalid("A profile cannot be merged into itself.",
        format("/data/relationships/profiles/data/%d/id", i - 1))
    end
    sources[#sources + 1] = src
  end
  for _, src in ipairs(sources) do
    -- The destination wins; the source fills what the destination lacks.
    local take = {}
    for _, k in ipairs(STRING_ATTRS) do
      if dest[k] == nil and src[k] ~= nil then take[k] = src[k] end
    end
    local props = {}
    for k, v in pairs(src.properties or {}) do if (dest.properties or {})[k] == nil then props[k] = v end end
    take.properties = props
    local loc = {}
    for k, v in pairs(src.location or {}) do if (dest.location or {})[k] == nil then loc[k] = v end end
    take.location = loc
    for _, ev in ipairs(acct.events) do
      if ev.profile_id == src.id then ev.profile_id = dest.id end
    end
    if src.subscriptions and not dest.subscriptions then dest.subscriptions = src.subscriptions end
    -- Klaviyo's merged profile keeps the source's list and segment memberships.
    flowrunner.merge_profile(acct, src.id, dest.id)
    state.delete_profile(acct, src)
    state.apply_profile_attributes(acct, dest, take)
  end
  local self = req.base_url .. "/api/profiles/" .. dest.id
  return 201, { data = { type = "profile", id = dest.id, links = { self = self } },
                links = { self = req.base_url .. req.path } }
end

return M
