--- klaviyo.query_check: what Klaviyo allows in a query parameter, checked before anything is
-- sent. The operation table (generated from Klaviyo's spec) gives, per operation, the enum of
-- `sort`, `include`, `fields[...]` and every other enumerated parameter, and the fields and
-- operators `filter` allows. `client:call` refuses a value outside them (error kind
-- "refused", err.parameter, err.allowed); the emulator answers the same values 400 from this
-- same module, so the two cannot disagree.
--
-- A filter is read with Klaviyo's grammar (klaviyo.filter_parse); its leaves must name an
-- allowed field with one of that field's operators, and they combine with `and(...)` or a
-- top-level comma: no operation's spec allows `or` or `not`.
-- @module klaviyo.query_check
local operations = require "klaviyo.operations"

local type, ipairs, pairs, tostring, require = type, ipairs, pairs, tostring, require
local format, concat, sort, min = string.format, table.concat, table.sort, math.min
local gmatch, byte = string.gmatch, string.byte

local _M = {}

local LIST_SHOWN = 12   -- values a message lists; err.allowed holds them all

local function split(s)
  local out = {}
  for item in gmatch(s, "[^,]+") do out[#out + 1] = item:match("^%s*(.-)%s*$") end
  return out
end

local function set_of(list)
  local set = {}
  for _, v in ipairs(list) do set[v] = true end
  return set
end

-- Per operation: name -> {list, set} for an enum, {fields = {name -> {list, set}}, names} for
-- a filter; false when the operation checks nothing. Built on first use.
local compiled = {}

local function compile(op_id)
  local op = operations[op_id]
  local rules = false
  for _, q in ipairs(op and op.query or {}) do
    if q.enum then
      local list = split(q.enum)
      rules = rules or {}
      rules[q.name] = { list = list, set = set_of(list), array = q.array }
    elseif q.filter then
      local fields, names = {}, {}
      for field, ops in pairs(q.filter) do
        local list = split(ops)
        fields[field] = { list = list, set = set_of(list) }
        names[#names + 1] = field
      end
      sort(names)
      rules = rules or {}
      rules[q.name] = { fields = fields, names = names }
    end
  end
  compiled[op_id] = rules
  return rules
end

--- The checked parameters of an operation: name -> rule, or false when there is none.
---@param op_id string operation id
---@return table|false
function _M.rules(op_id)
  local r = compiled[op_id]
  if r == nil then r = compile(op_id) end
  return r
end

-- Levenshtein distance, to suggest the allowed value a typo meant.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    local ca = byte(a, i)
    for j = 1, #b do
      cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca == byte(b, j) and 0 or 1))
    end
    prev = cur
  end
  return prev[#b]
end

-- "a, b, c" (at most LIST_SHOWN of them), with the nearest value to `given` suggested.
local function allowed_text(list, given)
  local best, best_d
  if type(given) == "string" and #given < 64 then
    for _, v in ipairs(list) do
      local d = distance(given, v)
      if d <= 2 and (best_d == nil or d < best_d) then best, best_d = v, d end
    end
  end
  local shown = {}
  for i = 1, min(#list, LIST_SHOWN) do shown[i] = list[i] end
  local text = concat(shown, ", ")
  if #list > LIST_SHOWN then
    text = format("%s ... (%d values, all in err.allowed)", text, #list)
  end
  if best then return format("did you mean %q? allowed: %s", best, text) end
  return "allowed: " .. text
end

local function problem(name, given, allowed, detail, ...)
  return { parameter = name, given = given, allowed = allowed, detail = format(detail, ...) }
end

-- The first leaf or combinator of a filter tree outside what `rule` allows, or nil.
local function filter_problem(name, text, tree, rule)
  if tree.args then
    if tree.op ~= "and" then
      return problem(name, text, { "and" },
        "%s: %s(...) is not allowed: filters combine with and(...) or a top-level comma", name, tree.op)
    end
    for _, sub in ipairs(tree.args) do
      local p = filter_problem(name, text, sub, rule)
      if p then return p end
    end
    return nil
  end
  local field = rule.fields[tree.field]
  if field == nil then
    return problem(name, text, rule.names, "%s: field %q is not one this operation filters on; %s",
      name, tree.field, allowed_text(rule.names, tree.field))
  end
  if not field.set[tree.op] then
    return problem(name, text, field.list, "%s: operator %q is not allowed on field %q; %s",
      name, tree.op, tree.field, allowed_text(field.list, tree.op))
  end
  return nil
end

local parse   -- klaviyo.filter_parse.parse, loaded with the first filter checked

--- Checks one query value of an operation against the spec's lists. `value` is what is sent:
-- a string (a filter's text, a sort, or an array's values joined with commas) or a list of
-- strings. Returns nil when the value is allowed (or the parameter is not one that is
-- checked), else {parameter, given, allowed (list), detail (a line naming all three)}.
---@param op_id string operation id
---@param name string the query parameter's name
---@param value string|string[] the value
---@return table? problem
function _M.check(op_id, name, value)
  local rules = compiled[op_id]
  if rules == nil then rules = compile(op_id) end
  local rule = rules and rules[name]
  if not rule then return nil end
  if rule.fields then
    if type(value) ~= "string" then return nil end
    parse = parse or require("klaviyo.filter_parse").parse
    local tree, why, pos = parse(value)
    if tree == nil then
      return problem(name, value, rule.names, "%s: %q does not parse: %s at position %d",
        name, value, why, pos)
    end
    return filter_problem(name, value, tree, rule)
  end
  local items = value
  if type(value) == "string" then
    items = rule.array and split(value) or { value }
  end
  for _, v in ipairs(items) do
    v = tostring(v)
    if not rule.set[v] then
      return problem(name, value, rule.list, "%s: %q is not allowed; %s", name, v,
        allowed_text(rule.list, v))
    end
  end
  return nil
end

--- Checks every checked parameter present in `query` (name -> value), in the operation's
-- order; returns the first problem (see check) or nil.
---@param op_id string operation id
---@param query table name -> value
---@return table? problem
function _M.check_query(op_id, query)
  local rules = _M.rules(op_id)
  if not rules then return nil end
  for _, q in ipairs(operations[op_id].query) do
    local v = query[q.name]
    if v ~= nil and rules[q.name] then
      local p = _M.check(op_id, q.name, v)
      if p then return p end
    end
  end
  return nil
end

return _M
