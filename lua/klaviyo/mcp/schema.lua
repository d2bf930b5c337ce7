-- klaviyo.mcp.schema: JSON Schema for the MCP tools. `operation(op_id)` derives the schema of
-- an operation's params from the operation table (path, query and header parameters with
-- their types and bounds, and the body); `check(schema, value)` judges a decoded argument
-- table against the small subset of JSON Schema these schemas use (type, properties,
-- required, additionalProperties, items, enum, minimum, maximum), so a wrong argument type
-- is refused with its JSON pointer before anything is built. Pure functions.
local type, pairs, ipairs, tostring, next = type, pairs, ipairs, tostring, next
local format, floor = string.format, math.floor

local operations = require "klaviyo.operations"
local klaviyo = require "klaviyo"

local _M = {}

local array = klaviyo.array

-- The params schema of one operation: every parameter by the name client:call takes.
function _M.operation(op_id)
  local op = operations[op_id]
  if op == nil then return nil end
  local props, required = {}, array()
  for _, name in ipairs(op.path_params) do
    props[name] = { type = "string", description = "path parameter" }
    required[#required + 1] = name
  end
  for _, q in ipairs(op.query) do
    if not (op.auth == "public" and q.name == "company_id") then
      local s
      if q.array then
        s = { type = { "array", "string" }, items = { type = "string" },
              description = "query parameter (a list, or one comma-separated string)" }
      elseif q.integer then
        s = { type = "integer", minimum = q.min, maximum = q.max, description = "query parameter" }
      else
        s = { type = "string", description = "query parameter" }
      end
      props[q.name] = s
      if q.required then required[#required + 1] = q.name end
    end
  end
  for _, h in ipairs(op.headers or {}) do
    props[h.name] = { type = "string", description = "header" }
    if h.required then required[#required + 1] = h.name end
  end
  if op.body then
    props.body = { type = "object", description = format(
      "the JSON:API request document ({\"data\": {\"type\": %q, \"attributes\": {...}}})",
      tostring(op.body_type)) }
    if op.body == "required" then required[#required + 1] = "body" end
  end
  local s = { type = "object", properties = props, additionalProperties = false }
  if #required > 0 then s.required = required end
  return s
end

local function json_type(v)
  local t = type(v)
  if t == "table" then
    if next(v) == nil then return "empty" end
    local n = 0
    for _ in pairs(v) do n = n + 1 end
    return (#v == n) and "array" or "object"
  end
  if t == "number" then return (v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53) and "integer" or "number" end
  if t == "string" then return "string" end
  if t == "boolean" then return "boolean" end
  return "null"
end

local function allows(types, got)
  if type(types) == "string" then types = { types } end
  for _, want in ipairs(types) do
    if want == got then return true end
    if want == "number" and got == "integer" then return true end
    if got == "empty" and (want == "array" or want == "object") then return true end
  end
  return false
end

local function names(types)
  if type(types) == "string" then return types end
  return table.concat(types, " or ")
end

local function esc(k) return (tostring(k):gsub("~", "~0"):gsub("/", "~1")) end

-- nil when value fits schema, else "<pointer>: message".
local function check(s, v, at)
  local got = json_type(v)
  if s.type and not allows(s.type, got) then
    return format("%s: must be %s, got %s", at == "" and "/" or at, names(s.type),
      got == "empty" and "an empty table" or got)
  end
  if s.enum then
    local ok = false
    for _, e in ipairs(s.enum) do if e == v then ok = true end end
    if not ok then
      return format("%s: must be one of %s", at == "" and "/" or at, table.concat(s.enum, ", "))
    end
  end
  if type(v) == "number" then
    if s.minimum and v < s.minimum then return format("%s: must be at least %s", at, s.minimum) end
    if s.maximum and v > s.maximum then return format("%s: must be at most %s", at, s.maximum) end
  end
  if type(v) ~= "table" then return nil end
  if got == "array" or (got == "empty" and allows(s.type or "array", "array") and s.items) then
    if s.items then
      for i, item in ipairs(v) do
        local msg = check(s.items, item, at .. "/" .. (i - 1))
        if msg then return msg end
      end
    end
    return nil
  end
  local props = s.properties or {}
  for _, name in ipairs(s.required or {}) do
    if v[name] == nil then return format("%s: %s is required", at == "" and "/" or at, name) end
  end
  for k, item in pairs(v) do
    local ps = props[k]
    if ps then
      local msg = check(ps, item, at .. "/" .. esc(k))
      if msg then return msg end
    elseif s.additionalProperties == false then
      return format("%s: unknown property %s", at == "" and "/" or at, tostring(k))
    end
  end
  return nil
end

function _M.check(s, v) return check(s, v, "") end

return _M
