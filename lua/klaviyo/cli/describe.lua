-- klaviyo.cli.describe: `klaviyo ops [WORD]` and `klaviyo describe OPERATION`, read from the
-- operation table (klaviyo.operations) and the repeat rule (klaviyo.policy); the body's
-- required members come from the OpenAPI spec when it sits next to the library (a checkout),
-- else the table's body type is all there is.
local format, concat, sort, find, lower = string.format, table.concat, table.sort, string.find, string.lower

local operations = require "klaviyo.operations"

local _M = {}

local function write(...) io.stdout:write(...) end

-- `klaviyo ops [WORD]`: one line an operation (id, method, path), those whose id, path or tag
-- hold WORD (any case).
function _M.ops(word)
  local ids = {}
  word = word and lower(word)
  for id, op in pairs(operations) do
    if not word or find(id, word, 1, true) or find(lower(op.path), word, 1, true)
        or find(lower(op.tag or ""), word, 1, true) then
      ids[#ids + 1] = id
    end
  end
  sort(ids)
  local lines = {}
  for i, id in ipairs(ids) do
    local op = operations[id]
    lines[i] = format("%-48s %-6s %s", id, op.method, op.path)
  end
  if #lines > 0 then write(concat(lines, "\n"), "\n") end
  return #ids
end

-- The OpenAPI spec next to the library, decoded, or nil.
local function spec()
  local src = debug.getinfo(1, "S").source
  local root = src:match("^@(.*)/lua/klaviyo/cli/[^/]*$")
  if not root then return nil end
  local p = io.popen('ls "' .. root .. '"/openapi/klaviyo-*.json 2>/dev/null')
  local path = p and p:read("*l")
  if p then p:close() end
  if not path then return nil end
  local f = io.open(path, "rb")
  if not f then return nil end
  local text = f:read("*a")
  f:close()
  local ok, doc = pcall(require("cjson").decode, text)
  return ok and doc or nil
end

local function resolve(doc, s)
  local n = 0
  while type(s) == "table" and s["$ref"] and n < 10 do
    s = doc.components.schemas[s["$ref"]:match("([^/]+)$")]
    n = n + 1
  end
  return s
end

-- Lines naming the required members of the body schema: top level, data, data.attributes.
local function required_members(doc, op_id, content_type)
  for _, item in pairs(doc.paths or {}) do
    for _, o in pairs(item) do
      if type(o) == "table" and o.operationId == op_id then
        local rb = o.requestBody
        local media = rb and rb.content and (rb.content[content_type] or select(2, next(rb.content)))
        local s = resolve(doc, media and media.schema)
        if type(s) ~= "table" then return nil end
        local lines = {}
        local function add(label, schema)
          schema = resolve(doc, schema)
          if type(schema) == "table" and type(schema.required) == "table" and #schema.required > 0 then
            lines[#lines + 1] = format("    %s: %s", label, concat(schema.required, ", "))
          end
          return schema
        end
        add("required", s)
        local data = s.properties and add("data requires", s.properties.data)
        if type(data) == "table" and data.properties then
          add("data.attributes requires", data.properties.attributes)
        end
        return lines
      end
    end
  end
end

-- `klaviyo describe OPERATION`; false when there is no such operation.
function _M.describe(op_id)
  local op = operations[op_id]
  if op == nil then return false end
  local policy = require "klaviyo.policy"
  local lines = { op_id, format("  %s %s   (tag %s, %s key%s)", op.method, op.path, op.tag or "-",
    op.auth, op.pre_release and ", pre-release" or "") }
  local params = {}
  for _, name in ipairs(op.path_params) do
    params[#params + 1] = format("    %-40s path, string, required", name)
  end
  for _, q in ipairs(op.query) do
    local ty = q.integer and "integer" or q.array and "list (comma-separated or repeated)" or "string"
    if q.min or q.max then ty = format("%s %s..%s", ty, tostring(q.min or ""), tostring(q.max or "")) end
    params[#params + 1] = format("    %-40s query, %s%s", q.name, ty, q.required and ", required" or "")
  end
  for _, h in ipairs(op.headers or {}) do
    params[#params + 1] = format("    %-40s header, string%s", h.name, h.required and ", required" or "")
  end
  lines[#lines + 1] = "  parameters:" .. (#params == 0 and " none" or "")
  for _, l in ipairs(params) do lines[#lines + 1] = l end
  if op.body then
    lines[#lines + 1] = format("  body: %s, %s%s", op.body, op.content_type,
      op.body_type and format(', data.type "%s"', op.body_type) or "")
    local doc = spec()
    local req = doc and required_members(doc, op_id, op.content_type)
    if req and #req > 0 then
      for _, l in ipairs(req) do lines[#lines + 1] = l end
    elseif not doc then
      lines[#lines + 1] = "    (the schema's members are not available: no OpenAPI spec next to the library)"
    end
  else
    lines[#lines + 1] = "  body: none"
  end
  lines[#lines + 1] = "  scopes: " .. (op.scopes and #op.scopes > 0 and concat(op.scopes, ", ") or "none")
  local l = op.limits
  local lim = {}
  if l and l.burst then lim[#lim + 1] = l.burst .. "/s burst" end
  if l and l.steady then lim[#lim + 1] = l.steady .. "/min steady" end
  if l and l.daily then lim[#lim + 1] = l.daily .. "/day" end
  lines[#lines + 1] = "  rate limits: " .. (#lim > 0 and concat(lim, ", ") or "none listed")
  local has_uids = require("klaviyo.event_layout").STAMP[op_id] ~= nil
  local safe = policy.safe(op_id, op.method, has_uids, false)
  lines[#lines + 1] = "  safe to repeat: " .. (safe and "yes" or "no") ..
    (has_uids and " (every event gets a unique_id before its first send)" or "")
  write(concat(lines, "\n"), "\n")
  return true
end

return _M
