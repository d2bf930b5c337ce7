-- klaviyo.event_layout: where Klaviyo's event API puts each part of an event, for every module
-- that builds, stamps or reads events: create_event's body (the profile inside the event), a
-- bulk_create_events job (the profile beside its events in each entry), the tracker's spooled
-- record (one bulk entry), the metric, and where each event's unique_id goes. The C encoder is
-- handed STAMP and STAMP_KEY as data and writes a unique_id at those places; nothing else
-- knows the layout.
local type, ipairs, tonumber, match = type, ipairs, tonumber, string.match

local _M = {}

-- Where each event's attributes sit in a request body, per operation ("*": every item of an
-- array). The encoder writes a unique_id into each of them that has none (c:request's
-- unique_ids), in the bytes only.
local STAMP = {
  create_event = { "data", "attributes" },
  bulk_create_events = { "data", "attributes", "events-bulk-create", "data", "*", "attributes",
                         "events", "data", "*", "attributes" },
}
_M.STAMP = STAMP
-- The member of an event's attributes that holds its id (a JSON string needing no escapes).
_M.STAMP_KEY = "unique_id"

-- Does every place of path (from key i on) under v hold a table? An empty array holds none.
-- A loop over the keys; only a "*" goes down once per item.
local function reaches(v, path, i)
  for j = i, #path do
    if type(v) ~= "table" then return false end
    local k = path[j]
    if k == "*" then
      for _, item in ipairs(v) do
        if not reaches(item, path, j + 1) then return false end
      end
      return true
    end
    v = v[k]
  end
  return type(v) == "table"
end

-- Will every event of this call's body carry a unique_id once sent (op_id names an operation
-- of STAMP, and the body is a table whose every event has an attributes table)? A body given
-- as JSON text is sent as it is: nothing is stamped into it.
function _M.unique_ids(op_id, params)
  local path = STAMP[op_id]
  if path == nil or type(params) ~= "table" then return false end
  return reaches(params.body, path, 1)
end

-- The metric part of an event.
function _M.metric(name, service)
  return { data = { type = "metric", attributes = { name = name, service = service } } }
end

-- The attributes of one event, without its profile.
function _M.attributes(metric, service, properties, value, value_currency, time, backfill, uid)
  return { properties = properties, metric = _M.metric(metric, service), value = value,
           value_currency = value_currency, time = time, backfill = backfill, unique_id = uid }
end

-- create_event's (and create_client_event's) body: the profile resource inside the event.
function _M.event_body(attrs, profile)
  attrs.profile = { data = profile }
  return { data = { type = "event", attributes = attrs } }
end

-- One entry of a bulk_create_events job: a profile and its events.
function _M.bulk_entry(attrs, profile)
  return { type = "event-bulk-create", attributes = {
    profile = { data = profile },
    events = { data = { { type = "event", attributes = attrs } } },
  } }
end

-- bulk_create_events' body around a list of entries.
function _M.bulk_body(entries)
  return { data = { type = "event-bulk-create-job",
                    attributes = { ["events-bulk-create"] = { data = entries } } } }
end

-- The same envelope as JSON text, around entries joined with ",".
_M.PREFIX = '{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":{"data":['
_M.SUFFIX = ']}}}}'

-- A spooled record: one bulk entry, a profile and its one event, as a template for the spool
-- writer's encode (the texts as they are, the values between them as JSON; a nil value leaves
-- out its member). The values, in order: profile attributes, profile id, properties, metric
-- name, service, time, unique_id, value, value_currency, backfill.
_M.RECORD = table.concat({
  '{"type":"event-bulk-create","attributes":{"profile":{"data":{"type":"profile",' ..
    '"attributes":',
  ',"id":',
  '}},"events":{"data":[{"type":"event","attributes":{"properties":',
  ',"metric":{"data":{"type":"metric","attributes":{"name":',
  ',"service":',
  '}}},"time":',
  ',"unique_id":',
  ',"value":',
  ',"value_currency":',
  ',"backfill":',
  '}}]}}}',
}, "\0")

-- The unique_id of a decoded bulk entry's event, or nil.
function _M.entry_unique_id(entry)
  local ev = type(entry) == "table" and type(entry.attributes) == "table" and
    type(entry.attributes.events) == "table" and type(entry.attributes.events.data) == "table" and
    entry.attributes.events.data[1]
  return type(ev) == "table" and type(ev.attributes) == "table" and ev.attributes.unique_id
end

-- Where a bulk_create_events body's entries are, for an error's JSON pointer: the entry's
-- 0-based index, then the rest of the pointer.
local ENTRY = "^/data/attributes/events%-bulk%-create/data/(%d+)(.*)$"

-- The 0-based index of the bulk entry an error's JSON pointer names, or nil.
function _M.entry_index(pointer)
  local n = type(pointer) == "string" and match(pointer, ENTRY)
  return n and tonumber(n) or nil
end

-- The part of an error's JSON pointer inside one bulk entry ("/profile/...", "/events/..."),
-- or nil when it points elsewhere.
function _M.entry_pointer(pointer)
  if type(pointer) ~= "string" then return nil end
  local _, rest = match(pointer, ENTRY)
  return rest
end

return _M
