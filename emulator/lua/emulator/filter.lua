-- Klaviyo filter expressions (`equals(email,"a@b.com")`, `any(id,["a","b"])`,
-- `greater-or-equal(datetime,2024-01-01T00:00:00Z)`, `and(...)`, `or(...)`,
-- `not(...)`, a top-level comma meaning and) parsed into an AST, and matchers
-- built from an AST against a whitelist of fields and operators per operation.
-- Pure Lua: the parser is unit-tested outside nginx.
local cjson = require "cjson.safe"

local null = cjson.null
local sub, find, format, char = string.sub, string.find, string.format, string.char
local tonumber, type, ipairs, pairs = tonumber, type, ipairs, pairs

local M = {}

local BOOLEAN_OPS = { ["and"] = true, ["or"] = true, ["not"] = true }
local FIELD_OPS = {
  equals = true, any = true, has = true, contains = true, ["contains-any"] = true,
  ["contains-all"] = true, ["starts-with"] = true, ["ends-with"] = true,
  ["greater-than"] = true, ["greater-or-equal"] = true, ["less-than"] = true,
  ["less-or-equal"] = true,
}
M.OPERATORS = FIELD_OPS

-- Days from 1970-01-01 to y-m-d (proleptic Gregorian), independent of the
-- local time zone (os.time would apply it).
local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = math.floor(y / 400)
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = math.floor((153 * mp + 2) / 5) + d - 1
  local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
  return era * 146097 + doe - 719468
end

