-- One client keeps one connection open for many requests (the emulator records which
-- connection each request came on); a second client has its own.
local S = require "client.support"

describe("connection reuse", function()
  it("serves many requests of one client on one connection", function()
    local client = S.client()
    local mark = S.mark()
    for i = 1, 20 do
      if i % 2 == 0 then
        assert.is_true((client:call("create_event", { body = S.event_body(("c%d@example.com"):format(i)) })))
      else
        assert.is_table((client:call("get_profiles", { ["page[size]"] = 5 })))
      end
    end
    local recs = S.since(mark)
    assert.equal(20, #recs)
    local conns = {}
    for _, r in ipairs(recs) do conns[r.connection] = true end
    local n = 0
    for c in pairs(conns) do n = n + 1; assert.is_not_nil(c) end
    assert.equal(1, n)
    client:close()
  end)

  it("gives each client its own connection", function()
    local a = S.client()
    local b = S.client()
    a:call("get_profiles", {})
    local ca = S.last().connection
    b:call("get_profiles", {})
    local cb = S.last().connection
    assert.are_not.equal(ca, cb)
    a:call("get_profiles", {})
    assert.equal(ca, S.last().connection)
    a:close(); b:close()
  end)
end)
