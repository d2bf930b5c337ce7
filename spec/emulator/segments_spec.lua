-- Segments against the emulator: defined through the admin API, read through Klaviyo's
-- segment operations with their members paginated.
local emu = require("helpers.emulator")
local S = require("emulator.support")
local api = S.api
local new_account = S.new_account
local create_profile = S.create_profile
local ids_of = S.ids_of

describe("emulator segments", function()
  local acct
  before_each(function() acct = new_account() end)

  it("reads a segment defined by the admin API", function()
    local p = create_profile(acct, "a@example.com")
    local seg = emu.segment({account = acct.account_id, name = "Engaged", profile_ids = {p}})
    assert.truthy(seg.id)
    local st, _, body = api(acct, "GET", "/api/segments/" .. seg.id)
    assert.are.equal(200, st)
    assert.are.equal("segment", body.data.type)
    assert.are.equal("Engaged", body.data.attributes.name)
    assert.is_true(body.data.attributes.is_active)
    assert.is_false(body.data.attributes.is_processing)
    assert.are.equal(emu.url .. "/api/segments/" .. seg.id, body.data.links.self)
    _, _, body = api(acct, "GET", "/api/segments/" .. seg.id,
        {query = {["additional-fields[segment]"] = "profile_count"}})
    assert.are.equal(1, body.data.attributes.profile_count)
    _, _, body = api(acct, "GET", "/api/segments/" .. seg.id, {query = {["fields[segment]"] = "name"}})
    assert.are.same({name = "Engaged", is_active = true, is_processing = false, is_starred = false},
      body.data.attributes) -- the three flags are required by the spec's schema
    assert.are.equal(404, (api(acct, "GET", "/api/segments/NOPE")))
  end)

  it("keeps segments per account", function()
    local seg = emu.segment({account = acct.account_id, name = "Mine", profile_ids = {}})
    local other = new_account()
    assert.are.equal(404, (api(other, "GET", "/api/segments/" .. seg.id)))
  end)

  it("lists segments with filters and pagination", function()
    local ids = {}
    for i = 1, 12 do
      ids[i] = emu.segment({account = acct.account_id, name = string.format("S%02d", i), profile_ids = {}}).id
    end
    local _, _, body = api(acct, "GET", "/api/segments")
    assert.are.equal(10, #body.data)
    assert.truthy(body.links.next)
    local st, _, rest = emu.request {url = body.links.next, headers = {
      authorization = "Klaviyo-API-Key " .. acct.private_key, revision = emu.REVISION}}
    assert.are.equal(200, st)
    assert.are.equal(2, #rest.data)
    _, _, body = api(acct, "GET", "/api/segments", {query = {filter = 'equals(name,"S07")'}})
    assert.are.same({ids[7]}, ids_of(body))
    _, _, body = api(acct, "GET", "/api/segments", {query = {sort = "-name", ["page[size]"] = 1}})
    assert.are.equal("S12", body.data[1].attributes.name)
    assert.are.equal(400, (api(acct, "GET", "/api/segments", {query = {["page[size]"] = 11}})))
    assert.are.equal(400, (api(acct, "GET", "/api/segments", {query = {filter = 'equals(colour,"x")'}})))
  end)

  it("pages members and their ids, with profile attributes", function()
    local ids = {}
    for i = 1, 45 do ids[i] = create_profile(acct, "m" .. i .. "@example.com") end
    local seg = emu.segment({account = acct.account_id, name = "Big", profile_ids = ids})
    local got, url = {}
    local st, _, body = api(acct, "GET", "/api/segments/" .. seg.id .. "/profiles")
    while true do
      assert.are.equal(200, st)
      for _, r in ipairs(body.data) do
        got[#got + 1] = r.id
        assert.truthy(r.attributes.joined_group_at)
      end
      url = body.links.next
      if not url then break end
      st, _, body = emu.request {url = url, headers = {
        authorization = "Klaviyo-API-Key " .. acct.private_key, revision = emu.REVISION}}
    end
    assert.are.same(ids, got)
    _, _, body = api(acct, "GET", "/api/segments/" .. seg.id .. "/relationships/profiles",
        {query = {["page[size]"] = 100}})
    assert.are.same(ids, ids_of(body))
    _, _, body = api(acct, "GET", "/api/segments/" .. seg.id .. "/profiles",
      {query = {filter = string.format('equals(profile_id,"%s")', ids[3])}})
    assert.are.same({ids[3]}, ids_of(body))
    assert.are.equal("m3@example.com", body.data[1].attributes.email)
    assert.are.equal(400, (api(acct, "GET", "/api/segments/" .. seg.id .. "/profiles",
        {query = {["page[size]"] = 101}})))
    assert.are.equal(404, (api(acct, "GET", "/api/segments/NOPE/profiles")))
  end)

  it("lists the segments a profile belongs to", function()
    local a = create_profile(acct, "in@example.com")
    local seg = emu.segment({account = acct.account_id, name = "Has", profile_ids = {a}})
    emu.segment({account = acct.account_id, name = "Empty", profile_ids = {}})
    local st, _, body = api(acct, "GET", "/api/profiles/" .. a .. "/segments")
    assert.are.equal(200, st)
    assert.are.same({seg.id}, ids_of(body))
    assert.are.equal("Has", body.data[1].attributes.name)
    _, _, body = api(acct, "GET", "/api/profiles/" .. a .. "/relationships/segments")
    assert.are.same({{type = "segment", id = seg.id}}, body.data)
    assert.are.equal(404, (api(acct, "GET", "/api/profiles/NOPE/segments")))
  end)

  it("replaces members when a segment is defined again", function()
    local a = create_profile(acct, "a@example.com")
    local b = create_profile(acct, "b@example.com")
    local seg = emu.segment({account = acct.account_id, name = "Moving", profile_ids = {a}})
    emu.segment({account = acct.account_id, id = seg.id, name = "Moved", profile_ids = {b}})
    local _, _, body = api(acct, "GET", "/api/segments/" .. seg.id .. "/relationships/profiles")
    assert.are.same({b}, ids_of(body))
    _, _, body = api(acct, "GET", "/api/segments/" .. seg.id)
    assert.are.equal("Moved", body.data.attributes.name)
  end)

  it("renames, stars and deletes a segment; its definition cannot change through the API", function()
    local seg = emu.segment({account = acct.account_id, name = "Old", profile_ids = {}})
    local function patch(attrs, id)
      return api(acct, "PATCH", "/api/segments/" .. seg.id,
        {body = {data = {type = "segment", id = id or seg.id, attributes = attrs}}})
    end
    local st, _, body = patch({name = "New", is_starred = true})
    assert.are.equal(200, st)
    assert.are.equal("New", body.data.attributes.name)
    assert.is_true(body.data.attributes.is_starred)
    local _, _, list = api(acct, "GET", "/api/segments", {query = {filter = "equals(is_starred,true)"}})
    assert.are.same({seg.id}, ids_of(list))
    assert.are.equal(400, (patch({name = ""})))
    assert.are.equal(400, (patch({name = "x"}, "OTHER")))
    st, _, body = patch({definition = {condition_groups = {}}})
    assert.are.equal(501, st)
    assert.are.equal("not_implemented", body.errors[1].code)
    assert.are.equal(204, (api(acct, "DELETE", "/api/segments/" .. seg.id)))
    assert.are.equal(404, (api(acct, "GET", "/api/segments/" .. seg.id)))
    assert.are.equal(404, (api(acct, "DELETE", "/api/segments/" .. seg.id)))
  end)

  it("refuses unknown profiles in a definition", function()
    local st, body = emu.admin("POST", "segments", {account = acct.account_id, name = "Ghosts",
      profile_ids = {"01NOTAPROFILE0000000000000"}})
    assert.are.equal(400, st)
    assert.truthy(body.error:find("unknown profile id", 1, true))
    local _, _, list = api(acct, "GET", "/api/segments")
    assert.are.same({}, list.data)
  end)

  it("lists the flows a segment triggers", function()
    local seg = emu.segment({account = acct.account_id, name = "VIP", profile_ids = {}})
    local null = require("cjson.safe").null
    local st, _, flow, raw = api(acct, "POST", "/api/flows", {body = {data = {type = "flow", attributes = {
      name = "VIP", definition = {triggers = {{type = "segment", id = seg.id}}, entry_action_id = "d",
      actions = {{temporary_id = "d", type = "time-delay", data = {unit = "days", value = 1},
          links = {next = null}}}}}}}})
    assert.are.equal(201, st, raw)
    local _, _, body = api(acct, "GET", "/api/segments/" .. seg.id .. "/flow-triggers")
    assert.are.same({flow.data.id}, ids_of(body))
    _, _, body = api(acct, "GET", "/api/segments/" .. seg.id .. "/relationships/flow-triggers")
    assert.are.same({{type = "flow", id = flow.data.id}}, body.data)
    _, _, body = api(acct, "GET", "/api/segments/" .. seg.id, {query = {include = "flow-triggers"}})
    assert.are.equal(flow.data.id, body.included[1].id)
  end)
end)
