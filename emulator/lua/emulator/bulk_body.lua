-- A bulk_create_events body read straight into validated event specs, for the common body.
--
-- Why: decoding a bulk body built ~12 tables and ~25 strings per event (the JSON:API envelope:
-- entry, attributes, profile, data, events, data, event, attributes, metric, data, attributes),
-- and that was most of the emulator's CPU per bulk event. Only the event's properties and the
-- profile's attributes survive validation; the envelope is walked here in place, and the
-- values that matter are decoded with emulator.json.
--
-- The result is the one the decode-then-validate path gives: every event goes through the same
-- events validation (given tables of the same content), in document order. Anything this walk
-- does not take exactly as that path would (an unknown or repeated key, an unexpected type, a
-- JSON text emulator.json leaves to cjson, an event that validation refuses, a profile id, a
-- backfill on the entry, more than 1000 events) gives nil: the caller then decodes and
-- validates the usual way, which produces the answer, error or not.
local json = require "emulator.json"

local value_at = json.value_at
local byte, sub, find, type, pairs, ipairs = string.byte, string.sub, string.find, type, pairs, ipairs

local M = {}

local QUOTE, COMMA, COLON = 34, 44, 58
local LBRACE, RBRACE, LBRACKET, RBRACKET = 123, 125, 91, 93
local SPACE, TAB, LF, CR = 32, 9, 10, 13
local MAX_EVENTS = 1000

local function ws(s, i)
  local c = byte(s, i)
  while c == SPACE or c == LF or c == CR or c == TAB do
    i = i + 1
    c = byte(s, i)
  end
  return i, c
end

-- The shape taken, as nodes: an object (members by key, each with a bit for "seen"; the
-- required ones; open/close actions), an array of one element node, a value kept in a slot
-- of the walk's state, a constant string, or a value skipped (one the usual path never reads).
-- The walk is one loop with an explicit stack: recursive functions do not compile into
-- LuaJIT traces.
local function object_node(members, required, open, close)
  local node = { kind = "object", members = {}, required = {}, open = open, close = close }
  local b = 1
  for key, child in pairs(members) do
    node.members[key] = { node = child, bit = b }
    b = b * 2
  end
  for k, key in ipairs(required) do node.required[k] = node.members[key].bit end
  return node
end
local function slot(name) return { kind = "value", slot = name } end
local function const(v) return { kind = "const", value = v } end
local SKIP = { kind = "skip" }

local function has(seen, b) return seen % (b + b) >= b end

-- Reused tables given to validation in place of the decoded event and profile resources:
-- validation reads them and keeps none of them (it copies what it keeps).
local ev_attrs, metric_attrs = {}, {}
local metric = { data = { attributes = metric_attrs } }
local profile_data = {}

local function event_open(w)
  w.e_name, w.e_time, w.e_value, w.e_currency, w.e_unique_id, w.e_backfill, w.e_props =
    nil, nil, nil, nil, nil, nil, nil
  return true
end

local function event_close(w)
  local n = w.n + 1
  if w.total + n > MAX_EVENTS then return false end
  w.n = n
  w.ev_name[n], w.ev_time[n], w.ev_value[n], w.ev_currency[n] = w.e_name, w.e_time, w.e_value, w.e_currency
  w.ev_unique_id[n], w.ev_backfill[n], w.ev_props[n] = w.e_unique_id, w.e_backfill, w.e_props
  return true
end

local function entry_open(w)
  w.pattrs, w.n = nil, 0
  return true
end

