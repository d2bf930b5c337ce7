-- Revision pinning: the default, per-client and per-call overrides, local rejection of bad
-- formats (nothing sent), and the emulator's own rejection of a revision before the first one.
local S = require "client.support"
local klaviyo = S.klaviyo

describe("revision", function()
  it("defaults to 2026-07-15", function()
    local client = S.client()
    assert.is_table((client:call("get_profiles", {})))
    assert.equal("2026-07-15", S.header(S.last(), "revision"))
    client:close()
  end)

  it("is settable per client", function()
    local client = S.client(nil, { revision = "2025-10-15" })
    assert.is_table((client:call("get_profiles", {})))
    assert.equal("2025-10-15", S.header(S.last(), "revision"))
    client:close()
  end)

  it("is settable per call, with a pre-release suffix", function()
    local client = S.client()
    client:call("get_profiles", { revision = "2026-07-15.pre" })
    assert.equal("2026-07-15.pre", S.header(S.last(), "revision"))
    assert.is_table((client:call("get_profiles", {})))
    assert.equal("2026-07-15", S.header(S.last(), "revision"))
    client:close()
  end)

  it("rejects malformed revisions locally, sending nothing", function()
    local acct = S.emu.account()
    local mark = S.mark()
    for _, bad in ipairs({ "2026-7-15", "2026-02-30", "20260715", "latest", "2026-07-15.", "2026-07-15 " }) do
      local c, err = klaviyo.new { api_key = acct.private_key, base_url = S.emu.url, revision = bad }
      assert.is_nil(c, bad)
      assert.equal("refused", err.kind)
    end
    local client = S.client(nil, nil, acct)
    for _, bad in ipairs({ "2026-13-01", "yesterday", "2026-07-15\r\nX: y" }) do
      local ok, err = client:call("get_profiles", { revision = bad })
      assert.is_nil(ok, bad)
      assert.equal("refused", err.kind)
    end
    assert.equal(mark, S.mark())
    client:close()
  end)

  it("passes the emulator's 400 for a revision before the first one", function()
    local client = S.client()
    local ok, err = client:call("get_profiles", { revision = "2019-01-01" })
    assert.is_nil(ok)
    assert.equal(400, err.status)
    assert.equal("2019-01-01", S.header(S.last(), "revision"))
    client:close()
  end)
end)
