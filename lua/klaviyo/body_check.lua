--- klaviyo.body_check: refuses, before the rate limiter and the network, a request body that
-- Klaviyo would refuse. The schema part comes from checks generated from Klaviyo's OpenAPI spec
-- (tools/gen-bodies.lua writes lua/klaviyo/bodies/<operation_id>.lua, loaded on the first call
-- of that operation); the rules Klaviyo documents beyond its schemas (a profile needs an
-- identifier, ingestion and bulk limits) come from klaviyo.body_rules. A refusal is the error
-- table of klaviyo.errors with kind "refused", the JSON pointer of the first problem, what was
-- expected there and what was given.
--
-- Values are judged as the C encoder will write them: a table whose first key is a number is
-- an array, an empty table without a metatable an object (klaviyo.array{} sends []),
-- klaviyo.null and cjson.null are null. A body given as JSON text is decoded and judged the
-- same way, except that an empty table there stands for [] as well as {} (the decoder does
-- not tell them apart).
-- @module klaviyo.body_check
local type, getmetatable, setmetatable, rawget, next, pairs, pcall, require, tostring,
  tonumber, error = type, getmetatable, setmetatable, rawget, next, pairs, pcall, require,
  tostring, tonumber, error
local floor, huge = math.floor, math.huge
local format, match, sub, sort, concat = string.format, string.match, string.sub, table.sort, table.concat

local cjson_null = require("cjson").null
local errors = require "klaviyo.errors"
local operations = require "klaviyo.operations"
local validate = require "klaviyo.validate"
local is_date = require("klaviyo.calendar").is_date
local rules = require("klaviyo.body_rules").check

local _M = {}

local JSON_API = "application/vnd.api+json"

-- Set while a body decoded from JSON text is judged: an empty table may be an empty array.
local loose = false

local function jsontype(v)
  local m = getmetatable(v)
  if m == nil then return nil end
  local t = rawget(m, "__jsontype")
  return t or false
end

--- Is v JSON null (cjson.null, klaviyo.null or any table marked as null)?
function _M.isnull(v)
  if v == cjson_null then return true end
  return type(v) == "table" and jsontype(v) == "null"
end
local isnull = _M.isnull

--- Would the encoder write v as an object?
function _M.obj(v)
  if type(v) ~= "table" then return false end
  local t = jsontype(v)
  if t == nil or t == false then return rawget(v, 1) == nil end
  return t == "object"
end

--- Would the encoder write v as an array?
function _M.arr(v)
  if type(v) ~= "table" then return false end
  local t = jsontype(v)
  if t == nil or t == false then
    if rawget(v, 1) ~= nil then return true end
    return loose and next(v) == nil
  end
  return t == "array"
end

--- An integer: a number with no fraction.
function _M.int(v)
  return type(v) == "number" and v == floor(v) and v > -huge and v < huge
end

--- A finite number.
function _M.num(v)
  return type(v) == "number" and v == v and v > -huge and v < huge
end

--- How a value reads in an error: `the string "abc"`, `the number 4`, `an object`, ...
function _M.given(v)
  local t = type(v)
  if v == nil then return "nothing" end
  if isnull(v) then return "null" end
  if t == "string" then
    local s = #v > 40 and sub(v, 1, 40) .. "..." or v
    return (format("the string %q", s):gsub("\\\n", "\\n"))
  end
  if t == "number" then
    if v ~= v then return "NaN" end
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("the number %.0f", v) end
    return format("the number %.6g", v)
  end
  if t == "boolean" then return tostring(v) end
  if t == "table" then
    local jt = jsontype(v)
    if jt == "array" then return "an array" end
    if jt == "object" then return "an object" end
    if next(v) == nil then return "an empty table (sent as {}; klaviyo.array{} sends [])" end
    return rawget(v, 1) ~= nil and "an array" or "an object"
  end
  return "a " .. t
end

local function valid_date(y, m, d)
  return is_date(tonumber(y), tonumber(m), tonumber(d))
end

-- HH:MM:SS[.frac][zone]; the zone is required when need_zone.
local function valid_time(s, need_zone)
  local h, mi, sec, rest = match(s, "^(%d%d):(%d%d):(%d%d)(.*)$")
  if not h then return false end
  local frac = match(rest, "^%.%d+")
  if frac then rest = sub(rest, #frac + 1) end
  if rest == "" then
    if need_zone then return false end
  elseif rest ~= "Z" and rest ~= "z" then
    local zh, zm = match(rest, "^[+-](%d%d):?(%d%d)$")
    if not zh then zh = match(rest, "^[+-](%d%d)$"); zm = "00" end
    if not zh or tonumber(zh) > 23 or tonumber(zm) > 59 then return false end
  end
  return tonumber(h) <= 23 and tonumber(mi) <= 59 and tonumber(sec) <= 59
end

--- RFC 3339 date-time with a zone (2026-01-01T00:00:00Z, ...+02:00), as the contract check
-- reads the spec's `date-time`.
function _M.dt(s)
  local y, m, d, t = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)[Tt ](.*)$")
  return y ~= nil and valid_date(y, m, d) and valid_time(t, true)
