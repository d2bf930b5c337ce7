--- Local checks that refuse what Klaviyo would refuse, before anything is sent.
--
-- Pure functions (no I/O except reading /dev/urandom for ids): profile identifiers, E.164
-- phone numbers, event ingestion limits, cyclic tables, NaN and infinities, time parsing and
-- ISO 8601 formatting, `unique_id` generation, JSON size estimates and chunking. The
-- idiomatic modules (`klaviyo.events`, `klaviyo.profiles`, ...) call these so that a request
-- Klaviyo would answer 400 (or worse, accept and fire a flow twice) never leaves the process.
--
-- Functions that check data return `true` (or a value) on success and `nil, message, pointer`
-- on failure, where `pointer` is a JSON pointer into the data the caller gave (e.g.
-- `/properties/items/3`). `refuse` turns that into the error table every module returns.
-- @module klaviyo.validate
local errors = require "klaviyo.errors"
local R = require "klaviyo.resource"

local type, pairs, tostring, tonumber, getmetatable = type, pairs, tostring, tonumber,
  getmetatable
local floor, huge = math.floor, math.huge
local format, byte, find, match, gsub = string.format, string.byte, string.find, string.match,
  string.gsub
local concat = table.concat
local own_field, attributes = R.own_field, R.attributes
local time = os.time

local _M = {}

--- Klaviyo's documented ingestion limits for one event (and bulk requests).
-- @table LIMITS
_M.LIMITS = {
  payload_bytes   = 5 * 1024 * 1024, -- a request body (event, bulk job)
  properties      = 400,             -- keys in an event's `properties`
  string_bytes    = 100 * 1024,      -- any string value
  array_items     = 4000,            -- any array
  depth           = 10,              -- nesting levels inside `properties`
  bulk_events     = 1000,            -- events in one bulk_create_events job
  bulk_profiles   = 10000,           -- profiles in one bulk_import_profiles job
  list_members    = 1000,            -- profile ids per add/remove list call
  profile_bytes   = 100 * 1024,      -- create_or_update_profile payload
}
local LIMITS = _M.LIMITS

--- The profile identifiers Klaviyo can look a profile up by (a name is not one).
_M.IDENTIFIERS = { "id", "email", "phone_number", "external_id" }

--- Build the error table modules return for a local refusal (kind `"refused"`, nothing sent).
-- @tparam string operation the operation that was not sent
-- @tparam string detail what is wrong, in one sentence
-- @tparam[opt] string pointer JSON pointer into the caller's data
-- @treturn table error with the `klaviyo.errors` metatable
function _M.refuse(operation, detail, pointer)
  return errors.new("refused", operation, detail, { code = "invalid", pointer = pointer })
end

-- Escape one JSON pointer token (RFC 6901).
local function ptok(k)
  k = tostring(k)
  if find(k, "[~/]") then k = gsub(gsub(k, "~", "~0"), "/", "~1") end
  return k
end
_M.pointer_token = ptok

-- Identifiers -------------------------------------------------

--- Is `s` a phone number in E.164 (`+` then 7 to 15 digits, no leading zero)?
-- @tparam string s
-- @treturn boolean
function _M.is_e164(s)
  if type(s) ~= "string" then return false end
  local digits = match(s, "^%+([1-9]%d+)$")
  return digits ~= nil and #digits >= 7 and #digits <= 15
end

--- Is `s` shaped like an email address (one `@`, a dot in the domain, no spaces)?
-- Klaviyo answers 400 for malformed addresses; this catches the obvious ones locally.
function _M.is_email(s)
  if type(s) ~= "string" then return false end
  return #s <= 254 and match(s, "^[^@%s]+@[^@%s%.][^@%s]*%.[^@%s%.][^@%s]*$") ~= nil and
    not find(s, "%.%.")
end

--- Check a profile reference used by events and subscriptions: at least one identifier,
-- each well formed.
-- @tparam table p profile fields (`id`, `email`, `phone_number`, `external_id`, ...)
-- @tparam[opt=""] string at JSON pointer prefix for messages
-- @return true, or nil, message, pointer
function _M.profile_identity(p, at)
  at = at or ""
  if type(p) ~= "table" then
    return nil, "a profile (table with id, email, phone_number or external_id) is required", at
  end
  local found = false
  for i = 1, #_M.IDENTIFIERS do
    local k = _M.IDENTIFIERS[i]
    local v = p[k]
    if v ~= nil and type(v) ~= "userdata" then -- a JSON null identifies nothing
      if type(v) ~= "string" or v == "" then
        return nil, k .. " must be a non-empty string", at .. "/" .. k
      end
      found = true
    end
  end
  if not found then
    return nil, "the profile has no identifier: give at least one of id, email, phone_number " ..
      "(E.164) or external_id (a name does not identify a profile)", at
  end
  if type(p.email) == "string" and not _M.is_email(p.email) then
    return nil, "email is not a valid address: " .. p.email, at .. "/email"
  end
  if type(p.phone_number) == "string" and not _M.is_e164(p.phone_number) then
    return nil, "phone_number must be in E.164 format (e.g. +15005550006), got " ..
      p.phone_number, at .. "/phone_number"
  end
  return true
