-- klaviyo.cli.describe: `klaviyo ops [WORD]` and `klaviyo describe OPERATION`, read from the
-- operation table (klaviyo.operations) and the repeat rule (klaviyo.policy); the body's
-- required members and shape come from the checks generated from Klaviyo's spec, the same
-- that client:call runs before sending (klaviyo.body_check).
local format, concat, sort, find, lower = string.format, table.concat, table.sort, string.find, string.lower

local operations = require "klaviyo.operations"

local _M = {}

local write = require("klaviyo.cli.output").write

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
    local gen = require("klaviyo.body_check").generated(op_id)
    if gen then
      for _, l in ipairs(gen.requires) do lines[#lines + 1] = "    " .. l end
      lines[#lines + 1] = "  body shape (members, types, required):"
      for l in gen.shape:gmatch("[^\n]+") do lines[#lines + 1] = "    " .. l end
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
