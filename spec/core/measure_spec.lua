-- core.measure: the JSON encoder measuring a value, and saying what it refuses as data (a
-- code, the JSON pointer of the refused value, a number, a type name) for validate.lua to word.
local core = require "klaviyo.core"

describe("core.measure", function()
  it("gives the size of the value's JSON, as core.encode writes it", function()
    for _, v in ipairs { { a = 1 }, { 1, 2.5, "x" }, "caf\195\169 \"q\"", 12, true, {},
                         { nested = { deeper = { 1, { x = "y" } } } } } do
      assert.equal(#assert(core.encode(v)), core.measure(v))
    end
  end)

  it("refuses what JSON cannot hold, with a pointer to it", function()
    local cyc = { a = { b = {} } }
    cyc.a.b.c = cyc
    local cases = {
      { { a = { 1, 0 / 0 } }, "nan", "/a/1" },
      { { x = -math.huge }, "inf", "/x" },
      { { ["a/b~"] = print }, "type", "/a~1b~0", 0, "function" },
      { { s = "ok\255" }, "utf8", "/s" },
      { { ["k\255"] = 1 }, "key_utf8", "/k\255" },
      { cyc, "cycle", "/a/b/c" },
      { { t = { [1] = 1, [3] = 3 } }, "sparse", "/t", 3 },
      { { t = { 1, x = 2 } }, "mixed", "/t" },
      { { t = { [true] = 1 } }, "key_type", "/t", 0, "boolean" },
      { { t = { [1.5] = 1 } }, "key_number", "/t" },
    }
    for _, c in ipairs(cases) do
      local size, code, ptr, num, what = core.measure(c[1])
      assert.is_nil(size)
      assert.same({ c[2], c[3] }, { code, ptr })
      if c[4] then assert.equal(c[4], num) end
      if c[5] then assert.equal(c[5], what) end
    end
  end)

  it("refuses what is over the limits it is given, and nothing within them", function()
    assert.equal(11, core.measure({ s = "xxx" }, 3))
    assert.same({ "string", "/s", 4 }, { select(2, core.measure({ s = "xxxx" }, 3)) })
    assert.equal(7, core.measure({ 1, 2, 3 }, nil, 3))
    assert.same({ "items", "", 4 }, { select(2, core.measure({ 1, 2, 3, 4 }, nil, 3)) })
    local function nest(n) local t = { leaf = 1 } for _ = 2, n do t = { t = t } end return t end
    assert.is_number(core.measure(nest(3), nil, nil, 3))
    assert.same({ "depth", "/t/t/t", 3 }, { select(2, core.measure(nest(4), nil, nil, 3)) })
  end)
end)
