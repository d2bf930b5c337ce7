-- klaviyo.client_api against the emulator: public-key-only calls (track, identify,
-- subscribe, back_in_stock) with the same local refusals.
local S = require "idiomatic.support"

describe("client_api", function()
  local pub, priv
  before_each(function()
    priv = S.setup()
    -- a second client on the same account holding only its public key
    local c = assert(S.klaviyo.new{ base_url = S.emu.url, public_key = priv.acct.public_key })
    pub = { client = c, acct = priv.acct, client_api = S.mod(c, "client_api") }
  end)

  it("tracks an event with a generated unique_id, using only the public key", function()
    local uid = assert(pub.client_api:track{ metric = "Viewed Product",
      profile = { email = "v@example.com" }, properties = { sku = "A1" }, value = 10 })
    local req = S.requests(priv.acct, "create_client_event")[1]
    assert.equal(202, req.status)
    assert.equal(uid, S.body(req).data.attributes.unique_id)
    assert.is_nil(req.headers.authorization)
    assert.matches("company_id=" .. priv.acct.public_key, req.query, 1, true)
    local evs = S.collect(priv.events:each())
    assert.equal(1, #evs)
    assert.equal("A1", evs[1].event_properties.sku)
  end)

  it("refuses the same bad data as the server side, nothing sent", function()
    local _, err = S.nothing_sent(priv.acct, function()
      return pub.client_api:track{ metric = "X", profile = { first_name = "Ann" } }
    end)
    assert.equal("create_client_event", err.operation)
    assert.matches("identifier", err.detail)
    local cyc = {}; cyc.me = cyc
    local _, err2 = S.nothing_sent(priv.acct, function()
      return pub.client_api:track{ metric = "X", profile = { email = "a@example.com" }, properties = cyc }
    end)
    assert.matches("cycle", err2.detail)
  end)

  it("identifies a profile", function()
    assert.is_true(pub.client_api:identify{ email = "id@example.com", first_name = "Ida" })
    local p = assert(priv.profiles:get{ email = "id@example.com" })
    assert.equal("Ida", p.first_name)
    local _, err = S.nothing_sent(priv.acct, function()
      return pub.client_api:identify{ phone_number = "12345" }
    end)
    assert.matches("E%.164", err.detail)
  end)

  it("subscribes to a list, SMS only with an opt-in record", function()
    local l = assert(priv.lists:create{ name = "Web signups" })
    assert.is_true(pub.client_api:subscribe{ email = "w@example.com", list = l.id })
    assert.is_true(pub.client_api:subscribe{ phone_number = "+15005550011", list = l.id,
      sms_consent = { consented_at = os.time(), source = "footer form" } })
    assert.equal(2, #S.collect(priv.lists:members(l.id)))
    local subs = assert(priv.profiles:get({ phone_number = "+15005550011" },
      { subscriptions = true })).subscriptions
    assert.equal("SUBSCRIBED", subs.sms.marketing.consent)
    local _, err = S.nothing_sent(priv.acct, function()
      return pub.client_api:subscribe{ phone_number = "+15005550012", list = l.id }
    end)
    assert.matches("opt%-in record", err.detail)
    local _, err2 = S.nothing_sent(priv.acct, function()
      return pub.client_api:subscribe{ email = "w@example.com" }
    end)
    assert.equal("/list", err2.pointer)
    local _, err3 = S.nothing_sent(priv.acct, function()
      return pub.client_api:subscribe{ phone_number = "+15005550012", list = l.id,
        sms_consent = { consented_at = "2024-01-01T00:00:00Z", source = "x", historical = true } }
    end)
    assert.matches("historical", err3.detail)
  end)

  it("subscribes to back-in-stock alerts", function()
    assert.is_true(pub.client_api:back_in_stock{ variant = "$custom:::$default:::SKU-9",
      channels = { "EMAIL", "SMS" }, email = "b@example.com", phone_number = "+15005550013" })
    local req = S.requests(priv.acct, "create_client_back_in_stock_subscription")[1]
    assert.equal(202, req.status)
    local _, err = S.nothing_sent(priv.acct, function()
      return pub.client_api:back_in_stock{ variant = "V", channels = { "SMS" }, email = "b@example.com" }
    end)
    assert.matches("E%.164", err.detail)
  end)
end)
