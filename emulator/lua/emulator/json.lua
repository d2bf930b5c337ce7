-- JSON decoding of request bodies: lua-cjson's answer, reached faster for the common body.
--
-- Why: cjson.decode was about two thirds of the emulator's CPU per bulk event (a bulk body is
-- 1000 events of ~12 small objects each; cjson lexes strings byte by byte into a scratch buffer
-- and builds every table through the C API). Under LuaJIT (nginx) this decoder finds string
-- ends with string.find and parses the rest with string.byte, all of it JIT-compiled.
--
-- It only handles what it can decode exactly as cjson does, and hands everything else to
-- cjson.decode, which then answers (the same value, or the same error message):
--   * a body holding a backslash or a NUL byte (escapes, cjson's end-of-text rule);
--   * numbers outside -?(0|[1-9][0-9]*)(\.[0-9]+)? with at most 15 digits: those are exact
--     as integer / 10^k (both operands exact doubles, one correctly rounded division), which
--     is what strtod gives; longer numbers, exponents and cjson's extras (hex, inf, nan) go
--     to cjson;
--   * nesting deeper than 200 (cjson's limit, 1000, and its error stay cjson's);
--   * anything that is not strict JSON (cjson accepts or rejects it with its own message).
-- Tables are built as cjson builds them (empty, then filled key by key in document order), so
-- even the iteration order of pairs() is the same.
local cjson = require "cjson.safe"

local cjson_decode = cjson.decode
local null = cjson.null
local byte, sub, find, type = string.byte, string.sub, string.find, type

local M = {}

-- Byte values.
local QUOTE, COMMA, COLON, MINUS, DOT = 34, 44, 58, 45, 46
local LBRACE, RBRACE, LBRACKET, RBRACKET = 123, 125, 91, 93
local ZERO, NINE = 48, 57
local SPACE, TAB, LF, CR = 32, 9, 10, 13
local MAX_DEPTH = 200

local STACK, KEYS, COUNTS = {}, {}, {}

local POW10 = {}
for k = 0, 15 do POW10[k] = 10 ^ k end

-- An object member's key, from its opening quote at i: the key and the position of the colon
-- after it, or nil (no closing quote, or no colon). Keys hold no backslash (see above).
local function member_key(s, i)
  local j = find(s, '"', i + 1, true)
  if not j then return nil end
  local key = sub(s, i + 1, j - 1)
  i = j + 1
  local c = byte(s, i)
  while c == SPACE or c == LF or c == CR or c == TAB do i = i + 1; c = byte(s, i) end
  if c ~= COLON then return nil end
  return key, i
end

-- Parses one strict JSON value of `s` from position `start` in one loop with an explicit stack
-- (recursive functions do not compile into LuaJIT traces). `whole`: the value must be all of
-- `s` (whitespace aside); returns the value. Otherwise returns the value and the position after
-- it. Either way nil, false when the text is not one this decoder handles exactly as cjson
-- (see above): the caller then asks cjson.
local function parse(s, start, whole)
  local n = #s
  -- open containers, an object's pending key, array sizes: shared by every call (a parse runs
  -- to its end without calling out, and reads a level only after writing it), as one table
  -- each per call was a visible cost when bulk_body asks for a few small values per event.
  -- They hold the last text's containers until the next parse overwrites them (one document
  -- at most, no growth).
  local stack, keys, counts = STACK, KEYS, COUNTS
  local depth = 0
  local cur, key, count                   -- the innermost open container and its slot
  local i, c = start, byte(s, start)
  while true do
    -- a value starts at i (whitespace first)
    while c == SPACE or c == LF or c == CR or c == TAB do i = i + 1; c = byte(s, i) end
    local v
    if c == QUOTE then
      local j = find(s, '"', i + 1, true)
      if not j then return nil, false end
      v = sub(s, i + 1, j - 1)
      i = j + 1
    elseif c == LBRACE or c == LBRACKET then
      if depth >= MAX_DEPTH then return nil, false end
      local t = {}
      local close = c == LBRACE and RBRACE or RBRACKET
      i = i + 1
      c = byte(s, i)
      while c == SPACE or c == LF or c == CR or c == TAB do i = i + 1; c = byte(s, i) end
      if c == close then
        v = t -- empty: a finished value
        i = i + 1
      else
        depth = depth + 1
        stack[depth], keys[depth], counts[depth] = cur, key, count
        cur = t
        if close == RBRACE then
          if c ~= QUOTE then return nil, false end
          key, i = member_key(s, i)
          if not key then return nil, false end
          count = nil
        else
          key, count = nil, 0
        end
        i = i + (close == RBRACE and 1 or 0)
      end
    elseif c == MINUS or (c ~= nil and c >= ZERO and c <= NINE) then
      local neg = c == MINUS
      if neg then i = i + 1; c = byte(s, i) end
      if c == nil or c < ZERO or c > NINE then return nil, false end
      local m, digits, scale = c - ZERO, 1, 0
      i = i + 1
      c = byte(s, i)
      if m == 0 then
        if c ~= nil and c >= ZERO and c <= NINE then return nil, false end -- leading zero
      else
        while c ~= nil and c >= ZERO and c <= NINE do
          m = m * 10 + (c - ZERO); digits = digits + 1; i = i + 1; c = byte(s, i)
        end
      end
      if c == DOT then
        i = i + 1
        c = byte(s, i)
        if c == nil or c < ZERO or c > NINE then return nil, false end
        while c ~= nil and c >= ZERO and c <= NINE do
          m = m * 10 + (c - ZERO); digits = digits + 1; scale = scale + 1; i = i + 1; c = byte(s, i)
        end
      end
      if digits > 15 or c == 101 or c == 69 then return nil, false end -- long, or an exponent
      v = m / POW10[scale]
      if neg then v = -v end
    elseif c == 116 and sub(s, i, i + 3) == "true" then
      v, i = true, i + 4
    elseif c == 102 and sub(s, i, i + 4) == "false" then
      v, i = false, i + 5
    elseif c == 110 and sub(s, i, i + 3) == "null" then
      v, i = null, i + 4
    else
      return nil, false
    end
    if v ~= nil then
      -- store the finished value; close every container it finishes
      while true do
        if depth == 0 then
          if not whole then return v, i end
          c = byte(s, i)
          while c == SPACE or c == LF or c == CR or c == TAB do i = i + 1; c = byte(s, i) end
          if i ~= n + 1 then return nil, false end
          return v
        end
        if count then
          count = count + 1
          cur[count] = v
        else
          cur[key] = v
        end
        c = byte(s, i)
        while c == SPACE or c == LF or c == CR or c == TAB do i = i + 1; c = byte(s, i) end
        if c == COMMA then
          i = i + 1
          c = byte(s, i)
          if not count then
            while c == SPACE or c == LF or c == CR or c == TAB do i = i + 1; c = byte(s, i) end
            if c ~= QUOTE then return nil, false end
            key, i = member_key(s, i)
            if not key then return nil, false end
            i = i + 1
            c = byte(s, i)
          end
          break
        elseif c == (count and RBRACKET or RBRACE) then
          v = cur
          i = i + 1
          cur, key, count = stack[depth], keys[depth], counts[depth]
          depth = depth - 1
        else
          return nil, false
        end
      end
    else
      c = byte(s, i)
    end
  end
end

-- The fast path pays off only where the JIT compiles it (LuaJIT); elsewhere cjson alone.
local fast = rawget(_G, "jit") ~= nil

--- Decodes `s` like cjson.safe.decode: value, or nil and cjson's error message.
function M.decode(s)
  if fast and type(s) == "string" and not find(s, "\\", 1, true) and not find(s, "\0", 1, true) then
    local v, handled = parse(s, 1, true)
    if handled ~= false then return v end
  end
  return cjson_decode(s)
end

-- For the spec: the decoder without the cjson fallback (nil when it would hand over).
function M.fast_decode(s)
  if find(s, "\\", 1, true) or find(s, "\0", 1, true) then return nil end
  return (parse(s, 1, true))
end

--- One value of `s` at position `i` (whitespace first), for callers that walk a body
-- themselves (emulator.bulk_body): value and the position after it, or nil, false for a text
-- this decoder leaves to cjson. The caller must have checked `s` for backslashes and NUL bytes.
function M.value_at(s, i) return parse(s, i, false) end

return M
