-- Klaviyo's filter grammar, read into a tree: `op(field,value)` leaves (`has(field)` may omit
-- the value), `and(...)`, `or(...)`, `not(...)`, and a top-level comma meaning and. Values:
-- strings in double or single quotes (backslash escapes, \uXXXX), numbers, true, false, null,
-- ISO-8601 dates and datetimes written bare, and lists `[v,v]`. One reader for the client's
-- local check (klaviyo.query_check) and the emulator's filters, so both take the same text.
local null = require("cjson").null
local days_from_civil = require("klaviyo.calendar").days_from_civil

local sub, find, format, char = string.sub, string.find, string.format, string.char
local tonumber, type, error, pcall, setmetatable = tonumber, type, error, pcall, setmetatable
local floor, concat = math.floor, table.concat

local _M = {}

_M.COMBINATORS = { ["and"] = true, ["or"] = true, ["not"] = true }
-- The field operators of the grammar; an operation allows some of them per field.
_M.OPERATORS = {
  equals = true, any = true, has = true, contains = true, ["contains-any"] = true,
  ["contains-all"] = true, ["starts-with"] = true, ["ends-with"] = true,
  ["greater-than"] = true, ["greater-or-equal"] = true, ["less-than"] = true,
  ["less-or-equal"] = true,
}

--- An ISO-8601 date or datetime (with time, optional seconds and fraction, Z or +hh:mm /
-- +hhmm offset) as epoch seconds; nil when malformed.
function _M.datetime(s)
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
    if tail ~= "Z" and tail ~= "z" and tail ~= "" then
      local sign, oh, om = tail:match("^([%+%-])(%d%d):?(%d%d)$")
      if not sign then return nil end
      tz = (tonumber(oh) * 3600 + tonumber(om) * 60) * (sign == "-" and -1 or 1)
    end
    if h > 23 or mi > 59 or se > 60 then return nil end
  end
  return days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se + frac - tz
end

local Parser = {}
Parser.__index = Parser

-- Failures unwind to parse() as {why, position}.
local function fail(p, msg) error({ msg, p.pos }, 0) end

function Parser:skip()
  local _, e = find(self.s, "^%s*", self.pos)
  self.pos = e + 1
end

function Parser:peek()
  self:skip()
  return sub(self.s, self.pos, self.pos)
end

function Parser:expect(c)
  if self:peek() ~= c then fail(self, format("expected '%s'", c)) end
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
    if c == "" then fail(self, "unterminated string") end
    if c == q then self.pos = self.pos + 1 break end
    if c == "\\" then
      local e = sub(s, self.pos + 1, self.pos + 1)
      if e == "u" then
        local hex = s:match("^%x%x%x%x", self.pos + 2)
        if not hex then fail(self, "bad \\u escape") end
        local cp = tonumber(hex, 16)
        -- UTF-8 (the basic multilingual plane is enough for filter values)
        if cp < 0x80 then out[#out + 1] = char(cp)
        elseif cp < 0x800 then out[#out + 1] = char(0xC0 + floor(cp / 64), 0x80 + cp % 64)
        else
          out[#out + 1] = char(0xE0 + floor(cp / 4096), 0x80 + floor(cp / 64) % 64, 0x80 + cp % 64)
        end
        self.pos = self.pos + 6
      elseif ESC[e] then
        out[#out + 1] = ESC[e]
        self.pos = self.pos + 2
      else
        fail(self, "bad escape")
      end
    else
      out[#out + 1] = c
      self.pos = self.pos + 1
    end
  end
  return concat(out)
end

-- An unquoted token: a number, true/false/null, or a datetime ({datetime = epoch, text = ...}).
function Parser:bare()
  local s, e = find(self.s, "^[%w%-%+:%.]+", self.pos)
  if not s then fail(self, "expected a value") end
  local tok = sub(self.s, s, e)
  if tok == "true" then self.pos = e + 1 return true end
  if tok == "false" then self.pos = e + 1 return false end
  if tok == "null" then self.pos = e + 1 return null end
  if tok:match("^%-?%d+%.?%d*$") or tok:match("^%-?%d*%.%d+$") then
    self.pos = e + 1
    return tonumber(tok)
  end
  local t = _M.datetime(tok)
  if t then self.pos = e + 1 return { datetime = t, text = tok } end
  fail(self, format("unrecognised value '%s'", tok))
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
      if d ~= "," then fail(self, "expected ',' or ']'") end
      self.pos = self.pos + 1
    end
    return arr
  end
  return self:bare()
end

function Parser:expr()
  self:skip()
  local s, e = find(self.s, "^[%a][%w%-]*", self.pos)
  if not s then fail(self, "expected an operator") end
  local op = sub(self.s, s, e)
  self.pos = e + 1
  self:expect("(")
  if _M.COMBINATORS[op] then
    local args = { self:expr() }
    while self:peek() == "," do
      self.pos = self.pos + 1
      args[#args + 1] = self:expr()
    end
    self:expect(")")
    if op == "not" and #args ~= 1 then fail(self, "not() takes one expression") end
    return { op = op, args = args }
  end
  if not _M.OPERATORS[op] then
    self.pos = s
    fail(self, format("unknown operator '%s'", op))
  end
  self:skip()
  local fs, fe = find(self.s, "^[%w_%$%.%-]+", self.pos)
  if not fs then fail(self, "expected a field name") end
  local field = sub(self.s, fs, fe)
  self.pos = fe + 1
  if op == "has" and self:peek() == ")" then
    self.pos = self.pos + 1
    return { op = op, field = field }
  end
  self:expect(",")
  local value = self:value()
  self:expect(")")
  return { op = op, field = field, value = value }
end

--- Reads a filter. Returns the tree ({op, field, value} leaves, {op, args} combinators, a
-- top-level comma list as {op = "and", args, implicit = true}), or nil, why, position.
function _M.parse(s)
  if type(s) ~= "string" or s == "" then return nil, "empty filter", 1 end
  local p = setmetatable({ s = s, pos = 1 }, Parser)
  local ok, res = pcall(function()
    local list = { p:expr() }
    while p:peek() == "," do
      p.pos = p.pos + 1
      list[#list + 1] = p:expr()
    end
    if p:peek() ~= "" then fail(p, "unexpected text") end
    if #list == 1 then return list[1] end
    return { op = "and", args = list, implicit = true }
  end)
  if ok then return res end
  if type(res) == "table" and type(res[1]) == "string" then return nil, res[1], res[2] end
  error(res, 0)
end

return _M
