-- emulator.json: the request-body decoder gives exactly cjson's answer (value, pairs order,
-- number type, or error message), decoding the common bodies itself and handing the rest over.
local cjson = require "cjson.safe"
local json = require "emulator.json"

local mtype = math.type or function(x) return type(x) == "number" and "float" or nil end

-- Same value and same shape; for tables also the same pairs() order (both are built empty and
-- filled in document order, so the hash layouts must match).
local function same(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" then
    -- NaN is not equal to itself: two NaNs are the same answer
    if a ~= b and not (a ~= a and b ~= b) then
      return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b)
    end
    if type(a) == "number" and mtype(a) ~= mtype(b) then return false, path .. ": number type" end
    return true
  end
  local ka, kb = {}, {}
  for k in pairs(a) do ka[#ka + 1] = k end
  for k in pairs(b) do kb[#kb + 1] = k end
  if #ka ~= #kb then return false, path .. ": key count" end
  for i = 1, #ka do
    if ka[i] ~= kb[i] then return false, path .. ": pairs order at " .. i end
    local ok, why = same(a[ka[i]], b[ka[i]], path .. "." .. tostring(ka[i]))
    if not ok then return false, why end
  end
  return true
end

local function bulk_body(n)
  local parts = {}
  for i = 1, n do
    parts[i] = string.format('{"type":"event-bulk-create","attributes":{"profile":{"data":' ..
      '{"attributes":{"email":"b%d@example.com"},"type":"profile"}},"events":{"data":[{"type":' ..
      '"event","attributes":{"properties":{"price":12.5,"seq":%d,"sku":"SKU-%d","qty":2,' ..
      '"items":[{"a":[]},{}],"ok":true,"no":false,"gone":null,"neg":-0.25},' ..
      '"time":"2026-11-26T15:09:38.062+00:00","metric":{"data":{"attributes":{"name":' ..
      '"Bench"},"type":"metric"}},"unique_id":"u-%d"}}]}}}', i % 50, i, i % 7, i)
  end
  return '{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":' ..
    '{"data":[' .. table.concat(parts, ",") .. ']}}}}'
end

describe("emulator.json", function()
  it("decodes a bulk body itself, exactly as cjson does", function()
    local body = bulk_body(300)
    local mine = json.fast_decode(body)
    assert.is_table(mine)
    assert(same(mine, cjson.decode(body)))
    assert(same(json.decode(body), cjson.decode(body)))
  end)

  it("decodes strict JSON of every kind as cjson does", function()
    local cases = {
      '{}', '[]', '{"a":{}}', '[[],[{}]]', ' { "a" : [ 1 , 2 ] , "b" : "x" } ', '\t\r\n[1]\n',
      '"text"', '0', '-0', '7', '-12', '12.5', '0.1', '-0.001', '123456789012345',
      '1.23456789012345', '9007199254740.5', 'true', 'false', 'null', '[null,true,false]',
      '{"dup":1,"dup":2}', '{"":""}', '["a b","\t raw tab","é ünïcode 字"]',
      '{"k1":1,"k2":2,"k3":3,"k4":4,"k5":5,"k6":6,"k7":7,"k8":8,"k9":9,"k10":10}',
    }
    for _, s in ipairs(cases) do
      local mine = json.fast_decode(s)
      assert(mine ~= nil, "handed over: " .. s)
      local ok, why = same(mine, cjson.decode(s))
      assert(ok, s .. " -> " .. tostring(why))
    end
  end)

  it("hands over what it cannot decode exactly, and then answers as cjson does", function()
    local cases = {
      -- escapes, NUL bytes, exponents, long numbers, cjson's extras, bad JSON
      '{"a":"q\\"x"}', '["\\u00e9"]', '"a\0b"', '1e3', '[2E-1]', '1234567890123456',
      '0.1234567890123456', '0x10', '[inf]', '[nan]', '+1', '01', '-', '1.', '.5', '[1,]',
      '{"a":1,}', '{"a" 1}', '{a:1}', '[1 2]', '{"a":1', '[', '', '   ', 'nul', 'tru',
      '[true false]', '{"a":1}x', '{"a":1} {}', '"open', '{"open', '{"a":"b"',
      string.rep("[", 300) .. string.rep("]", 300), string.rep("[", 1001) .. string.rep("]", 1001),
    }
    for _, s in ipairs(cases) do
      assert.is_nil(json.fast_decode(s), "decoded itself: " .. s)
      local mine, merr = json.decode(s)
      local theirs, terr = cjson.decode(s)
      assert.equal(terr, merr, s)
      assert(same(mine, theirs), s)
    end
  end)

  it("agrees with cjson on random documents", function()
    math.randomseed(7)
    local atoms = { '0', '-0', '3', '-42', '1.5', '-0.75', '100.001', '"s"', '""', '"a b"',
                    'true', 'false', 'null', '1e2', '"x\\ny"', '012', '[]', '{}' }
    local function gen(d)
      local r = math.random(1, d > 4 and 1 or 3)
      if r == 1 then return atoms[math.random(#atoms)] end
      local n, parts = math.random(0, 4), {}
      if r == 2 then
        for i = 1, n do parts[i] = gen(d + 1) end
        return "[" .. table.concat(parts, math.random(4) == 1 and " , " or ",") .. "]"
      end
      for i = 1, n do parts[i] = '"k' .. math.random(1, 6) .. '":' .. gen(d + 1) end
      return "{" .. table.concat(parts, ",") .. "}"
    end
    for _ = 1, 2000 do
      local s = gen(0)
      local mine, merr = json.decode(s)
      local theirs, terr = cjson.decode(s)
      assert.equal(terr, merr, s)
      local ok, why = same(mine, theirs)
      assert(ok, s .. " -> " .. tostring(why))
      local fast = json.fast_decode(s)
      if fast ~= nil then assert(same(fast, theirs), s) end
    end
  end)
end)
