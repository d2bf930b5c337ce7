-- klaviyo.lists against the emulator: CRUD, each, members across pages (2,500 profiles),
-- add/remove in chunks of 1000, consent untouched, local refusals.
local S = require "idiomatic.support"

-- n profiles created through one bulk job of events (the emulator upserts each profile),
-- returned as ids in email order.
local function make_profiles(t, n, prefix)
  local list = {}
  for i = 1, n do
    list[i] = { metric = "Seeded", backfill = true,
      profile = { email = ("%s%05d@example.com"):format(prefix or "m", i) } }
  end
  assert(t.events:create_many(list))
  local ids = {}
  for _ = 1, 100 do
    ids = {}
    for p, err in t.profiles:each{ page_size = 100 } do
      assert(p, tostring(err))
      ids[#ids + 1] = p.id
    end
    if #ids >= n then break end
    S.emu.sleep(0.1)
  end
  assert.equal(n, #ids)
  return ids
end

describe("lists", function()
  local t
  before_each(function() t = S.setup() end)

  it("creates, reads, renames, iterates and deletes a list", function()
    local l = assert(t.lists:create{ name = "VIP", opt_in_process = "single_opt_in" })
    assert.is_string(l.id)
    assert.equal("VIP", l.name)
    assert.equal("list", l.type)
    assert.is_table(l._raw)
    local got = assert(t.lists:get(l.id))
    assert.equal("VIP", got.name)
    local renamed = assert(t.lists:update(l.id, { name = "VIP 2026" }))
    assert.equal("VIP 2026", renamed.name)
    assert(t.lists:create{ name = "Newsletter" })
    local names = {}
    for x, err in t.lists:each() do
      assert(x, tostring(err))
      names[#names + 1] = x.name
    end
    table.sort(names)
    assert.same({ "Newsletter", "VIP 2026" }, names)
    local only = S.collect(t.lists:each{ name = "Newsletter" })
    assert.equal(1, #only)
    assert.is_true(t.lists:delete(l.id))
    local gone, err = t.lists:get(l.id)
    assert.is_nil(gone)
    assert.equal(404, err.status)
  end)

  it("pages through more lists than one page holds", function()
    for i = 1, 23 do assert(t.lists:create{ name = ("L%02d"):format(i) }) end
    assert.equal(23, #S.collect(t.lists:each()))
    assert.is_true(#S.requests(t.acct, "get_lists") >= 3) -- page[size] is at most 10
  end)

  it("refuses a list without a name, nothing sent; raises on bad arguments", function()
    local l, err = S.nothing_sent(t.acct, function() return t.lists:create{ name = "" } end)
    assert.is_nil(l)
    assert.equal("refused", err.kind)
    assert.has_error(function() t.lists:create{ nme = "x" } end)
    assert.has_error(function() t.lists:create{ name = "x", opt_in_process = "maybe" } end)
    assert.has_error(function() t.lists:get(42) end)
    assert.has_error(function() t.lists:add("L1", "P1") end)
    assert.equal(0, #S.requests(t.acct))
  end)

  it("adds 2,500 profiles in chunks of 1000 and pages through them all", function()
    local ids = make_profiles(t, 2500)
    local l = assert(t.lists:create{ name = "CRM" })
    assert.equal(2500, t.lists:add(l.id, ids))
    local adds = S.requests(t.acct, "add_profiles_to_list")
    assert.equal(3, #adds)
    local sizes = {}
    for i, r in ipairs(adds) do
      assert.equal(204, r.status)
      sizes[i] = #S.body(r).data
    end
    assert.same({ 1000, 1000, 500 }, sizes)
    local seen, n = {}, 0
    for p, err in t.lists:members(l.id) do
      assert(p, tostring(err))
      assert.is_nil(seen[p.id])
      seen[p.id] = true
      n = n + 1
      assert.matches("@example%.com$", p.email)
    end
    assert.equal(2500, n)
    assert.equal(25, #S.requests(t.acct, "get_profiles_for_list"))
  end)

  it("removes profiles and leaves consent alone when adding", function()
    local ids = make_profiles(t, 5, "r")
    local l = assert(t.lists:create{ name = "Temp" })
    assert.equal(5, t.lists:add(l.id, ids))
    local members = S.collect(t.lists:members(l.id, { subscriptions = true }))
    assert.equal(5, #members)
    for _, p in ipairs(members) do
      local email = p.subscriptions and p.subscriptions.email
      assert.are_not.equal("SUBSCRIBED", email and email.marketing and email.marketing.consent)
    end
    assert.equal(2, t.lists:remove(l.id, { ids[1], ids[2] }))
    assert.equal(3, #S.collect(t.lists:members(l.id)))
    assert.equal(3, assert(t.lists:get(l.id, { profile_count = true })).profile_count)
    assert.is_nil(assert(t.lists:get(l.id)).profile_count)
  end)

  it("refuses ids with a hole (# would stop at it, the rest left out), nothing sent", function()
    local l = assert(t.lists:create{ name = "Holes" })
    local p1 = assert(t.profiles:create{ email = "h1@example.com" })
    local p3 = assert(t.profiles:create{ email = "h3@example.com" })
    local ids = {}
    ids[1], ids[3] = p1.id, p3.id
    local n, err = S.nothing_sent(t.acct, function() return t.lists:add(l.id, ids) end)
    assert.is_nil(n)
    assert.equal("refused", err.kind)
    assert.equal("/1", err.pointer)
    assert.matches("hole", err.detail)
    local _, err2 = S.nothing_sent(t.acct, function()
      return t.lists:remove(l.id, { p1.id, extra = p3.id })
    end)
    assert.equal("refused", err2.kind)
  end)

  it("returns nil, err and how many were added when a chunk fails", function()
    local l = assert(t.lists:create{ name = "Broken" })
    local n, err, done = t.lists:add(l.id, { "01NOSUCHPROFILE00000000000" })
    assert.is_nil(n)
    assert.is_number(err.status)
    assert.equal(0, done)
  end)

  it("lists the flows a list triggers", function()
    local l = assert(t.lists:create{ name = "Welcome" })
    local f = assert(t.flows:create{ name = "Welcome series", trigger = { list = l.id } })
    local flows = assert(t.lists:flows(l.id))
    assert.equal(1, #flows)
    assert.equal(f.id, flows[1].id)
  end)
end)
