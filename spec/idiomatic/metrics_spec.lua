-- klaviyo.metrics against the emulator: each, get, find by name.
local S = require "idiomatic.support"

describe("metrics", function()
  local t
  before_each(function() t = S.setup() end)

  it("lists the metrics events created, reads one and finds one by name", function()
    for _, name in ipairs({ "Placed Order", "Viewed Product", "Started Checkout" }) do
      assert(t.events:create{ metric = name, profile = { email = "m@example.com" } })
    end
    local names = {}
    for m, err in t.metrics:each() do
      assert(m, tostring(err))
      assert.equal("metric", m.type)
      names[#names + 1] = m.name
    end
    table.sort(names)
    assert.same({ "Placed Order", "Started Checkout", "Viewed Product" }, names)
    local found = assert(t.metrics:find("Viewed Product"))
    assert.equal("Viewed Product", found.name)
    local got = assert(t.metrics:get(found.id))
    assert.equal(found.id, got.id)
    assert.equal("Viewed Product", got.name)
  end)

  it("answers not_found for a name no event used, and 404 for an unknown id", function()
    local m, err = t.metrics:find("Never Sent")
    assert.is_nil(m)
    assert.equal("not_found", err.code)
    local g, err2 = t.metrics:get("NOPE00")
    assert.is_nil(g)
    assert.equal(404, err2.status)
    assert.has_error(function() t.metrics:find("") end)
  end)
end)