end

--- Check a lookup key: exactly one of the identifiers and nothing else.
-- @tparam table q e.g. `{email = "a@b.com"}`
-- @return the identifier name and value, or nil, message
function _M.lookup(q)
  local key, n = nil, 0
  for i = 1, #_M.IDENTIFIERS do
    local k = _M.IDENTIFIERS[i]
    if q[k] ~= nil then key, n = k, n + 1 end
  end
  local others = {}
  for k in pairs(q) do
    local known = false
    for i = 1, #_M.IDENTIFIERS do if k == _M.IDENTIFIERS[i] then known = true end end
    if not known then others[#others + 1] = tostring(k) end
  end
  table.sort(others)
  if n == 0 then
    local got = #others > 0 and (" (got " .. concat(others, ", ") .. ")") or ""
    return nil, "a profile is found by exactly one of id, email, phone_number or external_id" ..
      got .. "; Klaviyo cannot look a profile up by name"
  end
  if n > 1 or #others > 0 then
    return nil, "give exactly one of id, email, phone_number or external_id to find a profile"
  end
  local v = q[key]
  if type(v) ~= "string" or v == "" then return nil, key .. " must be a non-empty string" end
  if key == "phone_number" and not _M.is_e164(v) then
    return nil, "phone_number must be in E.164 format (e.g. +15005550006), got " .. v
  end
  return key, v
end

-- Time --------------------------------------------------------

-- Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's days_from_civil);
-- pure arithmetic so the local time zone never leaks in (os.time would use it).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = floor(z / 146097)
  local doe = z - era * 146097
  local yoe = floor((doe - floor(doe / 1460) + floor(doe / 36524) - floor(doe / 146096)) / 365)
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + floor(yoe / 4) - floor(yoe / 100))
  local mp = floor((5 * doy + 2) / 153)
  local d = doy - floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local MDAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

local function epoch_of(y, mo, d, h, mi, s)
  if mo < 1 or mo > 12 or d < 1 or d > MDAYS[mo] or h > 23 or mi > 59 or s >= 61 then
    return nil
  end
  if mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)) then
    return nil
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

