-- Pure unit: klaviyo.filter renders Klaviyo filter expressions.
local F = require "klaviyo.filter"
local cjson = require "cjson"


-- pcall(fn, ...) must fail with a message matching `pattern`.
local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, err)
end
describe("klaviyo.filter", function()
  it("quotes strings and escapes quotes and backslashes", function()
    assert.equal('equals(email,"a@b.com")', tostring(F.equals("email", "a@b.com")))
    assert.equal([[equals(first_name,"say \"hi\" \\o/")]],
      tostring(F.equals("first_name", [[say "hi" \o/]])))
  end)

  it("keeps UTF-8 and specials as they are inside the quotes", function()
    assert.equal('contains(name,"Zoë & Co #1, (x)")', tostring(F.contains("name", "Zoë & Co #1, (x)")))
  end)

  it("writes numbers, booleans and null bare", function()
    assert.equal("equals(rating,5)", tostring(F.equals("rating", 5)))
    assert.equal("less-than(price,19.5)", tostring(F.less_than("price", 19.5)))
    assert.equal("greater-than(lat,-74.006)", tostring(F.greater_than("lat", -74.006)))
    assert.equal("equals(verified,true)", tostring(F.equals("verified", true)))
    assert.equal("equals(edited,false)", tostring(F.equals("edited", false)))
    assert.equal("equals(archived,null)", tostring(F.equals("archived", F.null)))
    assert.equal("equals(archived,null)", tostring(F.equals("archived", cjson.null)))
  end)

  it("writes every comparison operator with Klaviyo's dashed name", function()
    assert.equal('starts-with(name,"Sp")', tostring(F.starts_with("name", "Sp")))
    assert.equal('ends-with(name,"ng")', tostring(F.ends_with("name", "ng")))
    assert.equal("less-or-equal(rating,3)", tostring(F.less_or_equal("rating", 3)))
    assert.equal("greater-or-equal(rating,4)", tostring(F.greater_or_equal("rating", 4)))
    assert.equal("has(profile)", tostring(F.has("profile")))
  end)

  it("writes any() with a list", function()
    assert.equal('any(id,["a","b\\"c"])', tostring(F.any("id", { "a", 'b"c' })))
    assert.equal("any(rating,[1,2,3])", tostring(F.any("rating", { 1, 2, 3 })))
  end)

  it("writes datetimes unquoted from epochs, ISO strings and date tables", function()
    assert.equal("greater-or-equal(datetime,2024-01-01T00:00:00+00:00)",
      tostring(F.greater_or_equal("datetime", F.datetime(1704067200))))
    assert.equal("less-than(datetime,2024-01-01T00:00:00Z)",
      tostring(F.less_than("datetime", F.datetime("2024-01-01T00:00:00Z"))))
    assert.equal("less-than(updated,2022-11-08T00:00:00.250+01:00)",
      tostring(F.less_than("updated", F.datetime("2022-11-08T00:00:00.250+01:00"))))
    assert.equal("greater-than(created,2023-05-06T07:08:09+00:00)",
      tostring(F.greater_than("created", { year = 2023, month = 5, day = 6, hour = 7, min = 8, sec = 9 })))
    assert.equal("greater-than(created,2024-01-01T00:00:00+00:00)",
      tostring(F.greater_than("created", os.date("!*t", 1704067200))))
    assert.equal("equals(day,2024-02-29)", tostring(F.equals("day", F.datetime("2024-02-29"))))
  end)

  it("combines with and/or, also under the reserved names", function()
    local e = F.and_(F.equals("email", "a@b.com"), F.or_(F.has("profile"), 'equals(x,"y")'))
    assert.equal('and(equals(email,"a@b.com"),or(has(profile),equals(x,"y")))', tostring(e))
    assert.equal(tostring(F.and_(F.has("a"), F.has("b"))), tostring(F["and"](F.has("a"), F.has("b"))))
    assert.equal(tostring(F.or_(F.has("a"), F.has("b"))), tostring(F["or"](F.has("a"), F.has("b"))))
    assert.equal("has(a)", tostring(F.and_(F.has("a"))))
  end)

  it("gives the text of expressions and strings", function()
    assert.equal("has(a)", F.text(F.has("a")))
    assert.equal("has(b)", F.text("has(b)"))
    local t, err = F.text(42)
    assert.is_nil(t)
    assert.matches("expected a string", err)
  end)

  it("refuses bad input with an error naming the operator", function()
    raises("klaviyo.filter.equals: missing value", F.equals, "email")
    raises("invalid field name", F.equals, "em ail", "x")
    raises("invalid field name", F.equals, "a,b)", "x")
    raises("cannot be written", F.less_than, "price", 0 / 0)
    raises("cannot be written", F.less_than, "price", math.huge)
    raises("klaviyo.filter.any: the list of values is empty", F.any, "id", {})
    raises("must be a list", F.any, "id", "a")
    raises("cannot be nested", F.any, "id", { { "nested" } })
    raises("unsupported value type function", F.equals, "id", print)
    raises("needs at least one", F.and_)
    raises("argument 2 is not a filter expression", F.or_, F.has("a"), 3)
    raises("not an ISO%-8601", F.datetime, "yesterday")
    raises("not an ISO%-8601", F.datetime, "2024-13-01T00:00:00Z")
    raises("not an ISO%-8601", F.datetime, "2024-01-01T00:00:00 junk")
    raises("numeric year, month and day", F.datetime, {})
    raises("expected epoch seconds", F.datetime, true)
  end)
end)