-- An entry's events, validated with its profile as the usual path validates them.
local function entry_close(w)
  if type(w.pattrs) ~= "table" then return false end
  profile_data.attributes = w.pattrs
  local specs, validate, now = w.specs, w.validate, w.now
  for k = 1, w.n do
    ev_attrs.metric = metric
    metric_attrs.name = w.ev_name[k]
    ev_attrs.properties, ev_attrs.time, ev_attrs.value = w.ev_props[k], w.ev_time[k], w.ev_value[k]
    ev_attrs.value_currency, ev_attrs.unique_id = w.ev_currency[k], w.ev_unique_id[k]
    ev_attrs.backfill = w.ev_backfill[k]
    -- pointers only name a refused value, and a refusal hands the body to the usual path
    local spec = validate(ev_attrs, "", profile_data, "", now)
    if not spec then return false end
    specs[#specs + 1] = spec
  end
  w.total = w.total + w.n
  return true
end

-- Event attributes are kept as values; validation judges them as it judges decoded ones.
local METRIC = object_node({ data = object_node({
  attributes = object_node({ name = slot("e_name") }, { "name" }),
  type = SKIP,
}, { "attributes" }) }, { "data" })
local EVENT = object_node({
  type = const("event"),
  attributes = object_node({
    metric = METRIC, properties = slot("e_props"), time = slot("e_time"), value = slot("e_value"),
    value_currency = slot("e_currency"), unique_id = slot("e_unique_id"), backfill = slot("e_backfill"),
  }, { "metric" }),
}, { "type", "attributes" }, event_open, event_close)
-- no "id" in the profile (checked against the account), no "backfill" on the entry (it is
-- copied into its events): the usual path handles those
local ENTRY = object_node({
  type = const("event-bulk-create"),
  attributes = object_node({
    profile = object_node({ data = object_node({ attributes = slot("pattrs"), type = SKIP },
      { "attributes" }) }, { "data" }),
    events = object_node({ data = { kind = "array", element = EVENT } }, { "data" }),
  }, { "profile", "events" }),
}, { "type", "attributes" }, entry_open, entry_close)
local BODY = object_node({ data = object_node({
  type = const("event-bulk-create-job"),
  attributes = object_node({ ["events-bulk-create"] = object_node({
    data = { kind = "array", element = ENTRY } }, { "data" }) }, { "events-bulk-create" }),
}, { "type", "attributes" }) }, { "data" })

-- Walks `s` against BODY. Returns true when the whole text is taken.
local function walk(s, w)
  local nodes, seens = w.nodes, w.seens
  local depth = 0
  local node, seen = nil, 0
  local first -- just inside a container: no comma before its first member
  local want = BODY
  local i, c = ws(s, 1)
  while true do
    -- a value for `want` starts at i
    local kind = want.kind
    if kind == "object" or kind == "array" then
      if c ~= (kind == "object" and LBRACE or LBRACKET) then return false end
      if want.open and not want.open(w) then return false end
      depth = depth + 1
      nodes[depth], seens[depth] = node, seen
      node, seen, first = want, 0, true
      i, c = ws(s, i + 1)
    else
      if kind == "const" then
        if c ~= QUOTE then return false end
        local j = find(s, '"', i + 1, true)
        if not j or sub(s, i + 1, j - 1) ~= want.value then return false end
        i = j + 1
      else
        local v, j = value_at(s, i)
        if not j then return false end
        if kind == "value" then w[want.slot] = v end
        i = j
      end
      first = false
      i, c = ws(s, i)
    end
    -- inside `node`: the next member or element, or the end of the container (maybe several)
    while true do
      local close = node.kind == "object" and RBRACE or RBRACKET
      if c == close and not (first and close == RBRACKET) then
        local required = node.required
        if required then
          for k = 1, #required do
            if not has(seen, required[k]) then return false end
          end
        end
        if node.close and not node.close(w) then return false end
        node, seen = nodes[depth], seens[depth]
        depth = depth - 1
        i, c = ws(s, i + 1)
        if depth == 0 then return c == nil end
        first = false
      else
        if not first then
          if c ~= COMMA then return false end
          i, c = ws(s, i + 1)
        end
        if node.kind == "object" then
          if c ~= QUOTE then return false end
          local j = find(s, '"', i + 1, true)
          if not j then return false end
          local m = node.members[sub(s, i + 1, j - 1)]
          if not m or has(seen, m.bit) then return false end
          seen = seen + m.bit
          i, c = ws(s, j + 1)
          if c ~= COLON then return false end
          i, c = ws(s, i + 1)
          want = m.node
        else
          want = node.element
        end
        break
      end
    end
  end
end

--- The validated event specs of bulk body `s` in document order, or nil: see above.
-- validate(attrs, pointer, profile_data, profile_pointer, now) is the events validation.
function M.specs(s, validate, now)
  if find(s, "\\", 1, true) or find(s, "\0", 1, true) then return nil end
  local w = { specs = {}, validate = validate, now = now, total = 0, n = 0, nodes = {}, seens = {},
              ev_name = {}, ev_time = {}, ev_value = {}, ev_currency = {}, ev_unique_id = {},
              ev_backfill = {}, ev_props = {} }
  if not walk(s, w) or w.total == 0 then return nil end
  return w.specs
end

return M
