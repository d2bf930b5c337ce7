--- klaviyo.errors: gives the error tables the core returns (plain tables with status, code,
-- title, detail, pointer, parameter, retry_after, operation, request_id, kind, body) a
-- metatable whose __tostring is one readable line, and never raises whatever the fields hold
-- (NaN, infinities, tables, values whose own __tostring fails). The fields stay plain: callers branch on
-- err.status / err.code, and print err. Nothing here ever reads a key or token: the core keeps
-- secrets out of every field, and this line is built only from those fields.
-- @module klaviyo.errors
local setmetatable, getmetatable, tostring, type, pcall = setmetatable, getmetatable, tostring, type, pcall
local concat, format, floor, huge = table.concat, string.format, math.floor, math.huge

local _M = {}

local mt = {}
mt.__index = mt
_M.mt = mt

-- Any value as text, never raising: numbers without integer formats (NaN, infinities and
-- numbers past 2^53 have no integer form on 5.3+), other values through a tostring that
-- may itself fail (a __tostring that raises or returns no string).
local function text(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then
    if v ~= v then return "nan" end
    if v == huge or v == -huge then return v > 0 and "inf" or "-inf" end
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then return format("%.0f", v) end
    return format("%.6g", v)
  end
  local ok, s = pcall(tostring, v)
  if ok and type(s) == "string" then return s end
  return "(" .. t .. ")"
end

local function clip(s, n)
  s = text(s):gsub("[%c]+", " ")
  if #s > n then s = s:sub(1, n) .. "..." end
  return s
end

mt.__tostring = function(e)
  local parts = { "klaviyo:" }
  if e.operation then parts[#parts + 1] = clip(e.operation, 100) .. ":" end
  local kind = e.kind
  if e.status then
    parts[#parts + 1] = "HTTP " .. clip(e.status, 20)
  elseif kind == "refused" then
    parts[#parts + 1] = "refused locally (nothing sent)"
  elseif kind == "transport" then
    parts[#parts + 1] = "transport error"
  elseif kind then
    parts[#parts + 1] = clip(kind, 50) .. " error"
  end
  if e.code then parts[#parts + 1] = clip(e.code, 100) end
  local out = {}
  -- Titles of local failures ("Transport failure", "Refused locally...") repeat the label.
  if e.title and e.title ~= e.detail and e.status then out[#out + 1] = clip(e.title, 200) end
  if e.detail then out[#out + 1] = clip(e.detail, 500) end
  if #out > 0 then parts[#parts + 1] = "- " .. concat(out, ": ") end
  if e.pointer == "" then   -- the JSON pointer of the whole document
    parts[#parts + 1] = "(at the document's root)"
  elseif e.pointer then
    parts[#parts + 1] = format("(at %s)", clip(e.pointer, 200))
  elseif e.parameter then
    parts[#parts + 1] = format("(parameter %s)", clip(e.parameter, 200))
  end
  local ra = e.retry_after
  if type(ra) == "number" and ra >= 0 and ra < huge and ra ~= floor(ra) then
    parts[#parts + 1] = format("[retry after %.3gs]", ra)
  elseif ra ~= nil then
    parts[#parts + 1] = format("[retry after %ss]", clip(ra, 50))
  end
  if e.refresh_error then parts[#parts + 1] = format("(refresh failed: %s)", clip(e.refresh_error, 200)) end
  if e.request_id then parts[#parts + 1] = format("[request id %s]", clip(e.request_id, 100)) end
  return concat(parts, " ")
end

--- Attach the metatable to an error table from the core (or build one from fields); returns it.
-- `operation` fills err.operation when the core left it empty.
---@param err table an error table from the core
---@param operation string? the operation id
---@return klaviyo.Error
function _M.wrap(err, operation)
  if type(err) ~= "table" then
    err = { kind = "transport", detail = text(err) }
  end
  if err.operation == nil then err.operation = operation end
  if getmetatable(err) == nil then setmetatable(err, mt) end
  return err
end

--- A new error table of the given kind (e.g. "decode" for a 2xx body that is not JSON,
-- "refresh" for an OAuth refresh function that failed).
---@param kind string the error kind
---@param operation string? the operation id
---@param detail string? what was wrong
---@param fields table? more fields (status, code, ...)
---@return klaviyo.Error
function _M.new(kind, operation, detail, fields)
  local err = fields or {}
  err.kind, err.operation, err.detail = kind, operation, detail
  return setmetatable(err, mt)
end

--- Whether a value is one of the library's error tables.
---@param v any any value
---@return boolean
function _M.is_error(v) return type(v) == "table" and getmetatable(v) == mt end

return _M