--- Parse a time given as epoch seconds, an ISO 8601 string or an `os.date("!*t")` table.
-- ISO forms: `2026-11-26`, `2026-11-26T10:00:00Z`, `...T10:00:00.123+02:00`, `...T10:00`.
-- A string without an offset is taken as UTC.
-- @param t number | string | table
-- @treturn number epoch seconds (may have a fraction), or nil, message
function _M.parse_time(t)
  local ty = type(t)
  if ty == "number" then
    if t ~= t or t == huge or t == -huge then return nil, "time is not a finite number" end
    return t
  elseif ty == "table" then
    local y, mo, d = tonumber(t.year), tonumber(t.month), tonumber(t.day)
    if not (y and mo and d) then return nil, "a time table needs year, month and day" end
    local e = epoch_of(y, mo, d, tonumber(t.hour) or 0, tonumber(t.min) or 0,
      tonumber(t.sec) or 0)
    if not e then return nil, "time table is not a valid date" end
    return e
  elseif ty ~= "string" then
    return nil, "time must be epoch seconds, an ISO 8601 string or a date table"
  end
  local y, mo, d, rest = match(t, "^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil, "time is not ISO 8601 (YYYY-MM-DDTHH:MM:SSZ): " .. t end
  local h, mi, s, frac, off = 0, 0, 0, nil, ""
  if rest ~= "" then
    local hh, mm, tail = match(rest, "^[Tt ](%d%d):(%d%d)(.*)$")
    if not hh then return nil, "time is not ISO 8601 (YYYY-MM-DDTHH:MM:SSZ): " .. t end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, tail2 = match(tail, "^:(%d%d)(.*)$")
    if ss then
      s, tail = tonumber(ss), tail2
      local f, tail3 = match(tail, "^[%.,](%d+)(.*)$")
      if f then frac, tail = f, tail3 end
    end
    off = tail
  end
  local e = epoch_of(tonumber(y), tonumber(mo), tonumber(d), h, mi, s)
  if not e then return nil, "time is not a valid date: " .. t end
  if frac then e = e + tonumber("0." .. frac) end
  if off == "Z" or off == "z" or off == "" then
    return e
  end
  local sign, oh, om = match(off, "^([%+%-])(%d%d):?(%d%d)$")
  if not sign then return nil, "time has an unreadable UTC offset: " .. t end
  local delta = tonumber(oh) * 3600 + tonumber(om) * 60
  if sign == "+" then return e - delta end
  return e + delta
end

--- Format epoch seconds as ISO 8601 UTC, `2026-11-26T10:00:00+00:00` (milliseconds kept when
-- the time has a fraction).
-- @tparam number t epoch seconds
-- @treturn string
function _M.iso(t)
  local whole = floor(t)
  local ms = floor((t - whole) * 1000 + 0.5)
  if ms >= 1000 then whole, ms = whole + 1, 0 end
  local days = floor(whole / 86400)
  local secs = whole - days * 86400
  local y, m, d = civil_from_days(days)
  local base = format("%04d-%02d-%02dT%02d:%02d:%02d", y, m, d, floor(secs / 3600),
    floor(secs % 3600 / 60), secs % 60)
  if ms > 0 then base = base .. format(".%03d", ms) end
  return base .. "+00:00"
end

_M.MIN_EVENT_TIME = 631152000 -- 1990-01-01T00:00:00Z
_M.MAX_AHEAD = 365 * 86400    -- at most a year ahead of now

--- Check an event time is within Klaviyo's window (after 1990, at most a year ahead).
-- @param t time in any form `parse_time` reads
-- @tparam[opt] number now epoch seconds (defaults to os.time())
-- @return epoch seconds, or nil, message
function _M.event_time(t, now)
  local e, msg = _M.parse_time(t)
  if not e then return nil, msg end
  if e < _M.MIN_EVENT_TIME then
    return nil, "event time " .. _M.iso(e) .. " is before 1990-01-01, which Klaviyo refuses"
  end
  now = now or time()
  if e > now + _M.MAX_AHEAD then
    return nil, "event time " .. _M.iso(e) .. " is more than a year ahead, which Klaviyo refuses"
  end
  return e
end

-- Values: cycles, NaN/inf, ingestion limits, JSON size --------

-- Bytes a string takes once JSON-encoded: quotes, two-byte escapes for " \ and \b\f\n\r\t,
-- six bytes (\u00XX) for other control characters, and "/" which cjson escapes as "\/".
local ESC = {}
for i = 0, 31 do ESC[i] = 5 end
ESC[8], ESC[9], ESC[10], ESC[12], ESC[13] = 1, 1, 1, 1, 1
ESC[34], ESC[92], ESC[47], ESC[127] = 1, 1, 1, 5

--- Is s well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
-- U+10FFFF), as the JSON encoder requires? Runs of ASCII are skipped with one search each.
-- @tparam string s
-- @treturn boolean
function _M.utf8(s)
  local i, n = find(s, "[\128-\255]"), #s
  while i do
    local c, lo, hi = byte(s, i), 0x80, 0xBF
    local len
    if c >= 0xC2 and c <= 0xDF then len = 2
    elseif c >= 0xE0 and c <= 0xEF then
      len = 3
      if c == 0xE0 then lo = 0xA0 elseif c == 0xED then hi = 0x9F end
    elseif c >= 0xF0 and c <= 0xF4 then
      len = 4
      if c == 0xF0 then lo = 0x90 elseif c == 0xF4 then hi = 0x8F end
    else
      return false
    end
    if i + len - 1 > n then return false end
    local c2 = byte(s, i + 1)
    if c2 < lo or c2 > hi then return false end
    for j = i + 2, i + len - 1 do
      local cj = byte(s, j)
      if cj < 0x80 or cj > 0xBF then return false end
    end
    i = find(s, "[\128-\255]", i + len)
  end
  return true
end
local utf8_ok = _M.utf8

-- The encoded size of string s, or nil when s is not valid UTF-8 (the encoder refuses it):
-- every string the checks below measure, keys and values, passes here.
local function string_size(s)
  if not utf8_ok(s) then return nil end
  local n = #s + 2
  if find(s, '[%c"\\/]') then
    for i = 1, #s do
      local extra = ESC[byte(s, i)]
      if extra then n = n + extra end
    end
  end
  return n
