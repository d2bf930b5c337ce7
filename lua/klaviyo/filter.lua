--- klaviyo.filter: builds Klaviyo filter expressions (the `filter` query parameter).
--
--   local F = require "klaviyo.filter"
--   local f = F.and_(F.equals("email", 'a"b@x.com'),
--                    F.greater_or_equal("datetime", F.datetime("2024-01-01T00:00:00Z")))
--   tostring(f)  --> and(equals(email,"a\"b@x.com"),greater-or-equal(datetime,2024-01-01T00:00:00Z))
--
-- Values: strings are double-quoted with `"` and `\` escaped; numbers and booleans are written
-- bare; `F.null` (or klaviyo.null / cjson.null) is `null`; datetimes are written unquoted, which is
-- what Klaviyo expects: make one with `F.datetime(epoch_seconds | "ISO-8601" | os.date("!*t"))`,
-- or pass an os.date table (its fields are read as UTC) directly. Lists (for `any`) are Lua
-- sequences of such values. Every builder returns an expression object that `tostring` turns
-- into the filter text and that `client:call` accepts as `filter =`. Bad input raises an error
-- naming the operator, since it is a programmer error caught before anything is sent.
-- @module klaviyo.filter
local type, tostring, error, select = type, tostring, error, select
local getmetatable, setmetatable = getmetatable, setmetatable
local concat, floor, huge = table.concat, math.floor, math.huge
local format, os_date = string.format, os.date
local cjson_null = require("cjson").null

local _M = { _VERSION = "0.1.0" }

local expr_mt = { __tostring = function(self) return self.text end }
expr_mt.__index = expr_mt
local datetime_mt = { __tostring = function(self) return self.text end }

-- The null marker: a table whose metatable says it is JSON null (the same convention the JSON
-- encoder in the C core reads), so klaviyo.null and F.null are one value.
local null = setmetatable({}, { __jsontype = "null", __tostring = function() return "null" end })
_M.null = null

local function is_expr(v) return getmetatable(v) == expr_mt end
_M.is_expr = is_expr

local function new_expr(text) return setmetatable({ text = text }, expr_mt) end

-- Field names are identifiers, possibly dotted (`messages.channel`); anything that could
-- break the expression's syntax (quotes, commas, parentheses, spaces) is refused.
local function check_field(op, field)
  if type(field) ~= "string" or field == "" then
    error(format("klaviyo.filter.%s: field must be a non-empty string, got %s", op, type(field)), 3)
  end
  if field:find("[^%w_%.%-%$:]") then
    error(format("klaviyo.filter.%s: invalid field name %q", op, field), 3)
  end
  return field
end

local function quote(s)
  return '"' .. s:gsub('[\\"]', "\\%0") .. '"'
end

local function two(n) return n < 10 and "0" .. n or tostring(n) end

-- "2024-01-01", "2024-01-01T10:00:00", with optional fraction and Z / +hh:mm / -hh:mm zone.
local function valid_iso(s)
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return false end
  mo, d = tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 then return false end
  if rest == "" then return true end
  local h, mi, sec, tail = rest:match("^T(%d%d):(%d%d):(%d%d)(.*)$")
  if not h then return false end
  if tonumber(h) > 23 or tonumber(mi) > 59 or tonumber(sec) > 60 then return false end
  tail = tail:gsub("^%.%d+", "", 1)
  return tail == "" or tail == "Z" or tail:match("^[%+%-]%d%d:%d%d$") ~= nil
end

local function date_table_text(t)
  local y, mo, d = t.year, t.month, t.day
  if type(y) ~= "number" or type(mo) ~= "number" or type(d) ~= "number" then
    error("klaviyo.filter.datetime: a date table needs numeric year, month and day", 3)
  end
  local h, mi, s = t.hour or 0, t.min or 0, t.sec or 0
  return format("%04d-%s-%sT%s:%s:%s+00:00", y, two(mo), two(d), two(h), two(mi), two(floor(s)))
end

--- F.datetime(v): epoch seconds (number), an ISO-8601 string, or an os.date table (UTC fields).
---@param v number|string|osdate epoch seconds, ISO 8601 text or an os.date table
---@return klaviyo.FilterExpr
function _M.datetime(v)
  local tv, text = type(v), nil
  if tv == "number" then
    if v ~= v or v == huge or v == -huge then
      error("klaviyo.filter.datetime: epoch seconds must be finite", 2)
    end
    text = os_date("!%Y-%m-%dT%H:%M:%S+00:00", floor(v))
  elseif tv == "string" then
    if not valid_iso(v) then
      error(format("klaviyo.filter.datetime: %q is not an ISO-8601 date or datetime", v), 2)
    end
    text = v
  elseif tv == "table" and getmetatable(v) == datetime_mt then
    return v
  elseif tv == "table" then
    text = date_table_text(v)
  else
    error("klaviyo.filter.datetime: expected epoch seconds, an ISO-8601 string or a date table, got "
      .. tv, 2)
  end
  return setmetatable({ text = text }, datetime_mt)
end

local function is_null(v)
  if v == null or v == cjson_null then return true end
  -- any table whose metatable marks it as JSON null also counts.
  local mt = type(v) == "table" and getmetatable(v)
  return mt and mt.__jsontype == "null" or false
end

local render_value

local function render_list(op, list)
  local n = #list
  if n == 0 then error(format("klaviyo.filter.%s: the list of values is empty", op), 4) end
  local parts = {}
  for i = 1, n do
    local v = list[i]
    if type(v) == "table" and getmetatable(v) == nil and v.year == nil then
      error(format("klaviyo.filter.%s: lists cannot be nested", op), 4)
    end
    parts[i] = render_value(op, v)
  end
  return "[" .. concat(parts, ",") .. "]"
end

function render_value(op, v)
  local tv = type(v)
  if tv == "string" then return quote(v) end
  if tv == "number" then
    if v ~= v or v == huge or v == -huge then
      error(format("klaviyo.filter.%s: %s cannot be written in a filter", op, tostring(v)), 4)
    end
    if v == floor(v) and v > -2^53 and v < 2^53 then return format("%d", v) end
    return format("%.17g", v)
  end
  if tv == "boolean" then return v and "true" or "false" end
  if is_null(v) then return "null" end
  if tv == "table" then
    local mt = getmetatable(v)
    if mt == datetime_mt then return v.text end
    if mt == nil and v.year ~= nil then return date_table_text(v) end
    if mt == nil then return render_list(op, v) end
  end
  error(format("klaviyo.filter.%s: unsupported value type %s", op, tv), 4)
end

-- comparison(field, value) operators; Lua names use underscores, the wire uses dashes.
local COMPARISONS = {
  equals = "equals", contains = "contains",
  starts_with = "starts-with", ends_with = "ends-with",
  less_than = "less-than", less_or_equal = "less-or-equal",
  greater_than = "greater-than", greater_or_equal = "greater-or-equal",
}
for name, wire in pairs(COMPARISONS) do
  _M[name] = function(field, value)
    check_field(name, field)
    if value == nil then
      error(format("klaviyo.filter.%s: missing value for field %s (use klaviyo.null for null)",
        name, field), 2)
    end
    return new_expr(wire .. "(" .. field .. "," .. render_value(name, value) .. ")")
  end
end

--- any(field, values): the field equals one of the values (a Lua sequence).
---@param field string the field or relationship name
---@param values table a list of strings, numbers, booleans or datetimes
---@return klaviyo.FilterExpr
function _M.any(field, values)
  check_field("any", field)
  if type(values) ~= "table" or getmetatable(values) ~= nil then
    error("klaviyo.filter.any: values must be a list (Lua sequence), got " .. type(values), 2)
  end
  return new_expr("any(" .. field .. "," .. render_list("any", values) .. ")")
end

--- has(field): the field (or relationship) is present.
---@param field string the field or relationship name
---@return klaviyo.FilterExpr
function _M.has(field)
  check_field("has", field)
  return new_expr("has(" .. field .. ")")
end

-- Sub-expressions are expression objects or raw filter strings (taken as written).
local function combine(op, ...)
  local n = select("#", ...)
  if n == 0 then error(format("klaviyo.filter.%s: needs at least one expression", op), 3) end
  local parts = {}
  for i = 1, n do
    local e = select(i, ...)
    if is_expr(e) then
      parts[i] = e.text
    elseif type(e) == "string" and e ~= "" then
      parts[i] = e
    else
      error(format("klaviyo.filter.%s: argument %d is not a filter expression (%s)", op, i, type(e)), 3)
    end
  end
  if n == 1 then return new_expr(parts[1]) end
  return new_expr(op .. "(" .. concat(parts, ",") .. ")")
end

--- and(...): every sub-expression holds (expression objects or raw filter strings).
---@param ... klaviyo.FilterExpr|string
---@return klaviyo.FilterExpr
function _M.and_(...) return combine("and", ...) end
--- or(...): at least one sub-expression holds. No operation of Klaviyo's spec allows or(),
-- so client:call refuses a filter holding one (see klaviyo.query_check).
---@param ... klaviyo.FilterExpr|string
---@return klaviyo.FilterExpr
function _M.or_(...) return combine("or", ...) end
_M["and"] = _M.and_
_M["or"] = _M.or_

--- The text of a filter given as an expression or a string; nil, err for anything else.
---@param f klaviyo.FilterExpr|string
---@return string? text
---@return string? err
function _M.text(f)
  if is_expr(f) then return f.text end
  if type(f) == "string" then return f end
  return nil, "expected a string or a klaviyo.filter expression, got " .. type(f)
end

return _M