--- Parses an ISO-8601 datetime (date only, or with time, fraction, Z or
-- +hh:mm / +hhmm offset) into epoch seconds; nil when malformed.
function M.parse_datetime(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, rest = s:match("^(%d%d%d%d)%-(%d%d)%-(%d%d)(.*)$")
  if not y then return nil end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo < 1 or mo > 12 or d < 1 or d > 31 then return nil end
  local h, mi, se, frac, tz = 0, 0, 0, 0, 0
  if rest ~= "" then
    local hh, mm, tail = rest:match("^[T ](%d%d):(%d%d)(.*)$")
    if not hh then return nil end
    h, mi = tonumber(hh), tonumber(mm)
    local ss, tail2 = tail:match("^:(%d%d)(.*)$")
    if ss then se, tail = tonumber(ss), tail2 end
    local f, tail3 = tail:match("^%.(%d+)(.*)$")
    if f then frac, tail = tonumber("0." .. f), tail3 end
    if tail == "Z" or tail == "z" or tail == "" then
      tz = 0
    else
      local sign, oh, om = tail:match("^([%+%-])(%d%d):?(%d%d)$")
      if not sign then return nil end
      tz = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
    end
    if h > 23 or mi > 59 or se > 60 then return nil end
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se + frac - tz
end

---------------------------------------------------------------- parser

local Parser = {}
Parser.__index = Parser

local function perr(p, msg)
  error({ filter_error = format("Invalid filter provided: %s at position %d.", msg, p.pos) }, 0)
end

function Parser:skip()
  local _, e = find(self.s, "^%s*", self.pos)
  self.pos = e + 1
end

function Parser:peek()
  self:skip()
  return sub(self.s, self.pos, self.pos)
end

function Parser:expect(c)
  if self:peek() ~= c then perr(self, format("expected '%s'", c)) end
  self.pos = self.pos + 1
end

local ESC = { ['"'] = '"', ["'"] = "'", ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f",
              n = "\n", r = "\r", t = "\t" }

function Parser:string()
  local q = sub(self.s, self.pos, self.pos)
  self.pos = self.pos + 1
  local out, s = {}, self.s
  while true do
    local c = sub(s, self.pos, self.pos)
    if c == "" then perr(self, "unterminated string") end
    if c == q then self.pos = self.pos + 1 break end
    if c == "\\" then
      local e = sub(s, self.pos + 1, self.pos + 1)
      if e == "u" then
        local hex = s:match("^%x%x%x%x", self.pos + 2)
        if not hex then perr(self, "bad \\u escape") end
        local cp = tonumber(hex, 16)
        -- UTF-8 encode (basic multilingual plane is enough for filter values)
        if cp < 0x80 then out[#out + 1] = char(cp)
        elseif cp < 0x800 then out[#out + 1] = char(0xC0 + math.floor(cp / 64), 0x80 + cp % 64)
        else
          out[#out + 1] = char(0xE0 + math.floor(cp / 4096), 0x80 + math.floor(cp / 64) % 64,
            0x80 + cp % 64)
        end
        self.pos = self.pos + 6
      elseif ESC[e] then
        out[#out + 1] = ESC[e]
        self.pos = self.pos + 2
      else
        perr(self, "bad escape")
      end
    else
      out[#out + 1] = c
      self.pos = self.pos + 1
    end
  end
  return table.concat(out)
end

-- An unquoted token: number, true/false/null, or a datetime.
function Parser:bare()
  local s, e = find(self.s, "^[%w%-%+:%.]+", self.pos)
  if not s then perr(self, "expected a value") end
  local tok = sub(self.s, s, e)
  self.pos = e + 1
  if tok == "true" then return true end
  if tok == "false" then return false end
  if tok == "null" then return null end
  if tok:match("^%-?%d+%.?%d*$") or tok:match("^%-?%d*%.%d+$") then return tonumber(tok) end
  local t = M.parse_datetime(tok)
  if t then return { datetime = t, text = tok } end
  perr(self, format("unrecognised value '%s'", tok))
end

function Parser:value()
  local c = self:peek()
  if c == '"' or c == "'" then return self:string() end
  if c == "[" then
    self.pos = self.pos + 1
    local arr = {}
    if self:peek() == "]" then self.pos = self.pos + 1 return arr end
    while true do
      arr[#arr + 1] = self:value()
      local d = self:peek()
      if d == "]" then self.pos = self.pos + 1 break end
      if d ~= "," then perr(self, "expected ',' or ']'") end
      self.pos = self.pos + 1
    end
    return arr
  end
  return self:bare()
end

function Parser:expr()
  self:skip()
  local s, e = find(self.s, "^[%a][%w%-]*", self.pos)
  if not s then perr(self, "expected an operator") end
  local op = sub(self.s, s, e)
  self.pos = e + 1
  self:expect("(")
  if BOOLEAN_OPS[op] then
    local args = { self:expr() }
    while self:peek() == "," do
      self.pos = self.pos + 1
      args[#args + 1] = self:expr()
    end
    self:expect(")")
    if op == "not" and #args ~= 1 then perr(self, "not() takes one expression") end
    return { op = op, args = args }
  end
  if not FIELD_OPS[op] then perr(self, format("unknown operator '%s'", op)) end
  self:skip()
  local fs, fe = find(self.s, "^[%w_%$%.%-]+", self.pos)
  if not fs then perr(self, "expected a field name") end
  local field = sub(self.s, fs, fe)
  self.pos = fe + 1
  self:expect(",")
  local value = self:value()
  self:expect(")")
  return { op = op, field = field, value = value }
end

--- Parses a filter string. Returns the AST, or nil and a message.
-- Top-level expressions separated by commas are combined with `and`.
function M.parse(s)
  if type(s) ~= "string" or s == "" then return nil, "Invalid filter provided: empty filter." end
  local p = setmetatable({ s = s, pos = 1 }, Parser)
  local ok, res = pcall(function()
    local list = { p:expr() }
    while p:peek() == "," do
      p.pos = p.pos + 1
      list[#list + 1] = p:expr()
    end
    if p:peek() ~= "" then perr(p, "unexpected text") end
    if #list == 1 then return list[1] end
    return { op = "and", args = list, implicit = true }
  end)
  if ok then return res end
  if type(res) == "table" and res.filter_error then return nil, res.filter_error end
  error(res, 0)
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
-- {ops = {"equals", ...}, get = function(obj) -> value (default obj[field]),
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
    local ops = spec.ops_set
    if not ops then ops = ops_set(spec.ops); spec.ops_set = ops end
    if not ops[node.op] then
      return nil, format("Invalid filter provided: operator '%s' is not supported for field '%s'.",
        node.op, node.field)
    end
    local v = node.value
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
    local get = spec.get
    local field = node.field
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
