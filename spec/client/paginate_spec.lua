-- Pagination across several pages following links.next, pages() and paginate(), and a failure
-- in the middle reported once as `false, err`.
local S = require "client.support"


-- pcall(fn, ...) must fail with a message matching `pattern`.
local function raises(pattern, fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "expected an error matching " .. pattern)
  assert.matches(pattern, err)
end
describe("pagination", function()
  local client, ids
  setup(function()
    -- retries off: the failure tests need the injected fault to reach the caller
    client = S.client(nil, { retry = { attempts = 1 } })
    ids = {}
    for i = 1, 23 do
      local doc = assert(client:call("create_profile", {
        body = S.profile_body { email = ("page%02d@example.com"):format(i) } }))
      ids[doc.data.id] = true
    end
  end)
  teardown(function() S.emu.faults(nil); client:close() end)

  it("paginate yields every resource of every page (three pages)", function()
    local mark = S.mark()
    local seen, n = {}, 0
    for profile, err in client:paginate("get_profiles", { ["page[size]"] = 10 }) do
      assert.is_truthy(profile, tostring(err))
      assert.is_nil(seen[profile.id], "no resource twice")
      seen[profile.id] = true
      n = n + 1
    end
    assert.equal(23, n)
    for id in pairs(ids) do assert.is_true(seen[id]) end
    local recs = S.since(mark)
    assert.equal(3, #recs)
    assert.is_nil(S.query_value(recs[1].query, "page[cursor]"))
    for i = 2, 3 do
      assert.equal("get_profiles", recs[i].operation)
      assert.is_string(S.query_value(recs[i].query, "page[cursor]"))
      assert.equal("10", S.query_value(recs[i].query, "page[size]"))
    end
  end)

  it("pages yields each page document", function()
    local sizes = {}
    local params = { ["page[size]"] = 10, ["fields[profile]"] = { "email" } }
    for doc, err in client:pages("get_profiles", params) do
      assert.is_truthy(doc, tostring(err))
      sizes[#sizes + 1] = #doc.data
      assert.is_nil(doc.data[1].attributes.first_name)
    end
    assert.same({ 10, 10, 3 }, sizes)
  end)

  it("keeps the revision and sparse fieldsets on later pages", function()
    local mark = S.mark()
    for _ in client:paginate("get_profiles", { ["page[size]"] = 10, ["fields[profile]"] = { "email" },
                                               revision = "2026-07-15" }) do end
    local recs = S.since(mark)
    assert.equal(3, #recs)
    for _, r in ipairs(recs) do
      assert.equal("2026-07-15", S.header(r, "revision"))
      assert.equal("email", S.query_value(r.query, "fields[profile]"))
    end
  end)

  it("reports a failing page once as false, err and stops", function()
    -- the first page comes through; the fault hits the second
    local it = client:pages("get_profiles", { ["page[size]"] = 10 })
    assert.is_table(it())
    S.emu.faults { { operation = "get_profiles", status = 503, count = 1 } }
    local doc, err = it()
    assert.is_false(doc)
    assert.equal(503, err.status)
    assert.is_nil(it())
    assert.is_nil(it())
  end)

  it("paginate passes the failure into the loop body", function()
    S.emu.faults { { operation = "get_profiles", status = 500, count = 1 } }
    local items, errs = 0, {}
    for item, err in client:paginate("get_profiles", { ["page[size]"] = 10 }) do
      if item then items = items + 1 else errs[#errs + 1] = err end
    end
    assert.equal(0, items)
    assert.equal(1, #errs)
    assert.equal(500, errs[1].status)
  end)

  it("refuses non-GET operations and bad params before sending", function()
    local mark = S.mark()
    raises("only GET operations are paginated", client.paginate, client, "create_event", { body = {} })
    raises("above the maximum 100", client.paginate, client, "get_profiles", { ["page[size]"] = 101 })
    assert.equal(mark, S.mark())
  end)
end)
