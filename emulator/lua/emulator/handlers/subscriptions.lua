-- Consent, server side: bulk subscribe / unsubscribe (email and SMS), suppress / unsuppress,
-- and back-in-stock subscriptions (shared with the client endpoint).
--
-- Klaviyo runs these as asynchronous jobs; the emulator validates the whole request first
-- (one bad profile rejects it, its pointer naming the item), then applies it before
-- answering 202, so the next read already shows the new consent. WhatsApp and push consent
-- are not emulated: asking for them answers 501 rather than pretending.
local cjson = require("cjson.safe")
local state = require("emulator.state")
local jsonapi = require("emulator.jsonapi")
local collection = require("emulator.collection")
local consent = require("emulator.consent")
local groups = require("emulator.groups")
local flowrunner = require("emulator.flowrunner")

local null = cjson.null
local type, ipairs, pairs, format, tostring = type, ipairs, pairs, string.format, tostring

local MAX_SUBSCRIBE, MAX_UNSUBSCRIBE, MAX_SUPPRESS = 1000, 100, 100

local H = {}

local function present(v) return v ~= nil and v ~= null end

local function valid_email(s)
  return type(s) == "string" and s:match("^[^%s@]+@[^%s@]+%.[^%s@]+$") ~= nil
end

-- The list named by data.relationships.list: the list; nil when none is named and it is
-- optional; or false, status, doc. Shared with create_client_subscription (required).
function H.related_list(req, data, required)
  local rel = data.relationships
  local absent = rel == nil or rel == null
  local l = not absent and type(rel) == "table" and rel.list
  if not absent then absent = l == nil or l == null end
  if absent and not required then return nil end
  local id = not absent and type(l) == "table" and type(l.data) == "table" and l.data.id
  if type(id) ~= "string" then
    return false, collection.bad("/data/relationships/list/data/id",
      required and "A list is required." or "The list needs an id.")
  end
  local list = req.account.lists[id]
  if not list then
    return false, collection.bad("/data/relationships/list/data/id",
      format("There is no list with id %s.", id))
  end
  return list
end
local related_list = H.related_list

-- Gives `p` the consents of `chans` and puts it on `list` (if any); a join starts the list's
-- flows unless `quiet` (historical imports). Shared with create_client_subscription.
function H.subscribe_to_list(acct, p, chans, list, custom_source, quiet)
  for _, c in ipairs(chans) do
    consent.subscribe(p, c.channel, c.kind, c.at, "API", custom_source)
  end
  if list and groups.join(acct.list_members, list.id, p.id) and not quiet then
    flowrunner.on_list_join(acct, list.id, p.id)
  end
end

