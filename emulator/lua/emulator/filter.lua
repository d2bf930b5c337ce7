-- Klaviyo filter expressions (`equals(email,"a@b.com")`, `any(id,["a","b"])`,
-- `greater-or-equal(datetime,2024-01-01T00:00:00Z)`, `and(...)`, `or(...)`,
-- `not(...)`, a top-level comma meaning and) parsed into an AST, and matchers
-- built from an AST against a whitelist of fields and operators per operation.
-- Pure Lua: the parser is unit-tested outside nginx.
local parser = require "klaviyo.filter_parse"

local sub, find, format = string.sub, string.find, string.format
local type, ipairs, pairs = type, ipairs, pairs

local M = {}

M.OPERATORS = parser.OPERATORS

--- Parses an ISO-8601 datetime (date only, or with time, fraction, Z or
-- +hh:mm / +hhmm offset) into epoch seconds; nil when malformed.
M.parse_datetime = parser.datetime

--- Parses a filter string (the grammar klaviyo.filter_parse reads, which the client checks
-- with too). Returns the AST, or nil and a message.
function M.parse(s)
  local ast, why, pos = parser.parse(s)
  if ast then return ast end
  if s == nil or s == "" then return nil, "Invalid filter provided: empty filter." end
  return nil, format("Invalid filter provided: %s at position %d.", why, pos)
end

---------------------------------------------------------------- matcher

local function norm(v)
  if type(v) == "table" and v.datetime then return v.datetime end
  return v
end

local function contains_value(arr, v)
  if type(arr) ~= "table" then return false end
  for _, x in ipairs(arr) do
    if x == v then return true end
  end
  return false
end

local COMPARE = {
  equals = function(a, v) return a ~= nil and a == v end,
  any = function(a, v)
    for i = 1, #v do if a == v[i] then return true end end
    return false
  end,
  ["greater-than"] = function(a, v) return type(a) == "number" and a > v end,
  ["greater-or-equal"] = function(a, v) return type(a) == "number" and a >= v end,
  ["less-than"] = function(a, v) return type(a) == "number" and a < v end,
  ["less-or-equal"] = function(a, v) return type(a) == "number" and a <= v end,
  ["starts-with"] = function(a, v) return type(a) == "string" and sub(a, 1, #v) == v end,
  ["ends-with"] = function(a, v) return type(a) == "string" and (v == "" or sub(a, -#v) == v) end,
  contains = function(a, v)
    if type(a) == "string" then return type(v) == "string" and find(a, v, 1, true) ~= nil end
    return contains_value(a, v)
  end,
  has = function(a, v) return contains_value(a, v) end,
  ["contains-any"] = function(a, v)
    for i = 1, #v do if contains_value(a, v[i]) then return true end end
    return false
  end,
  ["contains-all"] = function(a, v)
    for i = 1, #v do if not contains_value(a, v[i]) then return false end end
    return true
  end,
}
local LIST_VALUE = { any = true, ["contains-any"] = true, ["contains-all"] = true }
local ORDERED = { ["greater-than"] = true, ["greater-or-equal"] = true, ["less-than"] = true,
                  ["less-or-equal"] = true }

local function ops_set(list)
  local set = {}
  for k, v in pairs(list or {}) do
    if type(k) == "number" then set[v] = true else set[k] = v end
  end
  return set
end

--- Builds a predicate from an AST. `allowed` maps field names to
-- {ops = {"equals", ...} (optional: without it any operator passes, the server having
-- checked it against the operation table), get = function(obj) -> value (default obj[field]),
-- each = true when get returns a list and the leaf holds if it holds for any item,
--  type = "string"|"number"|"datetime"|"boolean"|"array" (optional check)};
-- allowed["and"], allowed["or"], allowed["not"] = true permit those combinators
-- (a top-level comma needs "and"). Returns function(obj) -> boolean, or nil and
-- a message (the caller answers 400 invalid, source.parameter = "filter").
-- The second result is a list of {field, op, value} leaves, so a handler can
-- use an index (e.g. equals(email,...)) instead of scanning.
function M.matcher(ast, allowed)
  local leaves = {}
  local function build(node)
    if node.args then
      if not allowed[node.op] then
        return nil, format("Invalid filter provided: operator '%s' is not supported here.", node.op)
      end
      local fns = {}
      for i, a in ipairs(node.args) do
        local f, err = build(a)
        if not f then return nil, err end
        fns[i] = f
      end
      if node.op == "and" then
        return function(o)
          for i = 1, #fns do if not fns[i](o) then return false end end
          return true
        end
      elseif node.op == "or" then
        return function(o)
          for i = 1, #fns do if fns[i](o) then return true end end
          return false
        end
      end
      local f = fns[1]
      return function(o) return not f(o) end
    end
    local spec = allowed[node.field]
    if type(spec) ~= "table" then
      return nil, format("Invalid filter provided: '%s' is not a valid field for this filter.", node.field)
    end
    -- Handlers leave ops out: the server checked the operator against the operation table.
    if spec.ops then
      local ops = spec.ops_set
      if not ops then ops = ops_set(spec.ops); spec.ops_set = ops end
      if not ops[node.op] then
        return nil, format("Invalid filter provided: operator '%s' is not supported for field '%s'.",
          node.op, node.field)
      end
    end
    local v = node.value
    local field, get = node.field, spec.get
    if v == nil then
      -- has(field): the field (or relationship) is present
      leaves[#leaves + 1] = { field = field, op = node.op }
      if get then return function(o) return get(o) ~= nil end end
      return function(o) return o[field] ~= nil end
    end
    if LIST_VALUE[node.op] then
      if type(v) ~= "table" or v.datetime then
        return nil, format("Invalid filter provided: '%s' takes a list.", node.op)
      end
      local list = {}
      for i, x in ipairs(v) do list[i] = norm(x) end
      v = list
    else
      if type(v) == "table" and not v.datetime then
        return nil, format("Invalid filter provided: '%s' takes a single value.", node.op)
      end
      if spec.type == "datetime" then
        if type(v) == "string" then
          local t = M.parse_datetime(v)
          if not t then return nil, format("Invalid filter provided: '%s' is not a datetime.", v) end
          v = t
        elseif type(v) == "table" then
          v = v.datetime
        else
          return nil, format("Invalid filter provided: field '%s' takes a datetime.", node.field)
        end
      elseif spec.type == "string" and type(v) ~= "string" then
        return nil, format("Invalid filter provided: field '%s' takes a string.", node.field)
      else
        v = norm(v)
      end
      if ORDERED[node.op] and type(v) ~= "number" then
        return nil, format("Invalid filter provided: '%s' takes a number or datetime.", node.op)
      end
    end
    leaves[#leaves + 1] = { field = node.field, op = node.op, value = v }
    local cmp = COMPARE[node.op]
    if spec.each then
      return function(o)
        local vs = get(o)
        for i = 1, #vs do if cmp(vs[i], v) then return true end end
        return false
      end
    end
    if get then
      return function(o) return cmp(get(o), v) end
    end
    return function(o) return cmp(o[field], v) end
  end
  local fn, err = build(ast)
  if not fn then return nil, err end
  return fn, leaves
end

--- parse + matcher in one step: returns predicate, leaves or nil, message.
function M.compile(s, allowed)
  local ast, err = M.parse(s)
  if not ast then return nil, err end
  return M.matcher(ast, allowed)
end

return M