end

-- Digits of an integer are counted by comparisons, without making a string only to take its
-- length; other numbers as %.14g writes them.
local function digits(a) -- 0 <= a < 1e15
  if a < 1e8 then
    if a < 1e4 then
      if a < 100 then return a < 10 and 1 or 2 end
      return a < 1000 and 3 or 4
    end
    if a < 1e6 then return a < 1e5 and 5 or 6 end
    return a < 1e7 and 7 or 8
  end
  if a < 1e12 then
    if a < 1e10 then return a < 1e9 and 9 or 10 end
    return a < 1e11 and 11 or 12
  end
  if a < 1e14 then return a < 1e13 and 13 or 14 end
  return 15
end

local function number_size(v)
  if floor(v) == v and v > -1e15 and v < 1e15 then
    if v < 0 then return 1 + digits(-v) end
    return digits(v)
  end
  return #format("%.14g", v)
end

-- Classify a table: "array" (keys 1..n, n >= 1), "object" (string keys only, or empty), or
-- nil plus a message for mixed or sparse tables the encoder cannot represent.
local function shape(t)
  local n, max, strings = 0, 0, false
  for k in pairs(t) do
    n = n + 1
    local kt = type(k)
    if kt == "number" then
      if k < 1 or floor(k) ~= k then return nil, "has a non-integer or non-positive key" end
      if k > max then max = k end
    elseif kt == "string" then
      strings = true
    else
      return nil, "has a key of type " .. kt
    end
  end
  if strings then
    if max > 0 then return nil, "mixes array items and named keys" end
    return "object", n
  end
  if n == 0 then return "object", 0 end
  if max ~= n then return nil, "is a sparse array (holes between 1 and " .. max .. ")" end
  return "array", n
end

local walk_table

