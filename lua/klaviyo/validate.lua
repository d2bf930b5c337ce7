--- Local checks that refuse what Klaviyo would refuse, before anything is sent.
--
-- Pure functions (no I/O except reading /dev/urandom for ids): profile identifiers, E.164
-- phone numbers, event ingestion limits, time parsing and ISO 8601 formatting, `unique_id`
-- generation, JSON sizes (measured by the encoder, which also refuses what JSON cannot hold:
-- cycles, NaN and infinities, invalid UTF-8) and chunking. The
-- idiomatic modules (`klaviyo.events`, `klaviyo.profiles`, ...) call these so that a request
-- Klaviyo would answer 400 (or worse, accept and fire a flow twice) never leaves the process;
-- klaviyo.body_rules applies the same rules to the request body of any call.
--
-- Functions that check data return `true` (or a value) on success and `nil, message, pointer`
-- on failure, where `pointer` is a JSON pointer into the data the caller gave (e.g.
-- `/properties/items/3`). `refuse` turns that into the error table every module returns.
-- @module klaviyo.validate
local errors = require "klaviyo.errors"
local R = require "klaviyo.resource"
local calendar = require "klaviyo.calendar"

local type, pairs, tostring, tonumber, getmetatable = type, pairs, tostring, tonumber,
  getmetatable
local floor, huge = math.floor, math.huge
local format, byte, find, match = string.format, string.byte, string.find, string.match
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
---@param operation string the operation that was not sent
---@param detail string what is wrong, in one sentence
---@param pointer string? JSON pointer into the caller's data
---@return table # error with the `klaviyo.errors` metatable
function _M.refuse(operation, detail, pointer)
  return errors.new("refused", operation, detail, { code = "invalid", pointer = pointer })
end

-- Identifiers -------------------------------------------------

--- Is `s` a phone number in E.164 (`+` then 7 to 15 digits, no leading zero)?
---@param s string
---@return boolean
function _M.is_e164(s)
  if type(s) ~= "string" then return false end
  local digits = match(s, "^%+([1-9]%d+)$")
  return digits ~= nil and #digits >= 7 and #digits <= 15
end

-- Addresses already found well formed: the same customers come back call after call, and a
-- pattern match costs more than the rest of a body's check. Bounded: emptied when full.
local email_ok, email_ok_n = {}, 0

--- Is `s` shaped like an email address (one `@`, a dot in the domain, no spaces)?
-- Klaviyo answers 400 for malformed addresses; this catches the obvious ones locally.
---@param s string
---@return boolean
function _M.is_email(s)
  if type(s) ~= "string" then return false end
  if email_ok[s] then return true end
  if not (#s <= 254 and match(s, "^[^@%s]+@[^@%s%.][^@%s]*%.[^@%s%.][^@%s]*$") ~= nil and
      not find(s, "%.%.")) then
    return false
  end
  if email_ok_n >= 4096 then email_ok, email_ok_n = {}, 0 end
  email_ok[s] = true
  email_ok_n = email_ok_n + 1
  return true
end

--- Check a profile reference used by events and subscriptions: at least one identifier,
-- each well formed.
---@param p table profile fields (`id`, `email`, `phone_number`, `external_id`, ...)
---@param at string? JSON pointer prefix for messages
-- @return true, or nil, message, pointer
---@return true|nil ok
---@return string? message
---@return string? pointer
function _M.profile_identity(p, at)
  at = at or ""
  if type(p) ~= "table" then
    return nil, "a profile (table with id, email, phone_number or external_id) is required", at
  end
  local found = false
  for i = 1, #_M.IDENTIFIERS do
    local k = _M.IDENTIFIERS[i]
    local v = p[k]
    if v ~= nil and type(v) ~= "userdata" and not (type(v) == "table" and getmetatable(v)
        and getmetatable(v).__jsontype == "null") then -- a JSON null identifies nothing
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
---@param q table e.g. `{email = "a@b.com"}`
-- @return the identifier name and value, or nil, message
---@return string|nil name
---@return any value_or_message
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

--- Days since 1970-01-01 for a proleptic Gregorian date (see klaviyo.calendar).
_M.days_from_civil = calendar.days_from_civil
local days_from_civil, civil_from_days = calendar.days_from_civil, calendar.civil_from_days

local function epoch_of(y, mo, d, h, mi, s)
  if not calendar.is_date(y, mo, d) or h > 23 or mi > 59 or s >= 61 then return nil end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s
end

-- Epoch seconds of 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: ISO 8601's four-digit
-- years, the times `iso` can write.
local FIRST_TIME, LAST_TIME = -62167219200, 253402300799

