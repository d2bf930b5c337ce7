-- The C JSON encoder (src/lua_json.c): klaviyo.core's encode, or the same code built alone
-- as klaviyo.json_shim (make spec-encode) where the core is not built.
-- KLAVIYO_ENCODE_MODULE=<module> forces one of the two.
local cjson = require "cjson"

local function load_encode()
  local forced = os.getenv("KLAVIYO_ENCODE_MODULE")
  if forced and forced ~= "" then return require(forced).encode end
  local ok, core = pcall(require, "klaviyo.core")
  if ok and type(core) == "table" and core.encode then return core.encode end
  return require("klaviyo.json_shim").encode
end

local encode = load_encode()
local decode = cjson.new().decode

local ARRAY = { __jsontype = "array" }
local OBJECT = { __jsontype = "object" }
local NULL = setmetatable({}, { __jsontype = "null" })
local function array(t) return setmetatable(t, ARRAY) end
local function object(t) return setmetatable(t, OBJECT) end

-- encode must fail with nil, msg; returns msg
local function fails(value, opts)
  local out, msg = encode(value, opts)
  assert.is_nil(out)
  assert.is_string(msg)
  return msg
end

describe("encode", function()
  describe("scalars", function()
    it("encodes nil, booleans and the null markers", function()
      assert.equal("null", encode(nil))
      assert.equal("true", encode(true))
      assert.equal("false", encode(false))
      assert.equal("null", encode(cjson.null))
      assert.equal("null", encode(NULL))
      assert.equal("[null,null,1]", encode({ cjson.null, NULL, 1 }))
      assert.equal('{"a":null}', encode({ a = cjson.null }))
      assert.equal('{"a":null}', encode({ a = NULL }))
    end)

    it("prints integers exactly", function()
      assert.equal("0", encode(0))
      assert.equal("-1", encode(-1))
      assert.equal("42", encode(42))
      assert.equal("3", encode(3.0))
      assert.equal("9007199254740992", encode(2 ^ 53))
      assert.equal("-9007199254740992", encode(-2 ^ 53))
      assert.equal("1234567890123", encode(1234567890123))
      if math.maxinteger then
        assert.equal("9223372036854775807", encode(math.maxinteger))
        assert.equal("-9223372036854775808", encode(math.mininteger))
      end
    end)

    it("prints floats as the shortest text that reads back to the same number", function()
      assert.equal("0.1", encode(0.1))
      assert.equal("-2.5", encode(-2.5))
      assert.equal("1e+300", encode(1e300))
      assert.equal("1e-07", encode(1e-7))
      assert.equal("0.30000000000000004", encode(0.1 + 0.2))
      assert.equal("9.99", encode(9.99))
      for _, x in ipairs({ 1 / 3, math.pi, -1e-300, 2 ^ 70, 123456.789, 5e-324, 1.7976931348623157e308 }) do
        assert.equal(x, tonumber(encode(x)))
      end
      -- a pseudo-random sweep
      local seed = 12345
      for _ = 1, 2000 do
        seed = (seed * 1103515245 + 12345) % 2147483648
        local x = (seed / 2147483648 - 0.5) * 10 ^ ((seed % 40) - 20)
        local s = encode(x)
        assert.equal(x, tonumber(s))
        assert.is_nil(s:find("[^%d%.eE+-]"))
      end
    end)

    it("refuses NaN and infinities", function()
      assert.equal("(root): NaN cannot be encoded as JSON", fails(0 / 0))
      assert.equal("(root): inf cannot be encoded as JSON", fails(math.huge))
      assert.equal("(root): -inf cannot be encoded as JSON", fails(-math.huge))
    end)

    it("refuses functions, coroutines, userdata", function()
      assert.matches("function cannot be encoded as JSON", fails(print))
      assert.matches("thread cannot be encoded as JSON", fails(coroutine.create(function() end)))
      assert.matches("userdata cannot be encoded as JSON", fails(io.stdout))
      assert.equal("a: function cannot be encoded as JSON", fails({ a = print }))
    end)
  end)

  describe("strings", function()
    it("escapes quotes, backslashes and control characters (RFC 8259)", function()
      assert.equal([["a\"b\\c"]], encode('a"b\\c'))
      assert.equal([["\b\f\n\r\t"]], encode("\b\f\n\r\t"))
      assert.equal([["\u0000\u0001\u001f"]], encode("\0\1\31"))
      assert.equal('"/ \127 ~"', encode("/ \127 ~"))
      assert.equal('""', encode(""))
    end)

    it("passes valid UTF-8 through", function()
      local s = "héllo € \240\159\152\128 \239\191\191 \244\143\191\191"
      assert.equal('"' .. s .. '"', encode(s))
      assert.equal(s, decode(encode(s)))
    end)

    it("refuses invalid UTF-8, naming where it is", function()
      local bad = {
        "\255", "\128", "\192\128", "\193\191", "\224\128\128", "\237\160\128",
        "\240\128\128\128", "\244\144\128\128", "\245\128\128\128", "\226\130", "a\226\130",
        "\195", "\195\40",
      }
      for _, s in ipairs(bad) do
        assert.equal("(root): string is not valid UTF-8", fails(s))
      end
      assert.equal("a.b: string is not valid UTF-8", fails({ a = { b = "x\255" } }))
      assert.matches('^%["k\\255"%]: key is not valid UTF%-8$', fails({ ["k\255"] = 1 }))
    end)

    -- Strings of 4 to 16 bytes are checked with two overlapping loads and longer ones 8 bytes
    -- at a time: a byte that needs care must be caught at every offset of every length,
    -- including the neighbours of the characters checked (0x1f/0x20, 0x21/0x22/0x23,
    -- 0x5b/0x5c/0x5d, 0x7f/0x80).
    it("escapes or checks a special byte at any offset of a string of any length", function()
      local function reference(s) -- byte by byte, as RFC 8259 says
        local out = {}
        for i = 1, #s do
          local b = s:byte(i)
          local esc = ({ [8] = "\\b", [9] = "\\t", [10] = "\\n", [12] = "\\f", [13] = "\\r",
                         [34] = '\\"', [92] = "\\\\" })[b]
          out[i] = esc or (b < 32 and string.format("\\u%04x", b)) or string.char(b)
        end
        return '"' .. table.concat(out) .. '"'
      end
      for _, b in ipairs({ 0, 1, 10, 31, 32, 33, 34, 35, 91, 92, 93, 126, 127 }) do
        for len = 1, 24 do
          for at = 1, len do
            local s = string.rep("x", at - 1) .. string.char(b) .. string.rep("y", len - at)
            assert.equal(reference(s), encode(s))
          end
        end
      end
      for len = 2, 20 do  -- a lone continuation byte or a 2-byte sequence at any offset
        for at = 1, len - 1 do
          local pre, post = string.rep("a", at - 1), string.rep("b", len - 1 - at)
          assert.equal("(root): string is not valid UTF-8", fails(pre .. "\128" .. post .. "c"))
          assert.equal('"' .. pre .. "\195\169" .. post .. '"', encode(pre .. "\195\169" .. post))
        end
      end
    end)

    it("escapes keys like values", function()
      assert.equal('{"a\\"b\\n":1}', encode({ ['a"b\n'] = 1 }))
    end)

    it("handles long strings with many escapes (buffer growth)", function()
      local s = string.rep('ab"\n\1é', 50000)
      local out = encode({ s = s })
      assert.equal(s, decode(out).s)
    end)
  end)

  describe("tables", function()
    it("encodes tables with keys 1..n as arrays", function()
      assert.equal("[1,2,3]", encode({ 1, 2, 3 }))
      assert.equal('[[],{"a":[true]}]', encode({ array({}), { a = { true } } }))
      assert.equal("[1,2,3]", encode({ [3] = 3, [1] = 1, [2] = 2 }))
    end)

    it("encodes tables with string keys as objects", function()
      assert.equal('{"a":1}', encode({ a = 1 }))
      local t = { a = 1, b = { c = "d" }, ["1"] = 2 }
      assert.same(t, decode(encode(t)))
    end)

    it("encodes an empty unmarked table as {}", function()
      assert.equal("{}", encode({}))
    end)

    it("honours __jsontype = array / object, also when empty", function()
      assert.equal("[]", encode(array({})))
      assert.equal("{}", encode(object({})))
      assert.equal("[1,2]", encode(array({ 1, 2 })))
      assert.equal('{"a":[]}', encode(object({ a = array({}) })))
      assert.equal('{"b":{}}', encode({ b = object({}) }))
      assert.same({ data = { relationships = { lists = { data = {} } } } },
        decode(encode({ data = { relationships = { lists = { data = array({}) } } } })))
    end)

    it("refuses a bad __jsontype", function()
      assert.matches("__jsontype must be", fails(setmetatable({}, { __jsontype = "list" })))
      assert.matches("^x: metatable field __jsontype must be",
        fails({ x = setmetatable({}, { __jsontype = 1 }) }))
    end)

    it("ignores other metatables and metamethods (raw access)", function()
      local t = setmetatable({ a = 1 }, { __index = function() error("must not run") end })
      assert.equal('{"a":1}', encode(t))
    end)

    it("refuses sparse arrays", function()
      assert.equal("(root): sparse array (3 values, largest index 4) cannot be encoded as JSON",
        fails({ 1, 2, nil, 4 }))
      assert.equal("x: sparse array (1 values, largest index 2) cannot be encoded as JSON",
        fails({ x = { [2] = "b" } }))
    end)

    it("refuses tables mixing array and object keys", function()
      assert.equal("(root): table mixes array (number) and object (string) keys", fails({ 1, a = 2 }))
      assert.equal("(root): table mixes array (number) and object (string) keys",
        fails({ a = 1, b = 2, c = 3, 1 }))
      assert.equal("(root): table marked as array has a string key", fails(array({ a = 1 })))
      assert.equal("(root): table marked as object has an array (number) key", fails(object({ 1 })))
    end)

    it("refuses keys that are neither strings nor 1..n", function()
      assert.matches("number key 1.5 cannot be encoded", fails({ [1.5] = 1 }))
      assert.matches("number key 0 cannot be encoded", fails({ [0] = "a" }))
      assert.matches("number key %-1 cannot be encoded", fails({ [-1] = "a", [1] = "b" }))
      assert.matches("boolean key cannot be encoded", fails({ [true] = 1 }))
      assert.matches("table key cannot be encoded", fails({ [{}] = 1 }))
    end)

    it("refuses cycles but not shared tables", function()
      local t = {}
      t.self = t
      assert.equal("self: table contains itself (cycle) and cannot be encoded as JSON", fails(t))
      local a = { 1 }
      local b = { a }
      a[2] = b
      assert.equal("[2][1]: table contains itself (cycle) and cannot be encoded as JSON", fails(a))
      local shared = { x = 1 }
      assert.equal('[{"x":1},{"x":1}]', encode({ shared, shared }))
    end)

    it("refuses nesting deeper than max_depth (default 100)", function()
      local function nest(n)
        local t = {}
        for _ = 2, n do t = { t } end
        return t
      end
      assert.is_string(encode(nest(100)))
      assert.matches("^%[1%]%[1%].*: nested deeper than max_depth %(100%) levels$", fails(nest(101)))
      assert.equal('[{"a":1}]', encode({ { a = 1 } }, { max_depth = 2 }))
      assert.equal("[1]: nested deeper than max_depth (1) levels", fails({ { a = 1 } }, { max_depth = 1 }))
      assert.is_string(encode(nest(1000), { max_depth = 1000 }))
      assert.matches("max_depth %(1000%)", fails(nest(1001), { max_depth = 1000 }))
      -- scalars and null markers at the limit do not count as levels
      assert.equal("[null]", encode({ NULL }, { max_depth = 1 }))
    end)

    it("raises on bad options (programmer errors)", function()
      assert.has_error(function() encode({}, { max_depth = 0 }) end)
      assert.has_error(function() encode({}, { max_depth = 1001 }) end)
      assert.has_error(function() encode({}, { max_depth = 2.5 }) end)
      assert.has_error(function() encode({}, { max_depth = 0 / 0 }) end)
      assert.has_error(function() encode({}, { max_depth = 1e300 }) end)
      assert.has_error(function() encode({}, { max_depth = "5" }) end)
      assert.has_error(function() encode({}, { maxdepth = 5 }) end)
      assert.has_error(function() encode({}, 5) end)
      assert.has_error(function() encode() end)
    end)
  end)

  describe("error paths", function()
    it("names the path of the offending value", function()
      local body = { data = { type = "event", attributes = { properties = {
        items = { { price = 1 }, { price = 2 }, { price = 0 / 0 } } } } } }
      assert.equal("data.attributes.properties.items[3].price: NaN cannot be encoded as JSON", fails(body))
    end)

    it("quotes keys that are not identifiers", function()
      assert.equal('["first name"][2]: inf cannot be encoded as JSON',
        fails({ ["first name"] = { 1, math.huge } }))
      assert.equal('a["$value"]: NaN cannot be encoded as JSON', fails({ a = { ["$value"] = 0 / 0 } }))
    end)
  end)

  describe("round trips", function()
    it("decodes back to the same data (pseudo-random documents)", function()
      local seed = 7
      local function rnd(n)
        seed = (seed * 1103515245 + 12345) % 2147483648
        return seed % n
      end
      local function gen(depth)
        local k = rnd(depth > 4 and 4 or 7)
        if k == 0 then return rnd(2) == 0
        elseif k == 1 then return rnd(100000) - 50000
        elseif k == 2 then return (rnd(1000000) - 500000) / 7
        elseif k == 3 then
          local parts = {}
          for i = 1, rnd(8) do parts[i] = ({ "a", "é", '"', "\\", "\n", "\1", "€", "z" })[rnd(8) + 1] end
          return table.concat(parts)
        elseif k == 4 or k == 5 then
          local t = {}
          for i = 1, rnd(6) do t[i] = gen(depth + 1) end
          return t
        else
          local t = {}
          for _ = 1, rnd(6) do t["k" .. rnd(20)] = gen(depth + 1) end
          return t
        end
      end
      for _ = 1, 300 do
        local v = gen(0)
        local out = assert(encode({ v = v }))
        local back = decode(out).v
        if type(v) == "table" and next(v) == nil then
          assert.equal('{"v":{}}', out)
        else
          assert.same(v, back)
        end
      end
    end)

    it("encodes a large array and a large object (buffer growth)", function()
      local arr, obj = {}, {}
      for i = 1, 100000 do arr[i] = i * 0.5 end
      for i = 1, 20000 do obj["key" .. i] = { i, "v" .. i } end
      assert.same(arr, decode(encode(arr)))
      assert.same(obj, decode(encode(obj)))
    end)
  end)
end)
