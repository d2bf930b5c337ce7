--- Profiles: find, create, upsert, update, merge, import.
--
--    local profiles = client.profiles
--    local p, err = profiles:get{ email = "ann@example.com" }   -- or phone_number/external_id/id
--    if p then print(p.id, p.first_name, p.properties.tier) end
--    local p2, created = profiles:upsert{ email = "ann@example.com", last_name = klaviyo.null }
--    for p, perr in profiles:each{ filter = klaviyo.filter.equals("external_id", "crm-1") } do ... end
--
-- Klaviyo finds a profile by `id`, `email`, `phone_number` (E.164) or `external_id` only; a
-- lookup by name is refused locally with an error naming those four. Results are flat tables
-- (see `klaviyo.resource`): `id`, the attributes (`email`, `first_name`, `properties`,
-- `location`, ...), and `_raw`.
-- @module klaviyo.profiles
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"
local F = require "klaviyo.filter"
local errors = require "klaviyo.errors"

local type, error, pairs, tostring = type, error, pairs, tostring
local format, lower = string.format, string.lower

-- The module's functions, and the methods of the object `new(client)` returns.
---@class klaviyo.profiles
local _M, mt = R.methods("profiles")

-- Query parameters shared by the reads: fields and the subscriptions extra.
local function read_params(opts, params)
  params = params or {}
  if opts.fields ~= nil then params["fields[profile]"] = opts.fields end
  if opts.subscriptions then params["additional-fields[profile]"] = { "subscriptions" } end
  return params
end

-- Does the identifier a profile was answered with match the one asked for? An email is
-- compared without regard to case (servers normalise it); a field left out of the answer (a
-- sparse fieldset) cannot be checked.
local function same_identifier(key, got, asked)
  if got == nil then return true end
  if type(got) ~= "string" then return false end
  if key == "email" then return lower(got) == lower(asked) end
  return got == asked
end

local GET_KEYS = V.set({ "id", "email", "phone_number", "external_id", "first_name",
  "last_name", "name", "organization", "title" })
local READ_OPTS = V.set({ "fields", "subscriptions" })

--- Find one profile by exactly one identifier.
---@param q table `{email=}`, `{phone_number=}` (E.164), `{external_id=}` or `{id=}`; a name
--   (`first_name`, `last_name`, ...) is refused locally, nothing sent.
---@param opts table? `fields` (array of attribute names), `subscriptions` (true: add the
--   consent state under `subscriptions`)
---@return table # flat profile, or nil, err (`err.code == "not_found"` when no profile matches)
function _M:get(q, opts)
  V.self(self, mt, "profiles:get")
  V.argcheck(type(q) == "table", "profiles:get", 1, "table", q)
  opts = V.table_arg(opts or {}, READ_OPTS, "profiles:get", 2)
  for k in pairs(q) do
    if not GET_KEYS[k] then
      error(format("profiles:get: unknown key '%s' (find a profile by id, email, " ..
        "phone_number or external_id)", tostring(k)), 2)
    end
  end
  local key, value = V.lookup(q)
  if not key then
    return nil, V.refuse(q.id and "get_profile" or "get_profiles", value)
  end
  if key == "email" and not V.is_email(value) then
    -- an address no profile can have (create refuses it): "not found" would mislead
    return nil, V.refuse("get_profiles", "email is not a valid address: " .. value, "/email")
  end
  if key == "id" then
    local op = "get_profile"
    local p, err = R.one(op, self.client:call(op, read_params(opts, { id = value })))
    if p and p.id ~= value then
      return nil, R.shape_error(op, "data.id is " .. p.id .. ", not the id asked for")
    end
    return p, err
  end
  local doc, err = self.client:call("get_profiles", read_params(opts, {
    filter = F.equals(key, value), ["page[size]"] = 1 }))
  if not doc then return nil, err end
  local data, msg = R.data_list(doc)
  if not data then return nil, R.shape_error("get_profiles", msg) end
  if not data[1] then
    return nil, errors.new("not_found", "get_profiles",
      format("no profile with %s %s", key, value), { code = "not_found" })
  end
  local out = R.flatten(data[1])
  if not same_identifier(key, out[key], value) then
    return nil, R.shape_error("get_profiles",
      format("the profile answered has another %s than the one asked for", key))
  end
  out._document = doc
  return out
