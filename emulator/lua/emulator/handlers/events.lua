-- Events: create_event (validation, ingestion limits, profile upsert, metric on
-- first use, deduplication, flow triggers), get_events, get_event and
-- bulk_create_events as an asynchronous job. `record` is exported for the
-- client endpoints (create_client_event).
local cjson = require "cjson.safe"
local state = require "emulator.state"
local jsonapi = require "emulator.jsonapi"
local filter = require "emulator.filter"
local job_queue = require "emulator.jobs"
local flowrunner = require "emulator.flowrunner"
local webhooks = require "emulator.handlers.webhooks"

local null = cjson.null
local type, pairs, ipairs, tostring, floor, format = type, pairs, ipairs, tostring, math.floor, string.format
local parse_datetime = filter.parse_datetime

local M = {}

-- Klaviyo's ingestion limits.
local MAX_PAYLOAD = 5 * 1024 * 1024
local MAX_PROPERTIES = 400
local MAX_STRING = 100 * 1024
local MAX_ARRAY = 4000
local MAX_DEPTH = 10
local MIN_TIME = 631152000 -- 1990-01-01T00:00:00Z
local YEAR = 365 * 86400
M.MAX_PAYLOAD = MAX_PAYLOAD

local function invalid(detail, pointer)
  return jsonapi.invalid(detail, pointer and { pointer = pointer } or nil)
end

-- Walks a property value checking string sizes, array lengths and nesting.
-- Returns nil, or detail and the JSON pointer below the value (built only on
-- failure: this runs for every value of every event).
local function check_value(v, depth)
  local t = type(v)
  if t == "string" then
    if #v > MAX_STRING then return "Strings may not be larger than 100 KB.", "" end
  elseif t == "table" then
    if depth > MAX_DEPTH then return "Properties may not be nested more than 10 levels.", "" end
    if #v > MAX_ARRAY then return "Arrays may not have more than 4000 items.", "" end
    for k, x in pairs(v) do
      local tx = type(x)
      if tx == "table" or tx == "string" then
        local err, p = check_value(x, depth + 1)
        if err then
          if type(k) == "number" then k = k - 1 end
          return err, "/" .. tostring(k) .. p
        end
      end
    end
  end
  return nil
end

local E164 = "^%+[1-9]%d%d%d%d%d%d+$"
-- Addresses seen before skip the pattern match (the same customers come back
-- event after event); the memo is bounded.
local email_ok, email_ok_n = {}, 0
local function valid_email(s)
  if email_ok[s] then return true end
  if s:match("^[^%s@]+@[^%s@]+%.[^%s@]+$") == nil then return false end
  if email_ok_n >= 100000 then email_ok, email_ok_n = {}, 0 end
  email_ok[s] = true
  email_ok_n = email_ok_n + 1
  return true
end
M.valid_email = valid_email
function M.valid_phone(s) return #s <= 16 and s:match(E164) ~= nil end

--- Validates profile identifiers in `attrs` (data.attributes of a profile).
-- Returns nil or status, doc.
function M.check_identifiers(attrs, pointer, id, need_one)
  local any = id ~= nil and id ~= null
  if id ~= nil and id ~= null and type(id) ~= "string" then
    return invalid("The profile id must be a string.", pointer .. "/id")
  end
  for _, k in ipairs(state.IDENTIFIERS) do
    local v = attrs[k]
    if v ~= nil and v ~= null then
      if type(v) ~= "string" then
        return invalid(format("'%s' must be a string.", k), pointer .. "/attributes/" .. k)
      end
      if k == "email" and not valid_email(v) then
        return invalid(format("Invalid email address '%s'.", v), pointer .. "/attributes/email")
      end
      if k == "phone_number" and not M.valid_phone(v) then
        return invalid(format("Invalid phone number '%s': use E.164 format, e.g. +15005550006.", v),
          pointer .. "/attributes/phone_number")
      end
      if v ~= "" then any = true end
    end
  end
  if need_one and not any then
    return invalid("A profile needs at least one identifier: id, email, phone_number or external_id.",
      pointer .. "/attributes")
  end
  return nil
