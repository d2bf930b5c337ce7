--- Events: what triggers flows.
--
--    local events = client.events          -- or require("klaviyo.events").new(client)
--    local uid, err = events:create{
--      metric = "Placed Order",
--      profile = { email = "ann@example.com", first_name = "Ann" },
--      properties = { items = { { sku = "A1", qty = 2 } } },
--      value = 59.90, value_currency = "EUR",
--      time = "2026-11-26T10:00:00Z",          -- or epoch seconds; default: when Klaviyo receives it
--    }
--
-- Every event gets a `unique_id` before it is first sent (yours, or a random UUID), so a
-- repeated send (a retry after a lost answer) is recorded once and fires a flow once. What
-- Klaviyo would refuse is refused here, with nothing sent: no profile identifier, no metric
-- name, a phone number not in E.164, more than 400 properties, a string over 100 KB, an
-- array over 4000 items, more than 10 levels, a body over 5 MB, a time before 1990 or more
-- than a year ahead, cyclic tables, NaN and infinities.
-- @module klaviyo.events
local V = require "klaviyo.validate"
local layout = require "klaviyo.event_layout"
local R = require "klaviyo.resource"

local type, pairs, error = type, pairs, error
local format = string.format
local huge = math.huge
local LIMITS = V.LIMITS

-- The module's functions, and the methods of the object `new(client)` returns.
---@class klaviyo.events
local _M, mt = R.methods("events")

local EVENT_KEYS = V.set({ "metric", "service", "profile", "properties", "value",
  "value_currency", "time", "unique_id", "backfill" })

-- Room for the JSON:API envelope around an event in a request body.
local ENVELOPE = 512

