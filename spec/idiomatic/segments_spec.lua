-- klaviyo.segments against the emulator (segments are defined through the admin API).
local S = require "idiomatic.support"

describe("segments", function()
  local t
  before_each(function() t = S.setup() end)

  local function define(name, ids)
    local seg = S.emu.segment{ account = t.acct.account_id, name = name, profile_ids = ids }
    return seg.id or (seg.data and seg.data.id)
  end

  it("iterates segments, reads one, and pages through its members", function()
    local ids = {}
    for i = 1, 250 do
      ids[i] = assert(t.profiles:create{ email = ("s%03d@example.com"):format(i) }).id
    end
    local big = define("Big spenders", ids)
    define("Nobody", {})
    local names = {}
    for s, err in t.segments:each() do assert(s, tostring(err)); names[#names + 1] = s.name end
    table.sort(names)
    assert.same({ "Big spenders", "Nobody" }, names)
    assert.equal(1, #S.collect(t.segments:each{ name = "Nobody" }))
    local seg = assert(t.segments:get(big))
    assert.equal("Big spenders", seg.name)
    local seen, n = {}, 0
    for p, err in t.segments:members(big) do
      assert(p, tostring(err))
      assert.is_nil(seen[p.id]); seen[p.id] = true
      n = n + 1
    end
    assert.equal(250, n)
    assert.equal(3, #S.requests(t.acct, "get_profiles_for_segment"))
    local gone, err = t.segments:get("NOSUCHSEGMENT")
    assert.is_nil(gone)
    assert.equal(404, err.status)
    assert.has_error(function() t.segments:members(nil) end)
  end)
end)
