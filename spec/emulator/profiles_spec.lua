-- Profiles with real state: create (409 duplicate_profile), get, get_profiles
-- (identifier filters, pagination, sparse fields, subscriptions), update,
-- create_or_update (201/200, null clears) and merge.
local emu = require "helpers.emulator"
local cjson = require "cjson.safe"

local function profile_body(attrs, id)
  return { data = { type = "profile", id = id, attributes = attrs } }
end

describe("profiles", function()
  local acct
  local function create(attrs)
    local st, _, body = emu.api(acct, "POST", "/api/profiles", { body = profile_body(attrs) })
    assert.are.equal(201, st)
    return body.data
  end
  local function get(id, query)
    return emu.api(acct, "GET", "/api/profiles/" .. id, { query = query })
  end
  local function list(query)
    local st, _, body = emu.api(acct, "GET", "/api/profiles", { query = query })
    assert.are.equal(200, st)
    return body
  end

  before_each(function()
    emu.reset()
    acct = emu.account()
  end)

  describe("create_profile", function()
    it("creates a profile and answers 201 with the resource", function()
      local st, _, body = emu.api(acct, "POST", "/api/profiles", { body = profile_body {
        email = "sarah@example.com", first_name = "Sarah", properties = { tier = "gold" },
        location = { city = "Boston" } } })
      assert.are.equal(201, st)
      local d = body.data
      assert.are.equal("profile", d.type)
      assert.are.equal(26, #d.id)
      assert.are.equal("sarah@example.com", d.attributes.email)
      assert.are.equal("Sarah", d.attributes.first_name)
      assert.are.equal(cjson.null, d.attributes.last_name)
      assert.are.equal("gold", d.attributes.properties.tier)
      assert.are.equal("Boston", d.attributes.location.city)
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%+00:00$", d.attributes.created)
      assert.matches("/api/profiles/" .. d.id .. "$", d.links.self)
    end)

    it("answers 409 duplicate_profile naming the existing profile", function()
      local first = create { email = "dup@example.com" }
      local st0, _, body0 = emu.api(acct, "POST", "/api/profiles",
        { body = profile_body { email = "dup@example.com" } })
      assert.are.equal(409, st0)
      assert.are.equal("duplicate_profile", body0.errors[1].code)
      assert.are.equal(first.id, body0.errors[1].meta.duplicate_profile_id)
      local ext = create { external_id = "ext-1" }
      local st, _, body = emu.api(acct, "POST", "/api/profiles",
        { body = profile_body { email = "other@example.com", external_id = "ext-1" } })
      assert.are.equal(409, st)
      assert.are.equal(ext.id, body.errors[1].meta.duplicate_profile_id)
    end)

    it("validates identifiers and attributes", function()
      local cases = {
        { {}, "/data/attributes" },
        { { email = "not-an-email" }, "/data/attributes/email" },
        { { phone_number = "555-1234" }, "/data/attributes/phone_number" },
        { { email = "a@b.com", first_name = 5 }, "/data/attributes/first_name" },
        { { email = "a@b.com", favourite = "x" }, "/data/attributes/favourite" },
        { { email = "a@b.com", location = { planet = "Mars" } }, "/data/attributes/location/planet" },
      }
      for _, c in ipairs(cases) do
        local st, _, body = emu.api(acct, "POST", "/api/profiles", { body = profile_body(c[1]) })
        assert.are.equal(400, st)
        assert.are.equal("invalid", body.errors[1].code)
        assert.are.equal(c[2], body.errors[1].source.pointer)
      end
      assert.are.equal(0, #list().data)
    end)
  end)

  describe("get_profile", function()
    it("reads a profile, 404 for an unknown id", function()
      local p = create { phone_number = "+15005550006" }
      local st, _, body = get(p.id)
      assert.are.equal(200, st)
      assert.are.equal("+15005550006", body.data.attributes.phone_number)
      assert.is_string(body.data.relationships.lists.links.related)
      local st2, _, body2 = get("01NOPE0000000000000000000")
      assert.are.equal(404, st2)
      assert.are.equal("not_found", body2.errors[1].code)
    end)

    it("honours fields[profile] and additional-fields[profile]=subscriptions", function()
      local p = create { email = "f@example.com", first_name = "F", location = { city = "Oslo" } }
      local _, _, body = get(p.id, { ["fields[profile]"] = "email,location.city" })
      local a = body.data.attributes
      assert.are.equal("f@example.com", a.email)
      assert.are.equal("Oslo", a.location.city)
      assert.is_nil(a.first_name)
      assert.is_nil(a.location.zip)
      assert.is_nil(a.subscriptions)
      _, _, body = get(p.id, { ["additional-fields[profile]"] = "subscriptions" })
      assert.are.equal("NEVER_SUBSCRIBED", body.data.attributes.subscriptions.email.marketing.consent)
      local st, _, err = get(p.id, { ["fields[profile]"] = "email,shoe_size" })
      assert.are.equal(400, st)
      assert.are.equal("fields[profile]", err.errors[1].source.parameter)
      st = get(p.id, { ["additional-fields[profile]"] = "horoscope" })
      assert.are.equal(400, st)
    end)
  end)

  describe("get_profiles", function()
    local a, b, c
    before_each(function()
      a = create { email = "a@example.com", external_id = "ext-a" }
      b = create { email = "b@example.com", phone_number = "+15005550001" }
      c = create { email = "c@example.com" }
    end)

    local function ids(body)
      local out = {}
      for i, r in ipairs(body.data) do out[i] = r.id end
      return out
    end

    it("filters with equals on email, phone_number, external_id and id", function()
      assert.are.same({ a.id }, ids(list { filter = 'equals(email,"a@example.com")' }))
      assert.are.same({ b.id }, ids(list { filter = 'equals(phone_number,"+15005550001")' }))
      assert.are.same({ a.id }, ids(list { filter = 'equals(external_id,"ext-a")' }))
      assert.are.same({ c.id }, ids(list { filter = 'equals(id,"' .. c.id .. '")' }))
      assert.are.same({}, ids(list { filter = 'equals(email,"nobody@example.com")' }))
    end)

    it("filters with any(id,[...])", function()
      local got = ids(list { filter = 'any(id,["' .. a.id .. '","' .. c.id .. '"])' })
      assert.are.same({ a.id, c.id }, got)
    end)

    it("refuses bad filters with 400 naming the filter parameter", function()
      for _, f in ipairs { 'equals(first_name,"A")', 'equals(email,', 'less-than(email,"x")', "nonsense" } do
        local st, _, body = emu.api(acct, "GET", "/api/profiles", { query = { filter = f } })
        assert.are.equal(400, st)
        assert.are.equal("filter", body.errors[1].source.parameter)
      end
    end)

    it("paginates with page[size] and links.next until the end", function()
      for i = 1, 4 do create { email = ("p%d@example.com"):format(i) } end
      local seen, pages = {}, 0
      local body = list { ["page[size]"] = 3 }
      while true do
        pages = pages + 1
        assert.is_true(#body.data <= 3)
        for _, r in ipairs(body.data) do
          assert.is_nil(seen[r.id])
          seen[r.id] = true
        end
        assert.is_string(body.links.self)
        if not body.links.next then break end
        local st, _, nxt = emu.api(acct, "GET", (body.links.next:gsub("^https?://[^/]+", "")))
        assert.are.equal(200, st)
        body = nxt
      end
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      assert.are.equal(7, n)
      assert.are.equal(3, pages)
      assert.is_string(body.links.prev)
    end)

    it("defaults to 20 per page and enforces the page[size] bounds", function()
      for i = 1, 20 do create { email = ("bulk%d@example.com"):format(i) } end
      assert.are.equal(20, #list().data)
      for _, bad in ipairs { "0", "101", "abc", "2.5" } do
        local st, _, body = emu.api(acct, "GET", "/api/profiles", { query = { ["page[size]"] = bad } })
        assert.are.equal(400, st)
        assert.are.equal("page[size]", body.errors[1].source.parameter)
      end
      assert.are.equal(23, #list({ ["page[size]"] = 100 }).data)
      local st = emu.api(acct, "GET", "/api/profiles", { query = { ["page[cursor]"] = "bogus" } })
      assert.are.equal(400, st)
    end)

    it("sorts and applies sparse fields to every item", function()
      local body = list { sort = "-email", ["fields[profile]"] = "email" }
      assert.are.equal("c@example.com", body.data[1].attributes.email)
      assert.is_nil(body.data[1].attributes.created)
      assert.are.equal(400, (emu.api(acct, "GET", "/api/profiles", { query = { sort = "shoe_size" } })))
    end)
  end)

  describe("update_profile", function()
    it("changes attributes, clears with null, keeps the rest", function()
      local p = create { email = "u@example.com", first_name = "U", last_name = "Ser",
                         properties = { a = 1, b = 2 } }
      local st, _, body = emu.api(acct, "PATCH", "/api/profiles/" .. p.id, { body = profile_body({
        first_name = "New", last_name = cjson.null, properties = { b = cjson.null, c = 3 } }, p.id) })
      assert.are.equal(200, st)
      local a = body.data.attributes
      assert.are.equal("New", a.first_name)
      assert.are.equal(cjson.null, a.last_name)
      assert.are.equal("u@example.com", a.email)
      assert.are.same({ a = 1, c = 3 }, a.properties)
    end)

    it("refuses an identifier another profile owns, a mismatched id and an unknown profile", function()
      local p = create { email = "one@example.com" }
      local q = create { email = "two@example.com" }
      local st, _, body = emu.api(acct, "PATCH", "/api/profiles/" .. p.id,
        { body = profile_body({ email = "two@example.com" }, p.id) })
      assert.are.equal(409, st)
      assert.are.equal(q.id, body.errors[1].meta.duplicate_profile_id)
      st = emu.api(acct, "PATCH", "/api/profiles/" .. p.id,
        { body = profile_body({ first_name = "x" }, q.id) })
      assert.are.equal(409, st)
      st = emu.api(acct, "PATCH", "/api/profiles/01NOPE0000000000000000000",
        { body = profile_body({ first_name = "x" }, "01NOPE0000000000000000000") })
      assert.are.equal(404, st)
    end)

    it("moves an identifier: the old value no longer finds the profile", function()
      local p = create { email = "old@example.com" }
      emu.api(acct, "PATCH", "/api/profiles/" .. p.id,
        { body = profile_body({ email = "new@example.com" }, p.id) })
      assert.are.equal(0, #list({ filter = 'equals(email,"old@example.com")' }).data)
      assert.are.equal(p.id, list({ filter = 'equals(email,"new@example.com")' }).data[1].id)
      create { email = "old@example.com" } -- free again
    end)
  end)

  describe("create_or_update_profile", function()
    local function upsert(attrs, id)
      return emu.api(acct, "POST", "/api/profile-import", { body = profile_body(attrs, id) })
    end

    it("answers 201 when it creates and 200 when it updates", function()
      local st, _, body = upsert { email = "up@example.com", first_name = "A", last_name = "B" }
      assert.are.equal(201, st)
      local id = body.data.id
      local st2, _, body2 = upsert { email = "up@example.com", first_name = cjson.null }
      assert.are.equal(200, st2)
      assert.are.equal(id, body2.data.id)
      assert.are.equal(cjson.null, body2.data.attributes.first_name) -- null cleared it
      assert.are.equal("B", body2.data.attributes.last_name)        -- absent left it
      local st3, _, body3 = upsert({ external_id = "x-1" }, id)
      assert.are.equal(200, st3)
      assert.are.equal("x-1", body3.data.attributes.external_id)
      assert.are.equal(1, #list().data)
    end)

    it("refuses an identifier owned by another profile", function()
      upsert { email = "x@example.com" }
      local _, _, other = upsert { external_id = "other" }
      local st, _, body = upsert { email = "x@example.com", external_id = "other" }
      assert.are.equal(409, st)
      assert.is_string(body.errors[1].meta.duplicate_profile_id)
      assert.is_string(other.data.id)
    end)
  end)

  describe("merge_profiles", function()
    it("merges the source into the destination and removes the source", function()
      local dest = create { email = "dest@example.com", first_name = "Dest" }
      local src = create { phone_number = "+15005550009", first_name = "Src", properties = { k = "v" } }
      emu.api(acct, "POST", "/api/events", { body = { data = { type = "event", attributes = {
        properties = {}, metric = { data = { type = "metric", attributes = { name = "M" } } },
        profile = { data = { type = "profile", id = src.id, attributes = {} } } } } } })
      local st, _, body = emu.api(acct, "POST", "/api/profile-merge", { body = { data = {
        type = "profile-merge", id = dest.id,
        relationships = { profiles = { data = { { type = "profile", id = src.id } } } } } } })
      assert.are.equal(201, st)
      assert.are.equal(dest.id, body.data.id)
      assert.are.equal(404, (get(src.id)))
      local _, _, merged = get(dest.id)
      local a = merged.data.attributes
      assert.are.equal("Dest", a.first_name)
      assert.are.equal("+15005550009", a.phone_number)
      assert.are.equal("v", a.properties.k)
      local _, _, evs = emu.api(acct, "GET", "/api/events")
      assert.are.equal(dest.id, evs.data[1].relationships.profile.data.id)
      -- the source's phone number now finds the destination
      assert.are.equal(dest.id, list({ filter = 'equals(phone_number,"+15005550009")' }).data[1].id)
    end)

    it("refuses unknown profiles and merging a profile into itself", function()
      local p = create { email = "self@example.com" }
      local function merge(dest, src)
        return emu.api(acct, "POST", "/api/profile-merge", { body = { data = {
          type = "profile-merge", id = dest,
          relationships = { profiles = { data = { { type = "profile", id = src } } } } } } })
      end
      assert.are.equal(400, (merge(p.id, p.id)))
      assert.are.equal(400, (merge(p.id, "01NOPE0000000000000000000")))
      assert.are.equal(400, (merge("01NOPE0000000000000000000", p.id)))
    end)
  end)
  describe("bulk_import_profiles", function()
    local function import(items, list_ids)
      local rel
      if list_ids then
        local data = {}
        for i, id in ipairs(list_ids) do data[i] = { type = "list", id = id } end
        rel = { lists = { data = data } }
      end
      return emu.api(acct, "POST", "/api/profile-bulk-import-jobs", { body = { data = {
        type = "profile-bulk-import-job", attributes = { profiles = { data = items } },
        relationships = rel } } })
    end
    local function item(attrs, id) return { type = "profile", id = id, attributes = attrs } end
    local function job(id)
      local st, _, body = emu.api(acct, "GET", "/api/profile-bulk-import-jobs/" .. id)
      assert.are.equal(200, st)
      return body.data
    end

    it("imports profiles as a job that completes, adding them to the list", function()
      local _, _, l = emu.api(acct, "POST", "/api/lists",
        { body = { data = { type = "list", attributes = { name = "Imported" } } } })
      local list_id = l.data.id
      local existing = create { email = "known@example.com", first_name = "Old" }
      local st, _, body = import({ item { email = "i1@example.com" }, item { email = "i2@example.com" },
                                   item { email = "known@example.com", first_name = "New" } }, { list_id })
      assert.are.equal(202, st)
      assert.are.equal("profile-bulk-import-job", body.data.type)
      assert.are.equal(3, body.data.attributes.total_count)
      local j = job(body.data.id)
      assert.are.equal("complete", j.attributes.status)
      assert.are.equal(3, j.attributes.completed_count)
      assert.are.equal(0, j.attributes.failed_count)
      assert.are.equal(list_id, j.relationships.lists.data[1].id)
      assert.are.equal("New", (select(3, get(existing.id))).data.attributes.first_name)
      assert.are.equal(3, #list().data)
      local _, _, members = emu.api(acct, "GET", "/api/lists/" .. list_id .. "/profiles")
      assert.are.equal(3, #members.data)
      local _, _, imported = emu.api(acct, "GET", "/api/profile-bulk-import-jobs/" .. j.id .. "/profiles")
      assert.are.equal(3, #imported.data)
      local _, _, jobs = emu.api(acct, "GET", "/api/profile-bulk-import-jobs",
        { query = { filter = 'equals(status,"complete")' } })
      assert.are.equal(1, #jobs.data)
    end)

    it("keeps an import error for a profile it cannot apply", function()
      create { email = "taken@example.com" }
      local other = create { external_id = "ext-9" }
      local _, _, body = import { item { email = "taken@example.com", external_id = "ext-9" },
                                  item { email = "fine@example.com" } }
      local j = job(body.data.id)
      assert.are.equal(1, j.attributes.completed_count)
      assert.are.equal(1, j.attributes.failed_count)
      local st, _, errs = emu.api(acct, "GET", "/api/profile-bulk-import-jobs/" .. j.id .. "/import-errors")
      assert.are.equal(200, st)
      assert.are.equal(1, #errs.data)
      local e = errs.data[1].attributes
      assert.are.equal("duplicate_profile", e.code)
      assert.are.equal("/data/attributes/profiles/data/0", e.source.pointer)
      assert.are.equal("taken@example.com", e.original_payload.email)
      assert.is_string(other.id)
    end)

    it("rejects the whole request when items are invalid, naming each", function()
      local st, _, body = import { item { email = "ok@example.com" }, item { email = "bad" },
                                   item { first_name = "no identifier" } }
      assert.are.equal(400, st)
      assert.are.equal(2, #body.errors)
      assert.are.equal("/data/attributes/profiles/data/1/attributes/email", body.errors[1].source.pointer)
      assert.are.equal("/data/attributes/profiles/data/2/attributes", body.errors[2].source.pointer)
      local st2, _, body2 = import({ item { email = "ok@example.com" } }, { "NOLIST" })
      assert.are.equal(400, st2)
      assert.are.equal("/data/relationships/lists/data/0", body2.errors[1].source.pointer)
      assert.are.equal(0, #list().data)
      assert.are.equal(404, (emu.api(acct, "GET", "/api/profile-bulk-import-jobs/NOPE")))
    end)

    it("takes at most 10,000 profiles", function()
      local items = {}
      for i = 1, 10001 do items[i] = item { email = ("m%d@example.com"):format(i) } end
      local st, _, body = import(items)
      assert.are.equal(400, st)
      assert.matches("10,000", body.errors[1].detail, 1, true)
    end)
  end)
end)
