-- klaviyo.errors: gives the error tables the core returns (plain tables with status, code,
-- title, detail, pointer, parameter, retry_after, operation, request_id, kind, body) a
-- metatable whose __tostring is one readable line. The fields stay plain: callers branch on
-- err.status / err.code, and print err. Nothing here ever reads a key or token: the core keeps
-- secrets out of every field, and this line is built only from those fields.
local setmetatable, getmetatable, tostring, type = setmetatable, getmetatable, tostring, type
local concat, format, floor = table.concat, string.format, math.floor

local _M = {}

local mt = {}
mt.__index = mt
_M.mt = mt

local function clip(s, n)
  s = tostring(s):gsub("[%c]+", " ")
  if #s > n then s = s:sub(1, n) .. "..." end
  return s
end

mt.__tostring = function(e)
  local parts = { "klaviyo:" }
  if e.operation then parts[#parts + 1] = e.operation .. ":" end
  local kind = e.kind
  if e.status then
    parts[#parts + 1] = "HTTP " .. tostring(e.status)
  elseif kind == "refused" then
    parts[#parts + 1] = "refused locally (nothing sent)"
  elseif kind == "transport" then
    parts[#parts + 1] = "transport error"
  elseif kind then
    parts[#parts + 1] = kind .. " error"
  end
  if e.code then parts[#parts + 1] = tostring(e.code) end
  local text = {}
  -- Titles of local failures ("Transport failure", "Refused locally...") repeat the label.
  if e.title and e.title ~= e.detail and e.status then text[#text + 1] = clip(e.title, 200) end
  if e.detail then text[#text + 1] = clip(e.detail, 500) end
  if #text > 0 then parts[#parts + 1] = "- " .. concat(text, ": ") end
  if e.pointer then
    parts[#parts + 1] = format("(at %s)", clip(e.pointer, 200))
  elseif e.parameter then
    parts[#parts + 1] = format("(parameter %s)", clip(e.parameter, 200))
  end
  local ra = e.retry_after
  if type(ra) == "number" then
    parts[#parts + 1] = ra == floor(ra) and format("[retry after %ds]", ra)
      or format("[retry after %.3gs]", ra)
  elseif ra ~= nil then
    parts[#parts + 1] = format("[retry after %ss]", tostring(ra))
  end
  if e.refresh_error then parts[#parts + 1] = format("(refresh failed: %s)", clip(e.refresh_error, 200)) end
  if e.request_id then parts[#parts + 1] = format("[request id %s]", clip(e.request_id, 100)) end
  return concat(parts, " ")
end

-- Attach the metatable to an error table from the core (or build one from fields); returns it.
-- `operation` fills err.operation when the core left it empty.
function _M.wrap(err, operation)
  if type(err) ~= "table" then
    err = { kind = "transport", detail = tostring(err) }
  end
  if err.operation == nil then err.operation = operation end
  if getmetatable(err) == nil then setmetatable(err, mt) end
  return err
end

-- A new error table of the given kind (e.g. "decode" for a 2xx body that is not JSON,
-- "refresh" for an OAuth refresh function that failed).
function _M.new(kind, operation, detail, fields)
  local err = fields or {}
  err.kind, err.operation, err.detail = kind, operation, detail
  return setmetatable(err, mt)
end

function _M.is_error(v) return type(v) == "table" and getmetatable(v) == mt end

return _M