end

local EACH_KEYS = V.set({ "filter", "fields", "subscriptions", "sort", "page_size" })

--- Iterate over profiles (`get_profiles`).
---@param q table? `filter` (string or `klaviyo.filter` expression), `fields`,
--   `subscriptions`, `sort`, `page_size` (1..100)
---@return function # iterator of flat profiles; yields `false, err` once on failure
function _M:each(q)
  V.self(self, mt, "profiles:each")
  q = V.table_arg(q or {}, EACH_KEYS, "profiles:each", 1)
  return R.flat_iter(self.client:paginate("get_profiles", read_params(q, {
    filter = q.filter, sort = q.sort, ["page[size]"] = q.page_size })))
end

-- Check a profile table for create/upsert: identifiers well formed, encodable, <= 100 KB.
local function check_profile(p, op, need_identity)
  if need_identity then
    local ok, msg, ptr = V.profile_identity(p)
    if not ok then return nil, V.refuse(op, msg, ptr) end
  elseif p.phone_number ~= nil and type(p.phone_number) == "string" and
      not V.is_e164(p.phone_number) then
    return nil, V.refuse(op, "phone_number must be in E.164 format (e.g. +15005550006), got "
      .. p.phone_number, "/phone_number")
  end
  local res = R.unflatten("profile", p)
  local size, msg, ptr = V.value(res.attributes, V.LIMITS)
  if not size then return nil, V.refuse(op, msg, ptr) end
  if size > V.LIMITS.profile_bytes then
    return nil, V.refuse(op, format("the profile is about %d bytes, over Klaviyo's 100 KB limit",
      size))
  end
  return res
end

--- Create a profile (`create_profile`). A profile that already exists answers 409; the
-- error then carries the existing profile's id as `err.duplicate_profile_id`.
---@param p table flat profile: identifiers and attributes (`first_name`, `properties`, ...)
---@return table # the created profile (flat), or nil, err
function _M:create(p)
  V.self(self, mt, "profiles:create")
  V.argcheck(type(p) == "table", "profiles:create", 1, "table", p)
  local res, rerr = check_profile(p, "create_profile", true)
  if not res then return nil, rerr end
  res.id = nil
  local doc, err = self.client:call("create_profile", { body = { data = res } })
  if not doc then
    -- only an id string: callers pass it on to update or get, which raise on anything else
    local meta = type(err) == "table" and err.meta
    local dup = type(meta) == "table" and meta.duplicate_profile_id
    if type(dup) == "string" and dup ~= "" then err.duplicate_profile_id = dup end
    return nil, err
  end
  return R.from_document(doc, "create_profile")
end

--- Create or update a profile (`create_or_update_profile`), matched on its identifiers.
-- A field set to `klaviyo.null` is cleared; a field left out is kept.
---@param p table flat profile with at least one identifier
---@return table # the profile (flat)
-- @treturn boolean true when it was created, false when updated; or nil, err
function _M:upsert(p)
  V.self(self, mt, "profiles:upsert")
  V.argcheck(type(p) == "table", "profiles:upsert", 1, "table", p)
  local res, rerr = check_profile(p, "create_or_update_profile", true)
  if not res then return nil, rerr end
  local doc, err = self.client:call("create_or_update_profile", { body = { data = res } })
  if not doc then return nil, err end
  local info = err -- on success call returns doc, response
  local flat, ferr = R.from_document(doc, "create_or_update_profile")
  if not flat then return nil, ferr end
  return flat, type(info) == "table" and info.status == 201
end

--- Update a profile's fields by id (`update_profile`); `klaviyo.null` clears a field.
---@param id string
---@param fields table flat attributes to change
---@return table # the profile (flat), or nil, err
function _M:update(id, fields)
  V.self(self, mt, "profiles:update")
  V.id(id, "profiles:update", "profile")
  V.argcheck(type(fields) == "table", "profiles:update", 2, "table", fields)
  local res, rerr = check_profile(fields, "update_profile", false)
  if not res then return nil, rerr end
  res.id = id
  local op = "update_profile"
  return R.one(op, self.client:call(op, { id = id, body = { data = res } }))
end