-- The profiles array of data.attributes.profiles.data, 1..max items.
local function profile_items(data, max)
  local a = data.attributes
  local p = type(a) == "table" and a.profiles
  local items = type(p) == "table" and p.data
  if type(items) ~= "table" or (items[1] == nil and next(items) ~= nil) then
    return nil, collection.bad("/data/attributes/profiles/data", "profiles.data must be an array.")
  end
  if #items == 0 then
    return nil, collection.bad("/data/attributes/profiles/data", "At least one profile is required.")
  end
  if #items > max then
    return nil, collection.bad("/data/attributes/profiles/data",
      format("At most %d profiles may be given per request; got %d.", max, #items))
  end
  return items
end

-- Identifies (without changing anything) the profile an item names. Returns a plan
-- {profile = existing or nil, attrs = identifiers to upsert}, or nil, status, doc.
local function plan_profile(acct, item, ptr)
  if type(item) ~= "table" or item.type ~= "profile" then
    return nil, collection.bad(ptr .. "/type", "Each item must be of type 'profile'.")
  end
  local a = item.attributes
  if type(a) ~= "table" then
    return nil, collection.bad(ptr .. "/attributes", "Each profile needs 'attributes'.")
  end
  local attrs = {}
  if present(a.email) then
    if not valid_email(a.email) then
      return nil, collection.bad(ptr .. "/attributes/email", format("Invalid email address '%s'.",
        tostring(a.email)))
    end
    attrs.email = a.email
  end
  if present(a.phone_number) then
    if not consent.is_e164(a.phone_number) then
      return nil, collection.bad(ptr .. "/attributes/phone_number", format(
        "Invalid phone number '%s': use E.164, e.g. +15005550006.", tostring(a.phone_number)))
    end
    attrs.phone_number = a.phone_number
  end
  local existing
  if present(item.id) then
    existing = acct.profiles[item.id]
    if not existing then
      return nil, collection.bad(ptr .. "/id", format("Profile %s does not exist.", tostring(item.id)))
    end
  else
    existing = state.find_profile(acct, attrs)
  end
  if existing then
    local other = state.conflicting_profile(acct, attrs, existing)
    if other then
      return nil, jsonapi.error(409, "duplicate_profile", "Conflict.",
        "An identifier of this profile belongs to another profile.", {pointer = ptr .. "/attributes"},
        {duplicate_profile_id = other.id})
    end
  elseif not attrs.email and not attrs.phone_number then
    return nil, collection.bad(ptr .. "/attributes", "Each profile needs an email or a phone_number.")
  end
  return {profile = existing, attrs = attrs, id = item.id}
end

local function realize(acct, plan)
  local p = plan.profile
  if p then
    local attrs = {}
    for k, v in pairs(plan.attrs) do
      local owner = acct.profile_index[k][v]
      if not owner or owner == p.id then attrs[k] = v end -- never steal an identifier
    end
    state.apply_profile_attributes(acct, p, attrs)
    return p
  end
  p = state.upsert_profile(acct, plan.attrs)
  -- An earlier item of the same request may have claimed one of these identifiers for
  -- another new profile: keep the first match and leave identifiers where they are.
  return p or state.find_profile(acct, plan.attrs)
end

-- Reads a bulk (un)subscribe body: the plans (a plan per profile, with the consent
-- channels it asks to change to `want`) and the list named, if any; or nil, status, doc
-- for the first bad part (nothing has changed then).
local function bulk_request(req, data, max, want, historical)
  local list, st, doc = related_list(req, data)
  if list == false then return nil, st, doc end
  local items
  items, st, doc = profile_items(data, max)
  if not items then return nil, st, doc end
  local plans = {}
  for i, item in ipairs(items) do
    local ptr = "/data/attributes/profiles/data/" .. (i - 1)
    local plan
    plan, st, doc = plan_profile(req.account, item, ptr)
    if not plan then return nil, st, doc end
    plan.channels, st, doc = consent.requested(item.attributes.subscriptions, plan.attrs, plan.profile,
      ptr .. "/attributes/subscriptions", want, historical)
    if not plan.channels then return nil, st, doc end
    plans[i] = plan
  end
  return plans, list
end

function H.bulk_subscribe_profiles(req)
  local acct = req.account
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local attributes = jsonapi.attributes(data)
  local historical = attributes.historical_import == true
  local plans, list
  plans, list, doc = bulk_request(req, data, MAX_SUBSCRIBE, "SUBSCRIBED", historical)
  if not plans then return list, doc end -- on failure: nil, status, doc
  -- A double opt-in list subscribes nobody until they confirm the message it sends; the
  -- emulator sends none, so consent and membership stay as they are (historical imports
  -- bypass the confirmation, as at Klaviyo).
  if list and list.opt_in_process == "double_opt_in" and not historical then
    for _, plan in ipairs(plans) do realize(acct, plan) end
    return 202, nil
  end
  for _, plan in ipairs(plans) do
    -- historical imports bypass "Added to list" flows
    H.subscribe_to_list(acct, realize(acct, plan), plan.channels, list, attributes.custom_source,
      historical)
  end
  return 202, nil
end

function H.bulk_unsubscribe_profiles(req)
  local acct = req.account
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local plans, list
  plans, list, doc = bulk_request(req, data, MAX_UNSUBSCRIBE, "UNSUBSCRIBED", false)
  if not plans then return list, doc end -- on failure: nil, status, doc
  for _, plan in ipairs(plans) do
    local p = realize(acct, plan)
    -- A member of the given list leaves that list (email: a list-level suppression);
    -- anyone else is unsubscribed globally, as Klaviyo warns.
    local member = list and groups.is_member(acct.list_members, list.id, p.id)
    if member then groups.leave(acct.list_members, list.id, {p.id}) end
    for _, c in ipairs(plan.channels) do
      if member and c.channel == "email" then
        consent.list_unsubscribe(p, list.id)
      else
        consent.unsubscribe(p, c.channel, c.kind, "API")
      end
    end
  end
  return 202, nil
end

---------------------------------------------------------------- suppressions

local JOB_TYPES = {
  suppress = "profile-suppression-bulk-create-job",
  unsuppress = "profile-suppression-bulk-delete-job",
}

local function job_resource(req, job)
  local base = (req.base_url or "") .. (job.kind == "suppress"
    and "/api/profile-suppression-bulk-create-jobs/" or "/api/profile-suppression-bulk-delete-jobs/")
    .. job.id
  return jsonapi.resource(JOB_TYPES[job.kind], job.id, {
    status = job.status, created_at = state.iso(job.created), total_count = job.total,
    completed_count = job.completed, completed_at = state.iso(job.completed_at),
    skipped_count = job.skipped,
  }, {
    lists = {data = jsonapi.array(job.list_id and {{type = "list", id = job.list_id}} or {})},
    segments = {data = jsonapi.array(job.segment_id and {{type = "segment", id = job.segment_id}} or {})},
  }, base)
end

-- Emails named by the request: the profiles given, or every member of a list/segment.
local function suppression_targets(req, data)
  local acct = req.account
  local rel = type(data.relationships) == "table" and data.relationships or {}
  local function rel_id(name)
    local r = rel[name]
    return type(r) == "table" and type(r.data) == "table" and r.data.id or nil
  end
  local list_id, segment_id = rel_id("list"), rel_id("segment")
  local a = jsonapi.attributes(data)
  local has_profiles = present(a.profiles)
  local n = (has_profiles and 1 or 0) + (list_id and 1 or 0) + (segment_id and 1 or 0)
  if n ~= 1 then
    return nil, collection.bad("/data", "Give exactly one of profiles, a list or a segment.")
  end
  local targets = {}
  if has_profiles then
    local items, st, doc = profile_items(data, MAX_SUPPRESS)
    if not items then return nil, st, doc end
    for i, item in ipairs(items) do
      local ptr = "/data/attributes/profiles/data/" .. (i - 1)
      local email = type(item) == "table" and type(item.attributes) == "table" and item.attributes.email
      if not valid_email(email) then
        return nil, collection.bad(ptr .. "/attributes/email", "Each profile needs a valid email.")
      end
      targets[#targets + 1] = {email = email}
    end
    return targets
  end
  local store, gid, kind = acct.list_members, list_id, "list"
  if segment_id then store, gid, kind = acct.segment_members, segment_id, "segment" end
  if not (kind == "list" and acct.lists[gid] or kind == "segment" and acct.segments[gid]) then
    return nil, collection.bad("/data/relationships/" .. kind .. "/data/id",
      format("There is no %s with id %s.", kind, tostring(gid)))
  end
  local g = store[gid]
  for _, pid in ipairs(g and g.order or {}) do
    local p = acct.profiles[pid]
    targets[#targets + 1] = {profile = p, email = p and p.email}
  end
  return targets, list_id, segment_id
end

local function suppression_job(req, kind)
  local acct = req.account
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local targets, list_id, segment_id = suppression_targets(req, data)
  if not targets then return list_id, segment_id end -- here: status, error document
  local done, skipped = 0, 0
  for _, t in ipairs(targets) do
    local p = t.profile
    if not p and t.email then
      p = state.find_profile(acct, {email = t.email})
      if not p and kind == "suppress" then p = state.upsert_profile(acct, {email = t.email}) end
    end
    if p and p.email then
      if kind == "suppress" then consent.suppress(p) else consent.unsuppress(p) end
      done = done + 1
    else
      skipped = skipped + 1
    end
  end
  local now = state.now()
  local job = {
    id = state.new_id(), kind = kind, status = "complete", created = now, completed_at = now,
    total = #targets, completed = done, skipped = skipped, list_id = list_id, segment_id = segment_id,
  }
  acct.suppression_jobs = acct.suppression_jobs or {}
  acct.suppression_jobs[job.id] = job
  local r = job_resource(req, job)
  return 202, {data = r, links = {self = r.links.self}}
end

function H.bulk_suppress_profiles(req) return suppression_job(req, "suppress") end
function H.bulk_unsuppress_profiles(req) return suppression_job(req, "unsuppress") end

local function get_job(req, kind)
  local jobs = req.account.suppression_jobs or {}
  local job = jobs[req.params.job_id]
  if not job or job.kind ~= kind then
    return jsonapi.not_found(format("A job with id %s does not exist.", tostring(req.params.job_id)))
  end
  local r = job_resource(req, job)
  return 200, {data = r, links = {self = r.links.self}}
end

local JOB_FILTER = {
  status = {type = "string"},
  list_id = {type = "string"},
  segment_id = {type = "string"},
  ["and"] = true,
}
local JOB_SORT = {created = function(j) return j.created end}

local function list_jobs(req, kind)
  local pred, st, doc = collection.filter(req, JOB_FILTER)
  if pred == nil then return st, doc end
  local items = {}
  for _, j in pairs(req.account.suppression_jobs or {}) do
    if j.kind == kind and (not pred or pred(j)) then items[#items + 1] = j end
  end
  local ok
  ok, st, doc = collection.sort(req, items, JOB_SORT)
  if not ok then return st, doc end
  return jsonapi.page(req, items, function(j) return job_resource(req, j) end)
end

function H.get_bulk_suppress_profiles_jobs(req) return list_jobs(req, "suppress") end
function H.get_bulk_unsuppress_profiles_jobs(req) return list_jobs(req, "unsuppress") end

function H.get_bulk_suppress_profiles_job(req) return get_job(req, "suppress") end
function H.get_bulk_unsuppress_profiles_job(req) return get_job(req, "unsuppress") end

---------------------------------------------------------------- back in stock

local BIS_CHANNELS = {EMAIL = "email", SMS = "phone_number", PUSH = false, WHATSAPP = false}

--- Back-in-stock subscription (server and client endpoints share it): the profile is found
-- or created (identifiers never move), the channels checked against what it can receive
-- (EMAIL needs an email, SMS an E.164 phone), the subscription kept per profile and
-- variant. Catalogs are not emulated, so the variant id is checked for Klaviyo's
-- `$integration:::$catalog:::external_id` form, not for existence. PUSH and WhatsApp
-- answer 501.
function H.back_in_stock(req)
  local acct = req.account
  local data, st, doc = collection.data(req, "object")
  if not data then return st, doc end
  local a = jsonapi.attributes(data)
  local channels = a.channels
  if type(channels) ~= "table" or channels[1] == nil then
    return collection.bad("/data/attributes/channels", "channels must be a non-empty array.")
  end
  local wanted = {}
  for i, c in ipairs(channels) do
    local need = BIS_CHANNELS[c]
    if need == nil then
      return collection.bad("/data/attributes/channels/" .. (i - 1),
        "channels are EMAIL, SMS, PUSH or WHATSAPP.")
    end
    if need == false then
      return jsonapi.error(501, "not_implemented", "Not implemented.",
        format("The Klaviyo emulator does not emulate %s back-in-stock alerts.", c))
    end
    wanted[#wanted + 1] = c
  end
  local rel = type(data.relationships) == "table" and data.relationships.variant
  local variant = type(rel) == "table" and type(rel.data) == "table" and rel.data.id
  if type(variant) ~= "string" or not variant:match("^%$[^:]+:::%$[^:]+:::.+$") then
    return collection.bad("/data/relationships/variant/data/id",
      "The variant id must look like $custom:::$default:::<external id>.")
  end
  local pdata = type(a.profile) == "table" and a.profile.data
  local ptr = "/data/attributes/profile/data"
  if type(pdata) ~= "table" or type(pdata.attributes) ~= "table" then
    return collection.bad(ptr, "A profile is required.")
  end
  local attrs = {}
  for _, k in ipairs(state.IDENTIFIERS) do
    if present(pdata.attributes[k]) then attrs[k] = pdata.attributes[k] end
  end
  local plan
  plan, st, doc = plan_profile(acct, {type = "profile", id = pdata.id, attributes = attrs}, ptr)
  if not plan then return st, doc end
  for i, c in ipairs(wanted) do
    local ident = BIS_CHANNELS[c]
    if not (plan.attrs[ident] or (plan.profile and plan.profile[ident])) then
      return collection.bad("/data/attributes/channels/" .. (i - 1), c == "SMS"
        and "SMS alerts need a phone_number in E.164." or "EMAIL alerts need an email address.")
    end
  end
  local p = realize(acct, plan)
  acct.back_in_stock = acct.back_in_stock or {}
  local key = p.id .. "\0" .. variant
  local sub = acct.back_in_stock[key]
  if not sub then
    sub = {id = state.new_id(), profile_id = p.id, variant_id = variant, created = state.now()}
    acct.back_in_stock[key] = sub
  end
  sub.channels = wanted
  sub.updated = state.now()
  return 202, nil
end

H.create_back_in_stock_subscription = H.back_in_stock

return H
