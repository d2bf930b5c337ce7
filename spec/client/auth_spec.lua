-- Each auth mode reaches the emulator; each refusal happens locally (the emulator's recorded
-- requests show nothing arrived) and no error ever shows a secret.
local S = require "client.support"
local klaviyo = S.klaviyo

local function no_secret(err, acct)
  local line = tostring(err)
  for _, k in ipairs({ "private_key", "access_token", "refresh_token", "client_secret" }) do
    if acct[k] then
      assert.is_nil(line:find(acct[k], 1, true), "error line shows the " .. k)
      for _, v in pairs(err) do
        if type(v) == "string" then assert.is_nil(v:find(acct[k], 1, true), "error field shows the " .. k) end
      end
    end
  end
end

describe("auth", function()
  it("sends a private key as Klaviyo-API-Key", function()
    local client = S.client("private")
    assert.is_true((client:call("create_event", { body = S.event_body("pk@example.com") })))
    local rec = S.last()
    assert.equal("create_event", rec.operation)
    assert.equal(202, rec.status)
    assert.equal("Klaviyo-API-Key ***", S.header(rec, "authorization"))
    client:close()
  end)

  it("sends an OAuth access token as Bearer", function()
    local client = S.client("oauth")
    local doc = assert(client:call("get_profiles", {}))
    assert.is_table(doc.data)
    local rec = S.last()
    assert.equal(200, rec.status)
    assert.equal("Bearer ***", S.header(rec, "authorization"))
    client:close()
  end)

  it("sends a public key as company_id on /client/* with no Authorization", function()
    local client, acct = S.client("public")
    local ok, err = client:call("create_client_event", { body = S.event_body("pub@example.com") })
    assert.is_true(ok, tostring(err))
    local rec = S.last()
    assert.equal("create_client_event", rec.operation)
    assert.equal(acct.public_key, S.query_value(rec.query, "company_id"))
    assert.is_nil(S.header(rec, "authorization"))
    client:close()
  end)

  it("uses each key where it belongs when a client holds both", function()
    local acct = S.emu.account()
    local client = assert(klaviyo.new { api_key = acct.private_key, public_key = acct.public_key,
                                        base_url = S.emu.url })
    assert.is_table((client:call("get_profiles", {})))
    local rec = S.last()
    assert.equal("Klaviyo-API-Key ***", S.header(rec, "authorization"))
    assert.is_nil(S.query_value(rec.query or "", "company_id"))
    assert.is_true((client:call("create_client_event", { body = S.event_body("both@example.com") })))
    rec = S.last()
    assert.equal("create_client_event", rec.operation)
    assert.is_nil(S.header(rec, "authorization"))
    assert.equal(acct.public_key, S.query_value(rec.query, "company_id"))
    client:close()
  end)

  it("refuses a private key to /client/* locally", function()
    local client, acct = S.client("private")
    local mark = S.mark()
    local ok, err = client:call("create_client_event", { body = S.event_body("x@example.com") })
    assert.is_nil(ok)
    assert.equal("refused", err.kind)
    assert.equal("create_client_event", err.operation)
    assert.equal(mark, S.mark())
    no_secret(err, acct)
    client:close()
  end)

  it("refuses a public key to /api/* locally", function()
    local client, acct = S.client("public")
    local mark = S.mark()
    local ok, err = client:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal("refused", err.kind)
    assert.equal(mark, S.mark())
    no_secret(err, acct)
    client:close()
  end)

  it("refuses keys and tokens holding CR, LF, spaces or control characters", function()
    local mark = S.mark()
    for _, bad in ipairs({ "pk_abc\r\nX-Evil: 1", "pk_abc def", "pk_abc\n", "pk_\1abc" }) do
      for _, opt in ipairs({ "api_key", "access_token", "public_key" }) do
        local c, err = klaviyo.new { [opt] = bad, base_url = S.emu.url }
        if c then
          -- a core that checks at send time must refuse there
          local op = opt == "public_key" and "create_client_event" or "get_profiles"
          local ok
          ok, err = c:call(op, op == "get_profiles" and {} or { body = S.event_body("a@b.co") })
          assert.is_nil(ok)
          c:close()
        end
        assert.equal("refused", err.kind, opt .. " " .. bad:gsub("%c", "?"))
        assert.is_nil(tostring(err):find(bad, 1, true))
      end
    end
    assert.equal(mark, S.mark())
  end)

  it("refuses a private key or token over http:// to a host that is not loopback", function()
    for _, opt in ipairs({ "api_key", "access_token" }) do
      local c, err = klaviyo.new { [opt] = "pk_0123456789abcdef", base_url = "http://example.com" }
      if c then
        local ok
        ok, err = c:call("get_profiles", {})
        assert.is_nil(ok)
        c:close()
      end
      assert.equal("refused", err.kind)
      assert.is_nil(tostring(err):find("pk_0123456789abcdef", 1, true))
    end
  end)

  it("accepts http:// to loopback names", function()
    local acct = S.emu.account()
    local url = S.emu.url:gsub("127%.0%.0%.1", "localhost")
    local c = assert(klaviyo.new { api_key = acct.private_key, base_url = url })
    assert.is_table((c:call("get_profiles", {})))
    c:close()
  end)

  it("answers 401 for an unknown key, without showing it", function()
    local c = assert(klaviyo.new { api_key = "pk_not_a_real_key_000000", base_url = S.emu.url })
    local ok, err = c:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal(401, err.status)
    assert.equal("not_authenticated", err.code)
    assert.is_nil(tostring(err):find("pk_not_a_real_key_000000", 1, true))
    c:close()
  end)
end)