--- Parse a time given as epoch seconds, an ISO 8601 string or an `os.date("!*t")` table.
-- ISO forms: `2026-11-26`, `2026-11-26T10:00:00Z`, `...T10:00:00.123+02:00`, `...T10:00`.
-- A string without an offset is taken as UTC.
---@param t number|string|osdate
---@return number # epoch seconds (may have a fraction), or nil, message
function _M.parse_time(t)
  local ty = type(t)
  if ty == "number" then
    if t ~= t or t == huge or t == -huge then return nil, "time is not a finite number" end
    if t < FIRST_TIME or t > LAST_TIME then
      return nil, "time is out of range (years 0000 to 9999): " .. tostring(t)
    end
    return t
  elseif ty == "table" then
    local y, mo, d = tonumber(t.year), tonumber(t.month), tonumber(t.day)
    if not (y and mo and d) then return nil, "a time table needs year, month and day" end
    if y < 0 or y > 9999 then return nil, "time is out of range (years 0000 to 9999)" end
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
---@param t number epoch seconds
---@return string
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
---@param t number|string|osdate time in any form `parse_time` reads
---@param now number? epoch seconds (defaults to os.time())
-- @return epoch seconds, or nil, message
---@return number|nil seconds
---@return string? message
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

-- Values: ingestion limits and JSON size ----------------------

-- Values are measured by the JSON encoder itself (core.measure): what it cannot encode (cycles,
-- NaN and infinities, invalid UTF-8, mixed or sparse tables, functions) and what is over the
-- limits given to it, it refuses by a code and a JSON pointer; the messages are worded here.
local measure = require("klaviyo.core").measure

--- Is s well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
-- U+10FFFF), as the JSON encoder requires? Runs of ASCII are skipped with one search each.
---@param s string
---@return boolean
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
local REFUSED = {
  nan = "NaN cannot be sent as JSON",
  inf = "infinity cannot be sent as JSON",
  utf8 = "string is not valid UTF-8",
  key_utf8 = "key is not valid UTF-8",
  cycle = "the table contains itself (a cycle)",
  depth = "nesting is deeper than %d levels",
  sparse = "table is a sparse array (holes between 1 and %d)",
  mixed = "table mixes array items and named keys",
  key_number = "table has a non-integer or non-positive key",
  key_type = "table has a key of type %s",
  type = "a %s cannot be sent as JSON",
  jsontype = "table has a metatable whose __jsontype is not \"array\", \"object\" or \"null\"",
  string = "string of %d bytes is over the %d-byte limit",
  items = "array of %d items is over the %d-item limit",
  stack = "nesting is too deep for the Lua stack",
}

--- Check that a Lua value can be sent as JSON (no cycles, NaN, infinities, functions, mixed
-- or sparse tables, invalid UTF-8) and is within the limits, and measure its encoded size.
---@param v any the value
---@param lim table? `{string_bytes=, array_items=, depth=}` (nil fields are unlimited)
---@param at string? JSON pointer of `v` for messages
---@return number # encoded size in bytes, or nil, message, pointer
function _M.value(v, lim, at)
  lim = lim or {}
  local max_str, max_items = lim.string_bytes, lim.array_items
  local size, code, ptr, num, what = measure(v, max_str, max_items, lim.depth)
  if size then return size end
  local msg = REFUSED[code] or code
  if code == "string" then msg = format(msg, num, max_str)
  elseif code == "items" then msg = format(msg, num, max_items)
  elseif code == "depth" or code == "sparse" then msg = format(msg, num)
  elseif code == "key_type" or code == "type" then msg = format(msg, what)
  end
  return nil, msg, (at or "") .. ptr
end
local value = _M.value

--- Check an event's `properties` against Klaviyo's ingestion limits (at most 400 keys, strings
-- at most 100 KB, arrays at most 4000 items, 10 levels) and encodability.
---@param props table
---@param at string? pointer prefix
---@return number # encoded size, or nil, message, pointer
function _M.properties(props, at)
  at = at or "/properties"
  if type(props) ~= "table" then return nil, "properties must be a table", at end
  local m = getmetatable(props)
  if m ~= nil and m.__jsontype == "null" then return 4 end -- klaviyo.null
  local n = 0
  for k in pairs(props) do
    if type(k) ~= "string" then return nil, "properties must be a table with named keys", at end
    n = n + 1
  end
  if n > LIMITS.properties then
    return nil, format("%d properties is over Klaviyo's limit of %d", n, LIMITS.properties), at
  end
  return value(props, LIMITS, at)
end

--- Check the profile of an event: `profile_identity`, then its attributes as `value` checks
-- them under the ingestion limits.
---@param p table flat profile (`email`, `phone_number`, `id`, `external_id`, attributes)
---@param at string? JSON pointer of the event (messages point into `at/profile`)
-- @return attributes (p itself when it holds nothing but attributes and identifiers, or a new
--   table without id, type and "_" names), their encoded size; or nil, message, pointer
---@return table|nil attributes
---@return number|string size_or_message
---@return string? pointer
function _M.event_profile(p, at)
  at = (at or "") .. "/profile"
  local ok, msg, ptr = _M.profile_identity(p, at)
  if not ok then return nil, msg, ptr end
  local attrs = p
  if getmetatable(p) ~= nil then
    attrs = attributes(p)
  else
    for k in pairs(p) do
      if own_field(k) then attrs = attributes(p) break end
    end
  end
  local size, vmsg, vptr = value(attrs, LIMITS, at)
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

