-- klaviyo.cli.params: `name=value` words and --body into the params of client:call, typed
-- by the operation table: integer query parameters become numbers, list parameters take
-- comma-separated values or a repeated name, path and header parameters stay strings. The
-- library checks everything else (unknown or missing parameters raise there, by name).
local tonumber, format = tonumber, string.format

local operations = require "klaviyo.operations"
local args = require "klaviyo.cli.args"
local out = require "klaviyo.cli.output"

local _M = {}

-- Query parameter specs of an operation by name.
local function query_specs(op)
  local t = {}
  for _, q in ipairs(op.query) do t[q.name] = q end
  return t
end

-- params | nil, err. op_id must exist (the caller checked).
function _M.build(op_id, pairs_, opts)
  local op = operations[op_id]
  local specs = query_specs(op)
  local params = {}
  for _, p in ipairs(pairs_) do
    local name, value = p[1], p[2]
    local q = specs[name]
    if q and q.array then
      local list = params[name] or {}
      for _, item in ipairs(args.split(value)) do list[#list + 1] = item end
      params[name] = list
    elseif params[name] ~= nil then
      return nil, out.usage(format("%s: parameter %s given twice", op_id, name))
    elseif q and q.integer then
      local n = tonumber(value)
      if n == nil then
        return nil, out.usage(format("%s: parameter %s: expected an integer, got %q", op_id, name, value))
      end
      params[name] = n
    else
      params[name] = value
    end
  end
  if opts.revision then params.revision = opts.revision end
  if opts.body then
    local text, msg = args.source(opts.body, "--body")
    if not text then return nil, out.usage(msg) end
    local doc, derr = out.decode(text)
    if doc == nil then return nil, out.usage("--body is not JSON: " .. tostring(derr)) end
    -- Events are sent as a table so that each gets its unique_id before the first send;
    -- anything else goes as the exact text given.
    params.body = require("klaviyo.event_layout").STAMP[op_id] and doc or text
  end
  return params
end

return _M