-- Check one event as Klaviyo would judge it, building nothing on the way (tracker:track
-- encodes the caller's own tables from what this returns). Returns metric, properties (the
-- caller's, or nil for none), the profile's attributes (the caller's profile table itself when
-- it holds nothing else), the time (ISO 8601, or nil when not given), the unique_id (the
-- caller's, or a new one) and the event's estimated JSON size; or nil, message, pointer.
-- What the event's other fields hold (service, value, value_currency, backfill) has been
-- checked. Wrong Lua types for scalar options raise at `level` (default 2: the caller's
-- caller): they are bugs in the caller, not bad data.
local function check(ev, fname, at, now, level)
  level = level or 2
  if type(ev) ~= "table" then
    error(format("%s: event%s must be a table, got %s", fname, at, type(ev)), level + 1)
  end
  for k in pairs(ev) do
    if not EVENT_KEYS[k] then V.known(ev, EVENT_KEYS, fname, level + 2) end
  end
  local metric = ev.metric
  if type(metric) ~= "string" or metric == "" then
    return nil, "the metric name is required (metric = \"Placed Order\")", at .. "/metric"
  end
  if not V.utf8(metric) then return nil, "the metric name is not valid UTF-8", at .. "/metric" end
  local service = ev.service
  if type(service) == "string" and not V.utf8(service) then
    return nil, "service is not valid UTF-8", at .. "/service"
  end
  -- the profile's identity first, then the properties, then the profile's attributes: the
  -- order the checks report in (event_profile says what is wrong with either part)
  local pattrs, psize, pptr = V.event_profile(ev.profile, at)
  if not pattrs then
    local ok, msg, ptr = V.profile_identity(ev.profile, at .. "/profile")
    if not ok then return nil, msg, ptr end
  end
  local props = ev.properties
  local size = 2
  if props ~= nil then
    local pmsg, pptr2
    size, pmsg, pptr2 = V.properties(props, at == "" and "/properties" or at .. "/properties")
    if not size then return nil, pmsg, pptr2 end
  end
  if not pattrs then return nil, psize, pptr end
  size = size + psize + #metric + ENVELOPE

  local value = ev.value
  if value ~= nil then
    if type(value) ~= "number" then
      error(format("%s: value%s must be a number, got %s", fname, at, type(value)), level + 1)
    end
    if value ~= value or value == huge or value == -huge then
      return nil, "value must be a finite number", at .. "/value"
    end
  end
  if ev.value_currency ~= nil and type(ev.value_currency) ~= "string" then
    error(format("%s: value_currency must be a string", fname), level + 1)
  end
  local time = ev.time
  if time ~= nil then
    local t, tmsg = V.event_time(time, now)
    if not t then return nil, tmsg, at .. "/time" end
    time = V.iso(t)
    size = size + #time
  end
  if ev.backfill ~= nil and type(ev.backfill) ~= "boolean" then
    error(format("%s: backfill must be a boolean", fname), level + 1)
  end
  local uid = ev.unique_id
  if uid == nil then
    uid = V.uuid()
  elseif type(uid) ~= "string" or uid == "" then
    error(format("%s: unique_id must be a non-empty string", fname), level + 1)
  end
  size = size + #uid + 64
  if size > LIMITS.payload_bytes then
    return nil, format("the event is about %d bytes, over Klaviyo's 5 MB limit", size), at
  end
  return metric, props, pattrs, time, uid, size
end

--- Check one event (as `events:create` does) without building anything for it.
-- @local
-- @return metric, properties (or nil), profile attributes, time (or nil), unique_id, size;
--   or nil, message, pointer
_M.check = check

-- The attributes of one event (create_event's data.attributes without its profile, which is
-- a bulk entry's event as it is), checked. Returns attrs, profile resource, size, unique_id;
-- or nil, message, pointer (klaviyo.event_layout puts the two together).
local function build(ev, fname, at, now)
  local metric, props, pattrs, time, uid, size = check(ev, fname, at, now, 3)
  if not metric then return nil, props, pattrs end
  local attrs = layout.attributes(metric, ev.service, props or {}, ev.value, ev.value_currency,
    time, ev.backfill, uid)
  return attrs, { type = "profile", id = ev.profile.id, attributes = pattrs }, size, uid
end

--- Check one event and build its `create_event` attributes (shared with `client_api:track`).
-- @local
-- @return attrs, profile resource, size, unique_id; or nil, message, pointer
_M.build = build

--- Send one event (`create_event`).
---@param ev table `metric` (name, required), `profile` (a table with at least one of `id`,
--   `email`, `phone_number` (E.164), `external_id`; other profile attributes allowed),
--   `properties`, `value`, `value_currency`, `time` (epoch seconds, ISO 8601 or a date
--   table), `unique_id`, `backfill` (record without triggering flows), `service`.
---@return string # the event's `unique_id` (the one given, or the generated one)
-- @return or nil, err, unique_id (err.kind == "refused" when nothing was sent; with the
--   unique_id a later resend of the same event is still recorded once)
function _M:create(ev)
  V.self(self, mt, "events:create")
  local attrs, msg, ptr, uid = build(ev, "events:create", "", nil)
  if not attrs then
    return nil, V.refuse("create_event", msg, ptr), type(ev) == "table" and ev.unique_id or nil
  end
  local ok, err = self.client:call("create_event", { body = layout.event_body(attrs, msg) })
  if not ok then return nil, err, uid end
  return uid
end

--- Send many events as `bulk_create_events` jobs of at most 1000 events and 5 MB each.
-- Every event is checked before the first job is sent: one bad event refuses the whole
-- list (the error's pointer says which, e.g. `/1500/profile`), nothing sent.
---@param list table array of events, each as for `create`
---@return table # `{jobs = n, events = n, unique_ids = {...}}` (unique_ids[i] belongs to
--   list[i]; resending with them is recorded once)
-- @return or nil, err, partial (`partial.jobs`/`partial.events` already accepted, and
--   `unique_ids` for all)
function _M:create_many(list)
  V.self(self, mt, "events:create_many")
  V.argcheck(type(list) == "table", "events:create_many", 1, "array of events", list)
  local n, hmsg, hptr = V.dense(list, "")
  if not n then return nil, V.refuse("bulk_create_events", hmsg, hptr) end
  local entries, sizes, uids = {}, {}, {}
  for i = 1, n do
    local at = "/" .. (i - 1)
    local attrs, profile_or_msg, size_or_ptr, uid = build(list[i], "events:create_many", at, nil)
    if not attrs then
      return nil, V.refuse("bulk_create_events", profile_or_msg, size_or_ptr)
    end
    entries[i] = layout.bulk_entry(attrs, profile_or_msg)
    sizes[i] = size_or_ptr
    uids[i] = uid
  end
  local chunks, cmsg, bad = V.chunk(entries, LIMITS.bulk_events, LIMITS.payload_bytes - ENVELOPE,
    sizes)
  if not chunks then
    return nil, V.refuse("bulk_create_events", cmsg, "/" .. (bad - 1))
  end
  local result = { jobs = 0, events = 0, unique_ids = uids }
  for j = 1, #chunks do
    local ok, err = self.client:call("bulk_create_events", { body = layout.bulk_body(chunks[j]) })
    if not ok then return nil, err, result end
    result.jobs = result.jobs + 1
    result.events = result.events + #chunks[j]
  end
  return result
end

local EACH_KEYS = V.set({ "filter", "metric_id", "profile_id", "sort", "page_size", "fields",
  "include" })

--- Iterate over events (`get_events`), newest pages first as Klaviyo returns them.
---@param q table? `filter` (string or `klaviyo.filter` expression), or the shortcuts
--   `metric_id=` / `profile_id=`; `sort` ("datetime", "-datetime", ...), `page_size`,
--   `fields` (array of event fields), `include` (e.g. "metric,profile").
---@return function # iterator yielding flat events (`id`, `timestamp`, `datetime`, `uuid`,
--   `event_properties`, `metric_id`, `profile_id`, `_raw`), or `false, err` once on failure
function _M:each(q)
  V.self(self, mt, "events:each")
  q = V.table_arg(q or {}, EACH_KEYS, "events:each", 1)
  local F = require "klaviyo.filter"
  local filter = q.filter
  if q.metric_id or q.profile_id then
    if filter then error("events:each: give filter or metric_id/profile_id, not both", 2) end
    local parts = {}
    if q.metric_id then parts[#parts + 1] = F.equals("metric_id", q.metric_id) end
    if q.profile_id then parts[#parts + 1] = F.equals("profile_id", q.profile_id) end
    filter = #parts == 1 and parts[1] or F.and_(parts[1], parts[2])
  end
  return R.flat_iter(self.client:paginate("get_events", {
    filter = filter, sort = q.sort, ["page[size]"] = q.page_size,
    ["fields[event]"] = q.fields, include = q.include,
  }))
end

--- Read one event (`get_event`).
---@param id string
---@return table # flat event, or nil, err
function _M:get(id)
  V.self(self, mt, "events:get")
  V.id(id, "events:get", "event")
  return R.one("get_event", self.client:call("get_event", { id = id }))
end

return _M