--- The length of a list the caller gave, or nil, message, pointer when it is no plain array:
-- `#` stops at a hole (or at any border), so the items after it would be left out unsent
-- while the call answers success.
---@param t table the list
---@param at string JSON pointer of the list, "" for the request's top level
---@return number|nil # the length, or nil
---@return string|nil message
---@return string|nil pointer of the first missing item (or of the list)
function _M.dense(t, at)
  local n, count = #t, 0
  for k in pairs(t) do
    if type(k) ~= "number" or k ~= floor(k) or k < 1 then
      return nil, "the list holds a named key " .. tostring(k) .. " besides its items", at
    end
    if k > n then
      return nil, format("the list has a hole: item %d is missing, item %d is not", n + 1, k),
        at .. "/" .. n
    end
    count = count + 1
  end
  for i = 1, count < n and n or 0 do
    if t[i] == nil then
      return nil, format("the list has a hole: item %d is missing", i), at .. "/" .. (i - 1)
    end
  end
  return n
end

--- Split items into chunks of at most `max_count` items and `max_bytes` bytes.
---@param items table array
---@param max_count number
---@param max_bytes number? budget per chunk for the items' sizes
---@param sizes table? `sizes[i]` = size of `items[i]` (required with max_bytes)
---@return table # array of arrays; or nil, message, index when one item alone is too big
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
---@param cond any raise when false or nil
---@param fname string function name, e.g. "events:create"
---@param n number argument position
---@param expected string type name(s)
---@param got any the value
---@param level number? error level (3: the caller of the function that called this)
---@return nil
function _M.argcheck(cond, fname, n, expected, got, level)
  if not cond then
    error(format("bad argument #%d to '%s' (%s expected, got %s)", n, fname, expected,
      type(got)), level or 3)
  end
end

--- Raise unless `id` is a resource id (a non-empty string), at the caller's caller.
---@param id any the argument given
---@param fname string function name, e.g. "lists:get"
---@param what string what it is the id of, e.g. "list"
---@param n number? argument position (default 1)
---@param level number? error level (3: the caller of the function that called this)
---@return nil
function _M.id(id, fname, what, n, level)
  _M.argcheck(type(id) == "string" and id ~= "", fname, n or 1, what .. " id string", id, (level or 3) + 1)
end

--- A method's table argument, raising unless it is a table whose names are all in `known`.
-- An optional one is passed as `t or {}`.
---@param t any the argument given
---@param known table set of names it may hold
---@param fname string function name, e.g. "images:each"
---@param n number argument position
---@param level number? error level (3: the caller of the function that called this)
---@return table t
function _M.table_arg(t, known, fname, n, level)
  level = (level or 3) + 1
  _M.argcheck(type(t) == "table", fname, n, "table", t, level)
  _M.known(t, known, fname, level)
  return t
end

--- Raise on option names a function does not know (a typo would otherwise be ignored).
---@param t table the options given
---@param known table set of names
---@param fname string
---@param level number? error level (3: the caller of the function that called this)
---@return nil
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

--- Raise on an option `types` does not name, or one whose value is not of the Lua type it
-- names: "WHERE: unknown WHAT k", "WHERE: WHAT k must be a T, got U".
---@param t table the options given
---@param types table<string, string> option name -> the Lua type it takes
---@param where string who checks, e.g. "klaviyo.new"
---@param what string what an option is called there, e.g. "option" or "limiter option"
---@param level number error level (2: the caller of the function that called this)
---@param off string? an option that also takes `false` (which turns it off)
---@return nil
function _M.options(t, types, where, what, level, off)
  level = level + 1
  for k, v in pairs(t) do
    local want = types[k]
    if want == nil then error(format("%s: unknown %s %s", where, what, tostring(k)), level) end
    if type(v) ~= want and not (v == false and k == off) then
      error(format("%s: %s %s must be a %s, got %s", where, what, k, want, type(v)), level)
    end
  end
end

--- Raise unless `self` is an object of the module (a method called with `.` instead of `:`).
---@param self table the first argument received
---@param mt table the module's object metatable
---@param name string e.g. "events:create"
---@return nil
function _M.self(self, mt, name)
  if getmetatable(self) ~= mt then
    error(format("%s: call it as a method (with ':'), e.g. client.%s", name, name), 3)
  end
end

--- Return a set from a list of names.
---@param list string[] the names
---@return table<string, true>
function _M.set(list)
  local s = {}
  for i = 1, #list do s[list[i]] = true end
  return s
end

return _M
