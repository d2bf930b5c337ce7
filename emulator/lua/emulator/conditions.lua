-- Flow conditions: a definition's trigger_filter (metric-property conditions on the
-- triggering event) and profile_filter (profile-property conditions), compiled once at
-- create_flow into predicates the flowrunner checks before starting a run, so a filtered
-- flow fires only when Klaviyo's would. Condition groups are ANDed; the conditions inside a
-- group are ORed. What the emulator cannot evaluate (dates, regexes, predictive analytics,
-- consent, ...) is refused with 501 at create_flow rather than silently ignored.
local cjson = require("cjson.safe")
local jsonapi = require("emulator.jsonapi")

local null = cjson.null
local type, ipairs, tonumber, tostring, format, find, sub =
  type, ipairs, tonumber, tostring, string.format, string.find, string.sub

local _M = {}

local function unsupported(what)
  return jsonapi.error(501, "not_implemented", "Not implemented.",
    format("The Klaviyo emulator does not evaluate %s in flow filters.", what))
end

local function bad(pointer, detail) return jsonapi.invalid(detail, {pointer = pointer}) end

local function present(v) return v ~= nil and v ~= null end

local function str(v)
  if type(v) == "string" then return v end
  if type(v) == "number" or type(v) == "boolean" then return tostring(v) end
  return nil
end

