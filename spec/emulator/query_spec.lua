-- The emulator reads query values as Klaviyo does: exactly the spec's filter fields and
-- operators (what it allows it evaluates, what it does not it answers 400), and a whole
-- links.next URL as page[cursor].
local emu = require("helpers.emulator")
local S = require("emulator.support")
local api = S.api

local function ids(body)
  local out = {}
  for i, r in ipairs(body.data) do out[i] = r.id end
  table.sort(out)
  return out
end

describe("emulator query values", function()
  local acct
  before_each(function()
    emu.reset()
    acct = S.new_account()
  end)

  local function get(path, query)
    local st, _, body, raw = api(acct, "GET", path, {query = query})
    return st, body, raw
  end

  local function event(email, metric) S.event(acct, metric, email) end

  it("answers 400 to what the spec does not list, naming the parameter", function()
    event("a@example.com", "Placed Order")
    for _, case in ipairs {
      {"/api/metrics", {filter = 'equals(name,"Placed Order")'}, "filter", '"name"'},
      {"/api/events", {filter = "equals(datetime,2024-01-01T00:00:00Z)"}, "filter", "equals"},
      {"/api/profiles", {filter = 'or(equals(email,"a@example.com"),equals(id,"x"))'}, "filter", "or"},
      {"/api/profiles", {filter = 'equals(email,"a@example.com"'}, "filter", "position"},
      {"/api/profiles", {sort = "name"}, "sort", "name"},
      {"/api/profiles", {["fields[profile]"] = "email,emial"}, "fields[profile]", "emial"},
      {"/api/events", {include = "metrik"}, "include", "metrik"},
    } do
      local st, body, raw = get(case[1], case[2])
      assert.are.equal(400, st, raw)
      local e = body.errors[1]
      assert.are.same({"invalid", case[3]}, {e.code, e.source.parameter})
      assert.matches(case[4], e.detail, 1, true)
    end
  end)

  it("evaluates get_events has(profile) and has(metric)", function()
    event("a@example.com", "Placed Order")
    local st, body, raw = get("/api/events", {filter = "has(profile),has(metric)"})
    assert.are.equal(200, st, raw)
    assert.are.equal(1, #body.data)
  end)

  it("filters profiles on their email suppressions", function()
    local a = S.create_profile(acct, "a@example.com")
    S.create_profile(acct, "b@example.com")
    local st, _, _, raw = api(acct, "POST", "/api/profile-suppression-bulk-create-jobs", {body = {data = {
      type = "profile-suppression-bulk-create-job", attributes = {profiles = {data = {
        {type = "profile", attributes = {email = "a@example.com"}}}}}}}})
    assert.are.equal(202, st, raw)
    local body
    st, body, raw = get("/api/profiles",
      {filter = 'equals(subscriptions.email.marketing.suppression.reason,"USER_SUPPRESSED")'})
    assert.are.equal(200, st, raw)
    assert.are.same({a}, ids(body))
    st, body, raw = get("/api/profiles",
      {filter = "greater-than(subscriptions.email.marketing.suppression.timestamp,2000-01-01T00:00:00Z)"})
    assert.are.equal(200, st, raw)
    assert.are.same({a}, ids(body))
    st, body = get("/api/profiles",
      {filter = "less-than(subscriptions.email.marketing.suppression.timestamp,2000-01-01T00:00:00Z)"})
    assert.are.equal(200, st)
    assert.are.same({}, ids(body))
    st, body, raw = get("/api/profiles", {sort = "-subscriptions.email.marketing.suppression.timestamp"})
    assert.are.equal(200, st, raw)
    assert.are.equal(2, #body.data)
  end)

  it("filters a flow's actions on created and updated (their flow's)", function()
    local list = S.create_list(acct, "Q")
    local st, _, body, raw = api(acct, "POST", "/api/flows", {body = {data = {type = "flow", attributes = {
      name = "Q", definition = {triggers = {{type = "list", id = list}}, entry_action_id = "d1",
        actions = {{temporary_id = "d1", type = "time-delay", data = {unit = "days", value = 1},
          links = {next = require("cjson").null}}}}}}}})
    assert.are.equal(201, st, raw)
    local flow = body.data.id
    st, body, raw = get("/api/flows/" .. flow .. "/flow-actions",
      {filter = "greater-than(created,2000-01-01T00:00:00Z)"})
    assert.are.equal(200, st, raw)
    assert.are.equal(1, #body.data)
    st, body = get("/api/flows/" .. flow .. "/flow-actions",
      {filter = "less-than(updated,2000-01-01T00:00:00Z)"})
    assert.are.equal(200, st)
    assert.are.equal(0, #body.data)
  end)

  it("takes a whole links.next URL as page[cursor]", function()
    for i = 1, 5 do S.create_profile(acct, ("p%d@example.com"):format(i)) end
    local st, body, raw = get("/api/profiles", {["page[size]"] = 2, ["fields[profile]"] = "email"})
    assert.are.equal(200, st, raw)
    local seen = ids(body)
    local next_url = body.links.next
    local pages = 1
    while next_url do
      -- the URL itself, percent-encoded as a query value, as Klaviyo's SDKs send it
      st, body, raw = get("/api/profiles", {["page[size]"] = 2, ["fields[profile]"] = "email",
        ["page[cursor]"] = next_url})
      assert.are.equal(200, st, raw)
      for _, id in ipairs(ids(body)) do seen[#seen + 1] = id end
      next_url = body.links.next
      pages = pages + 1
    end
    assert.are.equal(3, pages)
    assert.are.equal(5, #seen)
    st, body = get("/api/profiles", {["page[cursor]"] = "http://127.0.0.1/api/profiles?page%5Bsize%5D=2"})
    assert.are.equal(400, st)
    assert.are.equal("page[cursor]", body.errors[1].source.parameter)
  end)
end)
