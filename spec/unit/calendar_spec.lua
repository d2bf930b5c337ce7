-- klaviyo.calendar: the date arithmetic klaviyo.validate, the body check, the filter reader and
-- the webhook receiver share.
local calendar = require "klaviyo.calendar"

describe("klaviyo.calendar", function()
  it("counts days from 1970-01-01 and back, across eras", function()
    assert.equal(0, calendar.days_from_civil(1970, 1, 1))
    assert.equal(-1, calendar.days_from_civil(1969, 12, 31))
    assert.equal(11016, calendar.days_from_civil(2000, 2, 29))
    for _, z in ipairs { -719468, -1, 0, 1, 11016, 20000, 2932896 } do
      local y, m, d = calendar.civil_from_days(z)
      assert.equal(z, calendar.days_from_civil(y, m, d))
    end
  end)

  it("knows which days exist: February 29 only in leap years", function()
    assert.is_true(calendar.is_date(2024, 2, 29))
    assert.is_true(calendar.is_date(2000, 2, 29))
    assert.is_false(calendar.is_date(1900, 2, 29))
    assert.is_false(calendar.is_date(2025, 2, 29))
    assert.is_false(calendar.is_date(2026, 4, 31))
    assert.is_false(calendar.is_date(2026, 13, 1))
    assert.is_false(calendar.is_date(2026, 1, 0))
    assert.is_true(calendar.is_date(2026, 12, 31))
  end)
end)
