-- tostring(err) never raises, whatever an error's fields hold: numbers with no integer form
-- (NaN, infinities, past 2^53), values of any type, values whose own __tostring fails.
local errors = require "klaviyo.errors"

describe("tostring(err)", function()
  local bad_tostring = setmetatable({}, { __tostring = function() error("boom") end })
  local no_string = setmetatable({}, { __tostring = function() return {} end })
  local values = { 0 / 0, math.huge, -math.huge, 1e300, -1e300, 2 ^ 63, -2 ^ 63, 2 ^ 53 + 2, 1e999,
                   -5, 0.5, true, false, {}, { detail = "x" }, print, coroutine.create(function() end),
                   bad_tostring, no_string, "", ("x"):rep(10000), "a\0b\r\nc" }
  local fields = { "operation", "kind", "status", "code", "title", "detail", "pointer", "parameter",
                   "retry_after", "refresh_error", "request_id" }

  for _, field in ipairs(fields) do
    it("gives one line with any value in " .. field, function()
      for i, v in ipairs(values) do
        local e = errors.wrap({ kind = "http", status = 429, code = "throttled", detail = "slow",
                                title = "Throttled" })
        e[field] = v
        local ok, line = pcall(tostring, e)
        assert.is_true(ok, field .. " = value " .. i .. ": " .. tostring(line))
        assert.is_string(line)
        assert.is_nil(line:find("[\r\n%z]"), "a control byte in " .. line)
      end
    end)
  end

  it("gives every field at once a line too", function()
    local e = errors.wrap({})
    for i, f in ipairs(fields) do e[f] = values[i] end
    assert.is_string(tostring(e))
  end)

  local function line(ra) return tostring(errors.wrap({ status = 429, retry_after = ra })) end

  it("names a capped wait, a fraction and a missing one plainly", function()
    assert.matches("[retry after 86400s]", line(86400), 1, true)
    assert.matches("[retry after 0.25s]", line(0.25), 1, true)
    assert.matches("[retry after infs]", line(math.huge), 1, true)
    assert.is_nil(tostring(errors.wrap({ status = 429 })):find("retry after", 1, true))
  end)

  it("names the whole document when the pointer is empty, and a member by its pointer", function()
    local e = errors.new("refused", "create_event", "expected an object, got a string", { pointer = "" })
    assert.matches("(at the document's root)", tostring(e), 1, true)
    e.pointer = "/data/type"
    assert.matches("(at /data/type)", tostring(e), 1, true)
  end)

  it("wraps a non-table error, NaN included", function()
    local e = errors.wrap(0 / 0, "op")
    assert.equal("transport", e.kind)
    assert.equal("nan", e.detail)
    assert.is_string(tostring(e))
  end)
end)