--- Merge one profile into another (`merge_profiles`): `from_id`'s data moves to `into_id`,
-- and `from_id` goes away (Klaviyo does this asynchronously).
---@param into_id string the profile that stays
---@param from_id string the profile merged into it
---@return table # the surviving profile (flat) when Klaviyo returns it, else true; or nil, err
function _M:merge(into_id, from_id)
  V.self(self, mt, "profiles:merge")
  V.id(into_id, "profiles:merge", "profile")
  V.id(from_id, "profiles:merge", "profile", 2)
  if into_id == from_id then
    return nil, V.refuse("merge_profiles", "a profile cannot be merged into itself")
  end
  local doc, err = self.client:call("merge_profiles", { body = { data = {
    type = "profile-merge", id = into_id,
    relationships = { profiles = { data = { { type = "profile", id = from_id } } } },
  } } })
  if not doc then return nil, err end
  if type(doc) == "table" and doc.data then return R.from_document(doc, "merge_profiles") end
  return true
end

--- The lists a profile belongs to (`get_lists_for_profile`).
---@param id string profile id
---@return table # array of flat lists, or nil, err
function _M:lists(id)
  V.self(self, mt, "profiles:lists")
  V.id(id, "profiles:lists", "profile")
  local op = "get_lists_for_profile"
  return R.many(op, self.client:call(op, { id = id }))
end

--- The segments a profile belongs to (`get_segments_for_profile`).
---@param id string profile id
---@return table # array of flat segments, or nil, err
function _M:segments(id)
  V.self(self, mt, "profiles:segments")
  V.id(id, "profiles:segments", "profile")
  local op = "get_segments_for_profile"
  return R.many(op, self.client:call(op, { id = id }))
end

--- Import profiles in bulk (`bulk_import_profiles`), as jobs of at most 10,000 profiles
-- and 5 MB each. Every profile is checked first; one bad profile refuses the whole import
-- (pointer `/<index>/...`), nothing sent.
---@param list table array of flat profiles (each with an identifier)
---@param opts table? `list` (a list id: imported profiles join it)
---@return table # an import (see `klaviyo.profile_import`): `jobs` (flat job resources),
--   `:wait{timeout=, interval=}`, `:errors()`; or nil, err, partial import
function _M:import(list, opts)
  V.self(self, mt, "profiles:import")
  V.argcheck(type(list) == "table", "profiles:import", 1, "array of profiles", list)
  opts = V.table_arg(opts or {}, V.set({ "list" }), "profiles:import", 2)
  if opts.list ~= nil then
    V.argcheck(type(opts.list) == "string" and opts.list ~= "", "profiles:import", 2,
      "list id string in opts.list", opts.list)
  end
  local n, hmsg, hptr = V.dense(list, "")
  if not n then return nil, V.refuse("bulk_import_profiles", hmsg, hptr) end
  local items, sizes = {}, {}
  for i = 1, n do
    local p = list[i]
    if type(p) ~= "table" then
      error(format("profiles:import: profile %d must be a table, got %s", i, type(p)), 2)
    end
    local at = "/" .. (i - 1)
    local ok, msg, ptr = V.profile_identity(p, at)
    if not ok then return nil, V.refuse("bulk_import_profiles", msg, ptr) end
    local res = R.unflatten("profile", p)
    local size, vmsg, vptr = V.value(res.attributes, V.LIMITS, at)
    if not size then return nil, V.refuse("bulk_import_profiles", vmsg, vptr) end
    items[i], sizes[i] = res, size + 64
  end
  local chunks, cmsg, bad = V.chunk(items, V.LIMITS.bulk_profiles, V.LIMITS.payload_bytes - 1024,
    sizes)
  if not chunks then
    return nil, V.refuse("bulk_import_profiles", cmsg, "/" .. (bad - 1))
  end
  local import = require("klaviyo.profile_import").new(self.client)
  for j = 1, #chunks do
    local data = { type = "profile-bulk-import-job",
      attributes = { profiles = { data = chunks[j] } } }
    if opts.list then
      data.relationships = { lists = { data = { { type = "list", id = opts.list } } } }
    end
    local doc, err = self.client:call("bulk_import_profiles", { body = { data = data } })
    if not doc then return nil, err, import end
    local job, jerr = R.from_document(doc, "bulk_import_profiles")
    if not job then return nil, jerr, import end
    import:add(job)
  end
  return import
end

return _M
