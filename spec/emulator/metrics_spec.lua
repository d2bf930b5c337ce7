-- Metrics: created by events, listed with a name filter, read one by one.
local emu = require "helpers.emulator"

describe("metrics", function()
  local acct
  local function track(name)
    local st = emu.api(acct, "POST", "/api/events", { body = { data = { type = "event", attributes = {
      properties = {}, unique_id = name,
      metric = { data = { type = "metric", attributes = { name = name } } },
      profile = { data = { type = "profile", attributes = { email = "m@example.com" } } } } } } })
    assert.are.equal(202, st)
  end
  local function metrics(query)
    local st, _, body = emu.api(acct, "GET", "/api/metrics", { query = query })
    assert.are.equal(200, st)
    return body.data
  end

  before_each(function()
    emu.reset()
    acct = emu.account()
  end)

  it("starts empty and lists one metric per event name", function()
    assert.are.same({}, metrics())
    track("Placed Order")
    track("Placed Order")
    track("Viewed Product")
    local list = metrics()
    assert.are.equal(2, #list)
    assert.are.equal("metric", list[1].type)
    assert.are.equal("Placed Order", list[1].attributes.name)
    assert.are.equal("API", list[1].attributes.integration.name)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT", list[1].attributes.created)
  end)

  it("filters by integration; a name is found by listing", function()
    track("Placed Order")
    track("Viewed Product")
    -- Klaviyo's get_metrics filters on integration.name and integration.category only
    local list = {}
    for _, m in ipairs(metrics()) do
      if m.attributes.name == "Viewed Product" then list[#list + 1] = m end
    end
    assert.are.equal(1, #list)
    assert.are.equal("Viewed Product", list[1].attributes.name)
    assert.are.equal(2, #metrics { filter = 'equals(integration.name,"API")' })
    local st, _, body = emu.api(acct, "GET", "/api/metrics", { query = { filter = 'equals(created,"x")' } })
    assert.are.equal(400, st)
    assert.are.equal("filter", body.errors[1].source.parameter)
  end)

  it("reads one metric with sparse fields, 404 when unknown", function()
    track("Opened Email")
    local id = metrics()[1].id
    local st, _, body = emu.api(acct, "GET", "/api/metrics/" .. id,
      { query = { ["fields[metric]"] = "name" } })
    assert.are.equal(200, st)
    assert.are.equal(id, body.data.id)
    assert.are.equal("Opened Email", body.data.attributes.name)
    assert.is_nil(body.data.attributes.created)
    assert.matches("/api/metrics/" .. id .. "$", body.links.self)
    local st2, _, body2 = emu.api(acct, "GET", "/api/metrics/01NOPE0000000000000000000")
    assert.are.equal(404, st2)
    assert.are.equal("not_found", body2.errors[1].code)
  end)

  it("keeps accounts apart", function()
    track("Mine")
    local other = emu.account()
    local _, _, body = emu.api(other, "GET", "/api/metrics")
    assert.are.same({}, body.data)
  end)
end)