end

-- parse_datetime remembering its last answer: the events of a bulk job (a tracker's batch)
-- mostly carry the same few times.
local last_time_s, last_time_t
local function parse_time(s)
  if s == last_time_s then return last_time_t end
  local t = parse_datetime(s)
  if t then last_time_s, last_time_t = s, t end
  return t
end

-- The profiles handler requires this module, so it is looked up on first use, not at load.
local profiles_validate
local function validate_profile(pattrs, pointer, id)
  if not profiles_validate then profiles_validate = require("emulator.handlers.profiles").validate end
  return profiles_validate(pattrs, pointer, id, true)
end

-- Validates one event's attributes. Returns a normalised event spec or nil, status, doc.
-- `profile_data` is the profile resource ({id?, attributes}) the event belongs to.
local function validate(attrs, pointer, profile_data, profile_pointer, now)
  if type(attrs) ~= "table" then return nil, invalid("'attributes' must be an object.", pointer) end
  local metric = attrs.metric
  local mdata = type(metric) == "table" and metric.data
  local mattrs = type(mdata) == "table" and mdata.attributes
  local name = type(mattrs) == "table" and mattrs.name
  if type(name) ~= "string" or name == "" then
    return nil, invalid("The metric name is required.", pointer .. "/metric/data/attributes/name")
  end
  if #name > 128 then
    return nil, invalid("The metric name may not be longer than 128 characters.",
      pointer .. "/metric/data/attributes/name")
  end
  if type(profile_data) ~= "table" then
    return nil, invalid("'profile.data' is required.", profile_pointer)
  end
  local pattrs = profile_data.attributes
  if type(pattrs) ~= "table" then
    return nil, invalid("Profile 'attributes' is required (an object, may be empty).",
      profile_pointer .. "/attributes")
  end
  local clean, st, doc = validate_profile(pattrs, profile_pointer, profile_data.id)
  if not clean then return nil, st, doc end
  pattrs = clean
  local props = attrs.properties
  if props == nil or props == null then
    return nil, invalid("'properties' is required (an object, may be empty).", pointer .. "/properties")
  end
  if type(props) ~= "table" or (props[1] ~= nil) then
    return nil, invalid("'properties' must be an object.", pointer .. "/properties")
  end
  local count = 0
  for _ in pairs(props) do count = count + 1 end
  if count > MAX_PROPERTIES then
    return nil, invalid("Events may not have more than 400 properties.", pointer .. "/properties")
  end
  local err, p = check_value(props, 1)
  if err then return nil, invalid(err, pointer .. "/properties" .. p) end
  local t = now
  local time = attrs.time
  if time ~= nil and time ~= null then
    t = type(time) == "string" and parse_time(time)
    if not t then
      return nil, invalid(format("Invalid time '%s': use ISO 8601.", tostring(time)), pointer .. "/time")
    end
    if t <= MIN_TIME then
      return nil, invalid("The event time must be after 1990-01-01.", pointer .. "/time")
    end
    if t > now + YEAR then
      return nil, invalid("The event time may be at most one year in the future.", pointer .. "/time")
    end
  end
  local value = attrs.value
  if value == null then value = nil end
  if value ~= nil and type(value) ~= "number" then
    return nil, invalid("'value' must be a number.", pointer .. "/value")
  end
  local currency = attrs.value_currency
  if currency == null then currency = nil end
  if currency ~= nil and type(currency) ~= "string" then
    return nil, invalid("'value_currency' must be a string.", pointer .. "/value_currency")
  end
  local unique_id = attrs.unique_id
  if unique_id == null then unique_id = nil end
  if unique_id ~= nil and type(unique_id) ~= "string" then
    return nil, invalid("'unique_id' must be a string.", pointer .. "/unique_id")
  end
  local backfill = attrs.backfill
  if backfill == null then backfill = nil end
  if backfill ~= nil and type(backfill) ~= "boolean" then
    return nil, invalid("'backfill' must be a boolean.", pointer .. "/backfill")
  end
  return {
    name = name, properties = props, time = floor(t), value = value, value_currency = currency,
    unique_id = unique_id, backfill = backfill == true,
    profile_id = profile_data.id ~= null and profile_data.id or nil, profile_attrs = pattrs,
  }
end

-- Profile for an event: the one its identifiers name (updated with the
-- attributes sent), or a new one. Identifiers owned by another profile are not
-- moved (events never fail on a conflict).
local function event_profile(acct, spec)
  local attrs = spec.profile_attrs -- validate's own copy: ours to change
  if spec.profile_id then
    local p = acct.profiles[spec.profile_id]
    if not p then return nil end
    attrs.id = spec.profile_id
  end
  local p, created_or_err, other = state.upsert_profile(acct, attrs)
  if p then return p end
  if created_or_err == "conflict" then
    p = spec.profile_id and acct.profiles[spec.profile_id] or state.find_profile(acct, attrs)
    for _, k in ipairs(state.IDENTIFIERS) do
      local v = attrs[k]
      if type(v) == "string" and acct.profile_index[k][v] and acct.profile_index[k][v] ~= p.id then
        attrs[k] = nil
      end
    end
    attrs.id = nil
    state.apply_profile_attributes(acct, p, attrs)
    return p
  end
  return nil, other
end

-- Records a validated event. Returns the event (the spec itself, now the stored event: a spec
-- is stored at most once), or nil when it is a duplicate.
local function store(acct, spec, now)
  local profile = event_profile(acct, spec)
  if not profile then return nil, "profile" end
  local metric = state.metric_for_name(acct, spec.name)
  -- Duplicates: one event per profile, metric and unique_id (a string key), or per profile,
  -- metric and second when there is no unique_id (a number key), in nested tables so that no
  -- key string is built and kept for each event.
  local by_profile = acct.event_keys[profile.id]
  if not by_profile then
    by_profile = {}
    acct.event_keys[profile.id] = by_profile
  end
  local keys = by_profile[metric.id]
  if not keys then
    keys = {}
    by_profile[metric.id] = keys
  end
  local key = spec.unique_id or spec.time
  if keys[key] then return nil end
  -- The validated spec becomes the stored event (its time, properties, value, value_currency,
  -- unique_id and backfill are the event's): no second table per event. What only validation
  -- and the profile upsert needed goes.
  local ev = spec
  ev.id, ev.metric_id, ev.profile_id, ev.created = state.new_id(), metric.id, profile.id, now
  ev.name, ev.profile_attrs = nil, nil
  keys[key] = ev.id
  local events = acct.events
  events[#events + 1] = ev
  acct.events_by_id[ev.id] = ev
  if not profile.last_event_time or ev.time > profile.last_event_time then
    profile.last_event_time = ev.time
  end
  flowrunner.on_event(acct, ev, profile)
  if acct.webhooks then webhooks.on_event(acct, ev, metric, M.event_resource) end
  return ev
end

-- For the client endpoints (bulk_create_client_events validates all, then stores).
M.validate_event = validate
M.store_event = store

--- Ingests one event from create_event-shaped attributes. Returns 202, nil,
-- event (nil event for a duplicate) or an error status, doc. opts.pointer
-- (default "/data/attributes") prefixes error pointers.
function M.record(acct, attrs, opts)
  local pointer = opts and opts.pointer or "/data/attributes"
  local now = state.now()
  local profile = type(attrs) == "table" and type(attrs.profile) == "table" and attrs.profile.data or nil
  local spec, st, doc = validate(attrs, pointer, profile, pointer .. "/profile/data", now)
  if not spec then return st, doc end
  local ev, why = store(acct, spec, now)
  if not ev and why == "profile" then
    return invalid(format("Profile '%s' does not exist.", tostring(spec.profile_id)),
      pointer .. "/profile/data/id")
  end
  return 202, nil, ev
end

M.create_event = function(req)
  if req.body_size and req.body_size > MAX_PAYLOAD then
    return jsonapi.error(413, "request_too_large", "Request too large.",
      "The event payload may not be larger than 5 MB.")
  end
  local status, doc = M.record(req.account, req.body.data.attributes)
  return status, doc
end

---------------------------------------------------------------- bulk

-- Completes a queued job: stores its events (duplicates are skipped as usual).
local function run_job(acct, job)
  if job.status ~= "queued" then return end
  job.status = "processing"
  local now = state.now()
  for _, spec in ipairs(job.specs) do
    local ev = store(acct, spec, now)
    if ev then job.recorded = job.recorded + 1 else job.duplicates = job.duplicates + 1 end
  end
  job.specs = nil
  job.status = "complete"
  job.completed = state.now()
end

--- Finishes every queued job of `acct` now (reads see a settled state).
function M.settle(acct) job_queue.settle(acct, "pending_jobs", run_job) end

local function schedule(acct, job) job_queue.schedule(acct, "pending_jobs", job, M.settle) end

-- JSON pointers into a bulk body, built once per entry index (and event index) rather than
-- for every event of every job: only an error uses them, but validate takes them up front.
local BULK_BASE = "/data/attributes/events-bulk-create/data"
local entry_ptrs, event_ptrs = {}, {}
local function entry_pointers(i)
  local p = entry_ptrs[i]
  if not p then
    local ep = format("%s/%d", BULK_BASE, i - 1)
    p = { ep = ep, profile = ep .. "/attributes/profile/data" }
    if i <= 1000 then entry_ptrs[i] = p end
  end
  return p
end
local function event_pointers(i, j, ep)
  local row = event_ptrs[i]
  local p = row and row[j]
  if not p then
    local evp = format("%s/attributes/events/data/%d", ep, j - 1)
    p = { ev = evp, attrs = evp .. "/attributes" }
    if i <= 1000 and j <= 1000 then
      if not row then row = {}; event_ptrs[i] = row end
      row[j] = p
    end
  end
  return p
end

local function new_job(acct, specs, now)
  local job = { id = state.new_id(), type = "event-bulk-create-job", status = "queued", created = now,
                total = #specs, recorded = 0, duplicates = 0, specs = specs }
  acct.jobs[job.id] = job
  acct.job_order = acct.job_order or {}
  acct.job_order[#acct.job_order + 1] = job.id
  schedule(acct, job)
  return 202, nil
end

M.bulk_create_events = function(req)
  if req.body_size and req.body_size > MAX_PAYLOAD then
    return jsonapi.error(413, "request_too_large", "Request too large.",
      "A bulk event request may not be larger than 5 MB.")
  end
  local acct = req.account
  local attrs = req.body.data.attributes
  local base = BULK_BASE
  local wrapper = type(attrs) == "table" and attrs["events-bulk-create"]
  local entries = type(wrapper) == "table" and wrapper.data
  if type(entries) ~= "table" or (entries[1] == nil and next(entries) ~= nil) then
    return invalid("'events-bulk-create.data' must be an array.", base)
  end
  if #entries == 0 then return invalid("At least one profile entry is required.", base) end
  local now = state.now()
  local specs, total = {}, 0
  for i, entry in ipairs(entries) do
    local eps = entry_pointers(i)
    local ep = eps.ep
    if type(entry) ~= "table" or entry.type ~= "event-bulk-create" then
      return invalid("Each entry must be an 'event-bulk-create' resource.", ep .. "/type")
    end
    local ea = entry.attributes
    if type(ea) ~= "table" then return invalid("'attributes' must be an object.", ep .. "/attributes") end
    local pdata = type(ea.profile) == "table" and ea.profile.data or nil
    local evs = type(ea.events) == "table" and ea.events.data or nil
    if type(evs) ~= "table" or #evs == 0 then
      return invalid("'events.data' must be a non-empty array.", ep .. "/attributes/events/data")
    end
    for j, ev in ipairs(evs) do
      total = total + 1
      if total > 1000 then
        return invalid("A bulk request may hold at most 1000 events.", ep .. "/attributes/events/data")
      end
      local evps = event_pointers(i, j, ep)
      if type(ev) ~= "table" or ev.type ~= "event" then
        return invalid("Each event must be an 'event' resource.", evps.ev .. "/type")
      end
      local ev_attrs = ev.attributes
      if type(ev_attrs) == "table" and ev_attrs.backfill == nil and ea.backfill ~= nil then
        ev_attrs.backfill = ea.backfill
      end
      local spec, st, doc = validate(ev_attrs, evps.attrs, pdata, eps.profile, now)
      if not spec then return st, doc end
      if spec.profile_id and not acct.profiles[spec.profile_id] then
        return invalid(format("Profile '%s' does not exist.", spec.profile_id),
          ep .. "/attributes/profile/data/id")
      end
      specs[#specs + 1] = spec
    end
  end
  return new_job(acct, specs, now)
end

--- Jobs of an account for the admin API (oldest first).
function M.jobs(acct)
  local out = {}
  for _, id in ipairs(acct.job_order or {}) do
    local j = acct.jobs[id]
    out[#out + 1] = { id = j.id, type = j.type, status = j.status, created = state.iso(j.created),
                      completed = j.completed and state.iso(j.completed) or nil,
                      total = j.total, recorded = j.recorded, duplicates = j.duplicates }
  end
  return out
end

---------------------------------------------------------------- reads

local function event_attributes(ev)
  return { timestamp = ev.time, event_properties = ev.properties, datetime = state.iso(ev.time),
           uuid = ev.uuid or ev.id }
end

local function rel(req, kind, rtype, id, base)
  return { data = { type = rtype, id = id },
           links = { self = req.base_url .. base .. "/relationships/" .. kind,
                     related = req.base_url .. base .. "/" .. kind } }
end

local function event_resource(req, ev, fields)
  local base = "/api/events/" .. ev.id
  return jsonapi.resource("event", ev.id, jsonapi.sparse(event_attributes(ev), fields), {
    profile = rel(req, "profile", "profile", ev.profile_id, base),
    metric = rel(req, "metric", "metric", ev.metric_id, base),
  }, req.base_url .. base)
end

M.event_resource = event_resource -- as get_event shows it: the payload of webhook deliveries

local function includes(req)
  local set = {}
  if req.query.include then
    for _, v in ipairs(jsonapi.split(req.query.include)) do
      if v ~= "metric" and v ~= "profile" and v ~= "attributions" then
        return nil, invalid(format("'%s' is not a valid include for events.", v))
      end
      set[v] = true
    end
  end
  return set
end

local function included_for(req, acct, events, inc)
  local out, seen = {}, {}
  local metrics = require "emulator.handlers.metrics"
  local profiles = require "emulator.handlers.profiles"
  for _, ev in ipairs(events) do
    if inc.metric and not seen[ev.metric_id] then
      seen[ev.metric_id] = true
      local m = acct.metrics[ev.metric_id]
      if m then out[#out + 1] = metrics.resource(req, m) end
    end
    if inc.profile and not seen[ev.profile_id] then
      seen[ev.profile_id] = true
      local p = acct.profiles[ev.profile_id]
      if p then out[#out + 1] = profiles.resource(req, p, nil, { plain = true }) end
    end
  end
  return out
end

local EVENT_FILTER = {
  metric_id = { type = "string" },
  profile_id = { type = "string" },
  datetime = { type = "datetime", get = function(ev) return ev.time end },
  timestamp = { get = function(ev) return ev.time end },
  profile = { get = function(ev) return ev.profile_id end },   -- has(profile)
  metric = { get = function(ev) return ev.metric_id end },     -- has(metric)
  ["and"] = true,
}

-- The account's events by time, then creation (ids sort by creation), ascending or
-- descending. Reading a large account page by page asks for this order on every page, so it
-- is kept per account and only redone when events were added since (events are only ever
-- appended, and an event's time and id never change). The arrays are shared: read only.
local function by_time_asc(a, b)
  if a.time ~= b.time then return a.time < b.time end
  return a.id < b.id
end

local function sorted_events(acct, desc)
  local events = acct.events
  local n = #events
  local cache = acct.events_sorted
  if not cache or cache.events ~= events or cache.n ~= n then
    local asc
    if cache and cache.events == events and cache.n < n then
      -- new events since the last sort: sort only those, then merge the two runs
      local old, new = cache.asc, {}
      for i = cache.n + 1, n do new[#new + 1] = events[i] end
      table.sort(new, by_time_asc)
      asc = {}
      local i, j, k, no, nn = 1, 1, 0, #old, #new
      while i <= no and j <= nn do
        k = k + 1
        if by_time_asc(new[j], old[i]) then asc[k] = new[j]; j = j + 1
        else asc[k] = old[i]; i = i + 1 end
      end
      for x = i, no do k = k + 1; asc[k] = old[x] end
      for x = j, nn do k = k + 1; asc[k] = new[x] end
    else
      asc = {}
      for i = 1, n do asc[i] = events[i] end
      table.sort(asc, by_time_asc)
    end
    cache = { events = events, n = n, asc = asc }
    acct.events_sorted = cache
  end
  if not desc then return cache.asc end
  if not cache.desc then
    -- descending by (time, id) is exactly ascending reversed (ids are unique)
    local asc, d = cache.asc, {}
    for i = #asc, 1, -1 do d[#d + 1] = asc[i] end
    cache.desc = d
  end
  return cache.desc
end

M.get_events = function(req)
  local acct = req.account
  M.settle(acct)
  local fields, st, doc = jsonapi.fields(req, "event")
  if fields == nil then return st, doc end
  local inc, ist, idoc = includes(req)
  if not inc then return ist, idoc end
  local pred
  if req.query.filter then
    local leaves
    pred, leaves = filter.compile(req.query.filter, EVENT_FILTER)
    if not pred then return invalid(leaves, nil) end
  end
  local sort = req.query.sort
  if sort and sort ~= "datetime" and sort ~= "-datetime" and sort ~= "timestamp" and sort ~= "-timestamp" then
    return jsonapi.invalid(format("'%s' is not a valid sort for events.", sort), { parameter = "sort" })
  end
  local ordered = sorted_events(acct, sort and sort:sub(1, 1) == "-")
  local items = ordered
  if pred then
    items = {}
    for i = 1, #ordered do
      local ev = ordered[i]
      if pred(ev) then items[#items + 1] = ev end
    end
  end
  local status, out = jsonapi.page(req, items, function(ev) return event_resource(req, ev, fields) end)
  if status ~= 200 then return status, out end
  if next(inc) then
    -- include only what the page refers to
    local page_events = {}
    for _, r in ipairs(out.data == jsonapi.EMPTY_ARRAY and {} or out.data) do
      page_events[#page_events + 1] = acct.events_by_id[r.id]
    end
    out.included = jsonapi.array(included_for(req, acct, page_events, inc))
  end
  return 200, out
end

M.get_event = function(req)
  local acct = req.account
  M.settle(acct)
  return jsonapi.get_one(req, acct.events_by_id, "Event", "event", function(ev, fields)
    local inc, st, doc = includes(req)
    if not inc then return nil, st, doc end
    return event_resource(req, ev, fields),
      next(inc) and jsonapi.array(included_for(req, acct, { ev }, inc)) or nil
  end)
end

return M