-- The walk behind `value`: a plain recursive function that builds no JSON pointer until
-- something fails: on failure it
-- returns the pointer of the bad value relative to `x`, and each level prepends its key.
local function walk(x, depth, seen, max_str, max_items, max_depth)
  local tx = type(x)
  if tx == "string" then
    if max_str and #x > max_str then
      return nil, format("string of %d bytes is over the %d-byte limit", #x, max_str), ""
    end
    local n = string_size(x)
    if not n then return nil, "string is not valid UTF-8", "" end
    return n
  elseif tx == "number" then
    if x ~= x then return nil, "NaN cannot be sent as JSON", "" end
    if x == huge or x == -huge then return nil, "infinity cannot be sent as JSON", "" end
    return number_size(x)
  elseif tx == "boolean" then
    return x and 4 or 5
  elseif tx == "userdata" or tx == "nil" then
    return 4 -- klaviyo.null / cjson.null
  elseif tx ~= "table" then
    return nil, "a " .. tx .. " cannot be sent as JSON", ""
  end
  local m = getmetatable(x)
  if m ~= nil and m.__jsontype == "null" then return 4 end -- klaviyo.null
  if seen[x] then return nil, "the table contains itself (a cycle)", "" end
  if max_depth and depth > max_depth then
    return nil, format("nesting is deeper than %d levels", max_depth), ""
  end
  local kind, n = shape(x)
  if not kind then return nil, "table " .. n, "" end
  return walk_table(x, kind, n, depth, seen, max_str, max_items, max_depth)
end

-- The part of `walk` after a table's shape is known (`properties` knows it already).
walk_table = function(x, kind, n, depth, seen, max_str, max_items, max_depth)
  seen[x] = true
  local size = 2
  if kind == "array" then
    if max_items and n > max_items then
      seen[x] = nil
      return nil, format("array of %d items is over the %d-item limit", n, max_items), ""
    end
    for i = 1, n do
      local s, msg, p = walk(x[i], depth + 1, seen, max_str, max_items, max_depth)
      if not s then return nil, msg, "/" .. (i - 1) .. p end
      size = size + s + 1
    end
  else
    for k, val in pairs(x) do
      local s, msg, p = walk(val, depth + 1, seen, max_str, max_items, max_depth)
      if not s then return nil, msg, "/" .. ptok(k) .. p end
      local ks = string_size(k)
      if not ks then
        seen[x] = nil
        return nil, "key is not valid UTF-8", "/" .. ptok(k)
      end
      size = size + ks + 1 + s + 1
    end
  end
  seen[x] = nil -- a table reached twice without a cycle (a DAG) is fine
  return size
end

--- Walk a Lua value as the JSON encoder would, checking it can be encoded (no cycles, NaN,
-- infinities, functions, mixed or sparse tables) and within the limits, and measure its
-- encoded size.
-- @param v the value
-- @tparam[opt] table lim `{string_bytes=, array_items=, depth=}` (nil fields are unlimited)
-- @tparam[opt=""] string at JSON pointer of `v` for messages
-- @treturn number encoded size in bytes (an upper bound), or nil, message, pointer
-- The walk's set of tables being walked (cycle detection): every table it enters leaves it
-- on the way out, so one set serves every walk (no table made per event); a walk that
-- failed part-way leaves entries behind, so it gets a fresh set.
local seen_set = {}

function _M.value(v, lim, at)
  lim = lim or {}
  local size, msg, p = walk(v, 1, seen_set, lim.string_bytes, lim.array_items, lim.depth)
  if not size then
    seen_set = {}
    return nil, msg, (at or "") .. p
  end
  return size
end

local STRING_BYTES, ARRAY_ITEMS, DEPTH = LIMITS.string_bytes, LIMITS.array_items, LIMITS.depth

-- The size of one member `"k":v` of an object at depth 1 under the ingestion limits, or nil
-- when there is anything to say about it (the full walk then says what). Scalars, the usual
-- members, are measured inline; tables go through `walk`, which leaves entries in seen_set
-- when it fails (the caller starts a new set then). The object itself is not put in
-- seen_set: a cycle back to it is still found, one level further down, and then the full
-- walk reports it.
local function member_size(k, v)
  if type(k) ~= "string" then return nil end
  local tv = type(v)
  local s
  if tv == "string" then
    if #v > STRING_BYTES then return nil end
    s = string_size(v)
    if not s then return nil end
  elseif tv == "number" then
    if v ~= v or v == huge or v == -huge then return nil end
    s = number_size(v)
  elseif tv == "boolean" then
    s = v and 4 or 5
  else
    s = walk(v, 2, seen_set, STRING_BYTES, ARRAY_ITEMS, DEPTH)
    if not s then return nil end
  end
  local ks = string_size(k)
  return ks and ks + s + 2
end

-- The full checks of `properties`, which say what is wrong (and measure what they accept).
local function properties_full(props, at)
  local kind, n = shape(props)
  if kind ~= "object" then return nil, "properties must be a table with named keys", at end
  if n > LIMITS.properties then
    return nil, format("%d properties is over Klaviyo's limit of %d", n, LIMITS.properties), at
  end
  local m = getmetatable(props)
  if m ~= nil and m.__jsontype == "null" then return 4 end -- klaviyo.null, as `value` says
  local size, msg, p = walk_table(props, kind, n, 1, seen_set, STRING_BYTES, ARRAY_ITEMS, DEPTH)
  if not size then
    seen_set = {}
    return nil, msg, at .. p
  end
  return size
end

--- Check an event's `properties` against Klaviyo's ingestion limits (at most 400 keys, strings
-- at most 100 KB, arrays at most 4000 items, 10 levels) and encodability.
-- @tparam table props
-- @tparam[opt="/properties"] string at pointer prefix
-- @treturn number encoded size, or nil, message, pointer
function _M.properties(props, at)
  at = at or "/properties"
  if type(props) ~= "table" then return nil, "properties must be a table", at end
  -- one pass over the members, building nothing (this runs for every tracked event); a
  -- table with a metatable, or anything to report, goes to the full checks, which say what
  if getmetatable(props) == nil then
    local size, n = 2, 0
    for k, v in pairs(props) do
      local s = member_size(k, v)
      if not s then n = -1 break end
      n, size = n + 1, size + s
    end
    if n >= 0 and n <= LIMITS.properties then return size end
    seen_set = {}
  end
  return properties_full(props, at)
end

-- An identifier as profile_identity accepts it: absent (nil or a JSON null), or a non-empty
-- string. Returns 0 (absent), 1 (present), or nil (something to report).
local function ident(v)
  if v == nil then return 0 end
  local tv = type(v)
  if tv == "string" then return v ~= "" and 1 or nil end
  if tv == "userdata" then return 0 end
  return nil
end

--- Check the profile of an event: `profile_identity`, then its attributes as `value` checks
-- them under the ingestion limits. One pass building nothing when the profile holds only
-- attributes besides its identifiers (the usual case: the profile is then its own attributes
-- table); anything to report goes through the full checks, which say what.
-- @tparam table p flat profile (`email`, `phone_number`, `id`, `external_id`, attributes)
-- @tparam[opt=""] string at JSON pointer of the event (messages point into `at/profile`)
-- @return attributes (p itself, or a new table without id, type and "_" names), their
--   encoded size; or nil, message, pointer
function _M.event_profile(p, at)
  if type(p) == "table" and getmetatable(p) == nil then
    local size, plain, ok = 2, true, true
    for k, v in pairs(p) do
      if own_field(k) then
        plain = false
      else
        local s = member_size(k, v)
        if not s then ok = false break end
        size = size + s
      end
    end
    if ok then
      local email, phone = p.email, p.phone_number
      local a, b, c, d = ident(p.id), ident(email), ident(phone), ident(p.external_id)
      if a and b and c and d and a + b + c + d > 0 and
          (b == 0 or type(email) ~= "string" or _M.is_email(email)) and
          (c == 0 or type(phone) ~= "string" or _M.is_e164(phone)) then
        if plain then return p, size end
        return attributes(p), size
      end
    else
      seen_set = {}
    end
  end
  at = (at or "") .. "/profile"
  local ok, msg, ptr = _M.profile_identity(p, at)
  if not ok then return nil, msg, ptr end
  local attrs = attributes(p)
  local size, vmsg, vptr = _M.value(attrs, LIMITS, at)
  if not size then return nil, vmsg, vptr end
  return attrs, size
end

-- Ids and chunks ----------------------------------------------

--- A random RFC 4122 version 4 UUID (lowercase), used as an event's `unique_id` so a repeated
-- send is recorded once. Made by the C core from /dev/urandom bytes (a pool per Lua state
-- that a forked nginx worker refills, so no two processes hand out the same ids); raises
-- when no random bytes can be read.
-- @treturn string
_M.uuid = require("klaviyo.core").uuid

--- Split items into chunks of at most `max_count` items and `max_bytes` bytes.
-- @tparam table items array
-- @tparam number max_count
-- @tparam[opt] number max_bytes budget per chunk for the items' sizes
-- @tparam[opt] table sizes `sizes[i]` = size of `items[i]` (required with max_bytes)
-- @treturn table array of arrays; or nil, message, index when one item alone is too big
function _M.chunk(items, max_count, max_bytes, sizes)
  local chunks, cur, bytes = {}, {}, 0
  for i = 1, #items do
    local s = sizes and sizes[i] or 0
    if max_bytes and s > max_bytes then
      return nil, format("item %d is %d bytes, over the %d-byte request limit", i, s, max_bytes), i
    end
    if #cur >= max_count or (max_bytes and bytes + s > max_bytes) then
      chunks[#chunks + 1] = cur
      cur, bytes = {}, 0
    end
    cur[#cur + 1] = items[i]
    bytes = bytes + s
  end
  if #cur > 0 then chunks[#chunks + 1] = cur end
  return chunks
end

--- Raise a programmer error (wrong argument type) at the caller's caller.
-- @param cond raise when false or nil
-- @tparam string fname function name, e.g. "events:create"
-- @tparam number n argument position
-- @tparam string expected type name(s)
-- @param got the value
-- @tparam[opt=3] number level error level (3: the caller of the function that called this)
function _M.argcheck(cond, fname, n, expected, got, level)
  if not cond then
    error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected,
      type(got)), level or 3)
  end
end

--- Raise on option names a function does not know (a typo would otherwise be ignored).
-- @tparam table t the options given
-- @tparam table known set of names
-- @tparam string fname
-- @tparam[opt=3] number level error level (3: the caller of the function that called this)
function _M.known(t, known, fname, level)
  for k in pairs(t) do
    if not known[k] then
      local names = {}
      for name in pairs(known) do names[#names + 1] = name end
      table.sort(names)
      error(format("%s: unknown option '%s' (known: %s)", fname, tostring(k),
        concat(names, ", ")), level or 3)
    end
  end
end

--- Raise unless `self` is an object of the module (a method called with `.` instead of `:`).
-- @param self the first argument received
-- @tparam table mt the module's object metatable
-- @tparam string name e.g. "events:create"
function _M.self(self, mt, name)
  if getmetatable(self) ~= mt then
    error(format("%s: call it as a method (with ':'), e.g. client.%s", name, name), 3)
  end
end

--- Return a set from a list of names.
function _M.set(list)
  local s = {}
  for i = 1, #list do s[list[i]] = true end
  return s
end

return _M