local STRING_OPS = {
  equals = function(s, x) return s == x end,
  contains = function(s, x) return find(s, x, 1, true) ~= nil end,
  ["starts-with"] = function(s, x) return sub(s, 1, #x) == x end,
  ["ends-with"] = function(s, x) return x == "" or sub(s, -#x) == x end,
}
local NUMERIC_OPS = {
  equals = function(n, x) return n == x end,
  ["not-equals"] = function(n, x) return n ~= x end,
  ["greater-than"] = function(n, x) return n > x end,
  ["greater-than-or-equal"] = function(n, x) return n >= x end,
  ["less-than"] = function(n, x) return n < x end,
  ["less-than-or-equal"] = function(n, x) return n <= x end,
}
local LENGTH_OPS = {
  ["length-equals"] = NUMERIC_OPS.equals,
  ["length-greater-than"] = NUMERIC_OPS["greater-than"],
  ["length-greater-than-or-equal"] = NUMERIC_OPS["greater-than-or-equal"],
  ["length-less-than"] = NUMERIC_OPS["less-than"],
  ["length-less-than-or-equal"] = NUMERIC_OPS["less-than-or-equal"],
}

local function has(list, v)
  if type(list) ~= "table" then return false end
  for _, x in ipairs(list) do
    if x == v then return true end
  end
  return false
end

-- A value filter ({type, operator, value|start/end}) -> function(v) -> boolean.
local function value_filter(f, ptr)
  if type(f) ~= "table" then return nil, bad(ptr, "filter must be an object.") end
  local t, op, x = f.type, f.operator, f.value
  if t == "existence" then
    if op == "is-set" then return function(v) return present(v) and v ~= "" end end
    if op == "not-set" then return function(v) return not present(v) or v == "" end end
  elseif t == "boolean" then
    if op == "equals" and type(x) == "boolean" then return function(v) return v == x end end
  elseif t == "numeric" then
    if op == "between" then
      local lo, hi = tonumber(f.start), tonumber(f["end"])
      if lo and hi then
        return function(v)
          local n = tonumber(v)
          return n ~= nil and n >= lo and n <= hi
        end
      end
    elseif NUMERIC_OPS[op] and type(x) == "number" then
      local cmp = NUMERIC_OPS[op]
      return function(v)
        local n = tonumber(v)
        if n == nil then return op == "not-equals" end
        return cmp(n, x)
      end
    end
  elseif t == "string" then
    if op == "regex" or op == "nregex" then return nil, unsupported("regular expressions") end
    if op == "in" or op == "not-in" then
      if type(x) == "table" then
        local neg = op == "not-in"
        return function(v)
          local s = str(v)
          return (s ~= nil and has(x, s)) ~= neg
        end
      end
    else
      local neg = sub(op or "", 1, 4) == "not-"
      local cmp = STRING_OPS[neg and sub(op, 5) or op]
      if cmp and type(x) == "string" then
        -- a missing value satisfies the negated operators only
        return function(v)
          local s = str(v)
          if s == nil then return neg end
          return cmp(s, x) ~= neg
        end
      end
    end
  elseif t == "list" then
    if op == "contains" or op == "not-contains" then
      local neg = op == "not-contains"
      return function(v) return has(v, x) ~= neg end
    end
    if LENGTH_OPS[op] and type(x) == "number" then
      local cmp = LENGTH_OPS[op]
      return function(v) return type(v) == "table" and cmp(#v, x) end
    end
  elseif t == "date" then
    return nil, unsupported("date filters")
  end
  return nil, bad(ptr, format("Unsupported filter: type '%s' with operator '%s'.", tostring(t), tostring(op)))
end

-- Dotted lookup in a table (event properties may nest).
local function lookup(t, path)
  if type(t) ~= "table" then return nil end
  local v = t[path]
  if v ~= nil then return v end
  for part in path:gmatch("[^%.]+") do
    if type(t) ~= "table" then return nil end
    t = t[part]
  end
  return t
end

-- Getter for a profile-property condition: `first_name`, or `properties['name']`.
local function profile_getter(prop)
  local custom = prop:match("^properties%[['\"](.+)['\"]%]$")
  if custom then return function(p) return p.properties and p.properties[custom] end end
  local loc = prop:match("^location%.(.+)$")
  if loc then return function(p) return p.location and p.location[loc] end end
  return function(p) return p[prop] end
end

-- One condition -> predicate over the context {event=, profile=}.
local function condition(c, ptr, opts)
  if type(c) ~= "table" then return nil, bad(ptr, "A condition must be an object.") end
  local f, st, doc = value_filter(c.filter, ptr .. "/filter")
  if not f then return nil, st, doc end
  if c.type == "metric-property" and opts.metric_id then
    if c.metric_id ~= opts.metric_id then
      return nil, bad(ptr .. "/metric_id", "A trigger filter must test the trigger's own metric.")
    end
    if type(c.field) ~= "string" or c.field == "" then
      return nil, bad(ptr .. "/field", "field must name an event property.")
    end
    local field = c.field
    return function(ctx) return f(lookup(ctx.event and ctx.event.properties, field)) end
  elseif c.type == "profile-property" and not opts.metric_id then
    if type(c.property) ~= "string" or c.property == "" then
      return nil, bad(ptr .. "/property", "property must name a profile property.")
    end
    local get = profile_getter(c.property)
    return function(ctx) return ctx.profile ~= nil and f(get(ctx.profile)) end
  end
  return nil, unsupported(format("'%s' conditions", tostring(c.type)))
end

--- Compiles {condition_groups = [{conditions = [...]}, ...]} into function(ctx) -> boolean,
-- where ctx = {event=, profile=}. opts.metric_id: a trigger filter of that metric (only
-- metric-property conditions); otherwise a profile filter. nil filter -> nil (no filter).
-- Errors: nil, status, doc.
function _M.compile(filter, ptr, opts)
  if not present(filter) then return false end
  local groups = type(filter) == "table" and filter.condition_groups
  if type(groups) ~= "table" then
    return nil, bad(ptr .. "/condition_groups", "condition_groups must be an array.")
  end
  local compiled = {}
  for gi, g in ipairs(groups) do
    local gptr = format("%s/condition_groups/%d", ptr, gi - 1)
    local conds = type(g) == "table" and g.conditions
    if type(conds) ~= "table" or conds[1] == nil then
      return nil, bad(gptr .. "/conditions", "conditions must be a non-empty array.")
    end
    local ors = {}
    for ci, c in ipairs(conds) do
      local fn, st, doc = condition(c, format("%s/conditions/%d", gptr, ci - 1), opts)
      if not fn then return nil, st, doc end
      ors[ci] = fn
    end
    compiled[gi] = ors
  end
  return function(ctx)
    for _, ors in ipairs(compiled) do
      local any = false
      for _, fn in ipairs(ors) do
        if fn(ctx) then any = true break end
      end
      if not any then return false end
    end
    return true
  end
end

return _M
