-- Values the spec allows in checked query parameters, for specs that must send every
-- operation a valid request (the operation table's enum and filter facts). Not a spec.
local _M = {}

local function has_op(ops, op) return ("," .. ops .. ","):find("," .. op .. ",", 1, true) ~= nil end

--- A value the spec allows for a required query parameter `q` (an entry of an operation's
-- query list): its first enum value, for a filter an equals() on the first field (by name)
-- that takes it, else "x".
function _M.allowed_value(q)
  if q.enum then return (q.enum:match("^[^,]+")) end
  if q.filter then
    local fields = {}
    for f, o in pairs(q.filter) do
      if has_op(o, "equals") then fields[#fields + 1] = f end
    end
    table.sort(fields)
    return ('equals(%s,"x")'):format(fields[1])
  end
  return "x"
end

local ORDERED = { ["greater-than"] = true, ["greater-or-equal"] = true, ["less-than"] = true,
                  ["less-or-equal"] = true }
local BOOLEAN = { archived = true, published = true, verified = true, hidden = true, is_active = true,
                  is_starred = true, edited = true, incentivized = true }
local NUMBER = { size = true, rating = true }

local function is_time(field)
  local last = field:match("([^.]+)$")
  return last == "created" or last == "updated" or last == "datetime" or last == "timestamp"
    or last:match("_at$") ~= nil
end

-- One value of the type the field holds.
local function scalar(field)
  if BOOLEAN[field] then return "true" end
  if NUMBER[field] then return "5" end
  if is_time(field) then return "2024-01-01T00:00:00Z" end
  return '"x"'
end

--- A filter leaf using `op` on `field`, with a value of the field's type (a list for any).
function _M.leaf(field, op)
  if op == "has" then return ("has(%s)"):format(field) end
  if op == "any" then return ("any(%s,[%s])"):format(field, scalar(field)) end
  if ORDERED[op] and not NUMBER[field] then return ("%s(%s,2024-01-01T00:00:00Z)"):format(op, field) end
  return ("%s(%s,%s)"):format(op, field, scalar(field))
end

return _M