end

--- A date, YYYY-MM-DD.
function _M.date(s)
  local y, m, d = match(s, "^(%d%d%d%d)%-(%d%d)%-(%d%d)$")
  return y ~= nil and valid_date(y, m, d)
end

--- A wall-clock time, HH:MM:SS with an optional fraction and zone.
function _M.tm(s) return valid_time(s, false) end

_M.e164 = validate.is_e164

--- A URI: a scheme, a colon, no spaces.
function _M.uri(s)
  return match(s, "^%a[%w+.%-]*:[^%s]+$") ~= nil
end

--- The first member of v (in sorted order) that `known` does not hold, or nil.
function _M.closed(v, known)
  local bad = {}
  for k in pairs(v) do if not known[k] then bad[#bad + 1] = tostring(k) end end
  if #bad == 0 then return nil end
  sort(bad)
  return bad[1]
end

--- Of two failures of oneOf branches (pointer, given), is the first the better guess at what
-- the caller meant? The one deeper into the value; at equal depth, a wrong value over a
-- missing member (the value has that branch's members).
function _M.closer(p, g, bp, bg)
  local _, d = p:gsub("/", "")
  local _, bd = bp:gsub("/", "")
  if d ~= bd then return d > bd end
  return g ~= "nothing" and bg == "nothing"
end

-- The checks of one member k of an object v, for the generated checks to chain with `or`:
-- each returns nil when the member is fine, else the pointer of the failure, and keeps what
-- was expected and given there for why().
local fail_e, fail_g

local function failed(k, expected, given)
  fail_e, fail_g = expected, given
  return "/" .. k:gsub("~", "~0"):gsub("/", "~1")
end

--- What the last member check that failed expected, and what it was given.
function _M.why() return fail_e, fail_g end

--- A required member k is there.
function _M.need(v, k)
  if v[k] == nil then return failed(k, format('a member "%s" (required)', k), "nothing") end
end

local FORMAT_TEXT = {
  [_M.dt] = "a date-time (RFC 3339 with a zone, e.g. 2026-01-01T00:00:00Z)",
  [_M.date] = "a date (YYYY-MM-DD)",
  [_M.tm] = "a time (HH:MM:SS)",
  [_M.uri] = "a URI (scheme:..., e.g. https://example.com/a.png)",
  [_M.e164] = "a phone number in E.164 (e.g. +15005550006)",
}

-- Member k, when there, is one value of a type: ms a string, mi an integer, mn a number, mb a
-- boolean, ms0 ... mb0 the same or null; and when allowed is given, one of the set allowed
-- (text: how the set reads), the value allowed, or a value the format check allowed accepts.
local function member_check(test, text, nullable)
  return function(v, k, allowed, allowed_text)
    local x = v[k]
    if x == nil or nullable and isnull(x) then return nil end
    if not test(x) then return failed(k, text, _M.given(x)) end
    if allowed == nil then return nil end
    local t = type(allowed)
    if t == "table" then
      if not allowed[x] then return failed(k, allowed_text, _M.given(x)) end
    elseif t == "function" then
      if not allowed(x) then return failed(k, FORMAT_TEXT[allowed], _M.given(x)) end
    elseif x ~= allowed then
      return failed(k, allowed_text, _M.given(x))
    end
  end
end
local function is_string(x) return type(x) == "string" end
local function is_boolean(x) return type(x) == "boolean" end
for code, t in pairs({ s = { is_string, "a string" }, i = { _M.int, "an integer" },
                       n = { _M.num, "a number" }, b = { is_boolean, "a boolean" } }) do
  _M["m" .. code] = member_check(t[1], t[2], false)
  _M["m" .. code .. "0"] = member_check(t[1], t[2] .. " or null", true)
end

--- A set of the given values (an enum's, a closed object's members): {[value] = true}.
_M.set = validate.set

-- Per module prefix: the shared checks, by name.
local registries = {}
-- Set when a shared module failed to load during a check: raised by _M.check, not taken for
-- a value the encoder will refuse.
local load_error

--- The checks that several operations share (one per schema content, named after a component
-- holding it, or _n), generated under prefix (PREFIX/_shared_NN.lua, one module per set of
-- operations sharing them): C.Name requires, on first use, the module that PREFIX/_index.lua
-- names for Name, which defines it in C.
---@param prefix string
---@return table
function _M.components(prefix)
  local C = registries[prefix]
  if C then return C end
  local where
  C = setmetatable({}, { __index = function(t, name)
    where = where or require(prefix .. "._index")
    local mod = where[name]
    if mod == nil then return nil end
    local ok, err = pcall(require, prefix .. "." .. mod)
    if not ok then
      load_error = err
      error(err, 0)
    end
    return rawget(t, name)
  end })
  registries[prefix] = C
  return C
end

--- Of the failures of two oneOf branches, the better guess at what the caller meant (closer).
function _M.best(bp, be, bg, p, e, g)
  if _M.closer(p, g, bp, bg) then return p, e, g end
  return bp, be, bg
end

--- How many members v holds.
function _M.count(v)
  local n = 0
  for _ in pairs(v) do n = n + 1 end
  return n
end

-- Per operation: its generated check, or false when its body is not JSON.
local loaded = {}

local function checker(op_id)
  local c = loaded[op_id]
  if c ~= nil then return c end
  local op = operations[op_id]
  c = false
  if op and op.body and op.content_type == JSON_API then
    c = require("klaviyo.bodies." .. op_id)
  end
  loaded[op_id] = c
  return c
end

-- The lines of a shape text at depth `depth`, each line "<indent>^<n>[ <component>]" replaced
-- by fragment n (the members of a node one deeper), indented so; a component met again inside
-- itself, or a node deeper than 8, is named on the line above instead.
local function expand(text, fragments, ind, depth, seen, out)
  for line in text:gmatch("[^\n]+") do
    local i, n, name = match(line, "^(%s*)%^(%d+) ?(.*)$")
    if not n then
      out[#out + 1] = ind .. line
    elseif name ~= "" and seen[name] then
      out[#out] = out[#out] .. " (" .. name .. ", as above)"
    elseif depth + 1 > 8 then
      out[#out] = out[#out] .. " (" .. (name ~= "" and name or "nested") .. ", not expanded)"
    else
      if name ~= "" then seen[name] = true end
      expand(fragments[tonumber(n)], fragments, ind .. i, depth + 1, seen, out)
      if name ~= "" then seen[name] = nil end
    end
  end
  return out
end

--- The shape text of a generated check (its shape member) with the fragments it names
-- (PREFIX/_shapes.lua) written in: the text `klaviyo describe` prints.
---@param text string
---@param fragments string[]
---@return string
function _M.expand_shape(text, fragments)
  return concat(expand(text, fragments, "", -1, {}, {}), "\n") .. "\n"
end

local described = {}

--- The generated description of an operation's body: {check = fn, requires = {lines},
-- shape = text}, or false when the operation takes no JSON body.
---@param op_id string
---@return table|false
function _M.generated(op_id)
  local d = described[op_id]
  if d ~= nil then return d end
  local c = checker(op_id)
  d = false
  if c then
    d = { check = c.check, requires = c.requires,
          shape = _M.expand_shape(c.shape, require("klaviyo.bodies._shapes")) }
  end
  described[op_id] = d
  return d
end

local decoder = require("cjson").new()

local function refusal(op_id, pointer, expected, given)
  return errors.new("refused", op_id,
    format("request body: expected %s, given %s", expected, given),
    { code = "invalid", pointer = pointer, expected = expected, given = given })
end

--- Check the body of a call of op_id (a table, or JSON text): nil when Klaviyo would take it,
-- else the refusal (kind "refused", pointer, expected, given).
---@param op_id string
---@param body any the body parameter of client:call
---@return klaviyo.Error? err
function _M.check(op_id, body)
  local c = loaded[op_id]
  if c == nil then c = checker(op_id) end
  if not c or body == nil then return nil end
  local p, e, g
  if type(body) == "string" then
    local ok, doc = pcall(decoder.decode, body)
    if not ok then
      return refusal(op_id, "", "JSON text", "text that does not parse (" ..
        tostring(doc):gsub("^.-: ", "") .. ")")
    end
    loose = true
    local okc
    okc, p, e, g = pcall(c.check, doc)
    loose = false
    load_error = nil
    if not okc then error(p, 0) end
    if not p then p, e, g = rules(op_id, doc, _M.given, #body) end
  else
    -- a value JSON cannot hold (a function, NaN, a cycle, which a recursive schema would
    -- follow until the stack ends) is the encoder's to raise, as a programmer error naming
    -- its path
    local okc
    okc, p, e, g = pcall(c.check, body)
    if not okc then
      local err = load_error
      load_error = nil
      if err then error(err, 0) end
      return nil
    end
    if not p then p, e, g = rules(op_id, body, _M.given) end
    if p and not validate.value(body) then return nil end
  end
  if p then return refusal(op_id, p, e, g) end
  return nil
end

return _M
