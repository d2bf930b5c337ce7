-- klaviyo.subscriptions (client.consent) against the emulator: email and SMS subscribe with
-- opt-in records, the SMS refusals (nothing sent), historical imports, unsubscribe,
-- suppress/unsuppress, server-side back in stock.
local S = require "idiomatic.support"

local function consent_of(t, q)
  local p = assert(t.profiles:get(q, { subscriptions = true }))
  return p.subscriptions
end

describe("consent:subscribe", function()
  local t
  before_each(function() t = S.setup() end)

  it("subscribes an email address to marketing and joins the list", function()
    local l = assert(t.lists:create{ name = "Newsletter" })
    assert.is_true(t.consent:subscribe{ email = "ann@example.com", list = l.id })
    local subs = consent_of(t, { email = "ann@example.com" })
    assert.equal("SUBSCRIBED", subs.email.marketing.consent)
    assert.equal(1, #S.collect(t.lists:members(l.id)))
    local body = S.body(S.requests(t.acct, "bulk_subscribe_profiles")[1])
    assert.equal(l.id, body.data.relationships.list.data.id)
    assert.is_nil(body.data.attributes.historical_import)
  end)

  it("subscribes SMS with an opt-in record: source kept, Klaviyo stamps the time", function()
    local now = os.time()
    assert.is_true(t.consent:subscribe{ phone_number = "+15005550006",
      sms_consent = { consented_at = now - 60, source = "checkout checkbox" } })
    local subs = consent_of(t, { phone_number = "+15005550006" })
    assert.equal("SUBSCRIBED", subs.sms.marketing.consent)
    assert.equal("checkout checkbox", subs.sms.marketing.method_detail)
    local a = S.body(S.requests(t.acct, "bulk_subscribe_profiles")[1]).data.attributes
    assert.equal("checkout checkbox", a.custom_source)
    assert.is_nil(a.profiles.data[1].attributes.subscriptions.sms.marketing.consented_at)
    assert.is_nil(a.historical_import)
  end)

  it("imports past consent as historical, with consented_at", function()
    assert.is_true(t.consent:subscribe{ phone_number = "+15005550007",
      sms_consent = { consented_at = "2025-03-01T12:00:00Z", source = "paper form",
                      historical = true, transactional = true } })
    local subs = consent_of(t, { phone_number = "+15005550007" })
    assert.equal("SUBSCRIBED", subs.sms.marketing.consent)
    assert.equal("SUBSCRIBED", subs.sms.transactional.consent)
    assert.matches("^2025%-03%-01T12:00:00", subs.sms.marketing.consent_timestamp)
    local a = S.body(S.requests(t.acct, "bulk_subscribe_profiles")[1]).data.attributes
    assert.is_true(a.historical_import)
    assert.equal("2025-03-01T12:00:00+00:00",
      a.profiles.data[1].attributes.subscriptions.sms.marketing.consented_at)
  end)

  it("subscribes email and SMS together, or email only when SMS is switched off", function()
    assert.is_true(t.consent:subscribe{ email = "both@example.com", phone_number = "+15005550008",
      sms_consent = { consented_at = os.time(), source = "signup form" } })
    local subs = consent_of(t, { email = "both@example.com" })
    assert.equal("SUBSCRIBED", subs.email.marketing.consent)
    assert.equal("SUBSCRIBED", subs.sms.marketing.consent)
    assert.is_true(t.consent:subscribe{ email = "mail@example.com", phone_number = "+15005550009",
      sms_consent = false })
    local subs2 = consent_of(t, { email = "mail@example.com" })
    assert.equal("SUBSCRIBED", subs2.email.marketing.consent)
    assert.are_not.equal("SUBSCRIBED", subs2.sms and subs2.sms.marketing and
      subs2.sms.marketing.consent)
  end)

  describe("refuses locally, nothing sent:", function()
    local function refused(s, pattern)
      local ok, err = S.nothing_sent(t.acct, function() return t.consent:subscribe(s) end)
      assert.is_nil(ok)
      assert.equal("refused", err.kind)
      assert.equal("bulk_subscribe_profiles", err.operation)
      assert.matches(pattern, err.detail)
      return err
    end
    it("SMS without an opt-in record, saying what is missing", function()
      local err = refused({ phone_number = "+15005550006" }, "opt%-in record")
      assert.matches("consented_at", err.detail)
      assert.matches("source", err.detail)
      assert.equal("/sms_consent", err.pointer)
    end)
    it("an opt-in record without when or how", function()
      refused({ phone_number = "+15005550006", sms_consent = { source = "form" } },
        "missing consented_at")
      refused({ phone_number = "+15005550006", sms_consent = { consented_at = os.time() } },
        "missing source")
    end)
    it("a phone number not in E.164", function()
      refused({ phone_number = "500-555-0006",
        sms_consent = { consented_at = os.time(), source = "form" } }, "E%.164")
    end)
    it("consent from the future or an old consent not marked historical", function()
      refused({ phone_number = "+15005550006",
        sms_consent = { consented_at = os.time() + 3600, source = "form" } }, "future")
      refused({ phone_number = "+15005550006",
        sms_consent = { consented_at = "2024-01-01T00:00:00Z", source = "form" } },
        "historical = true")
    end)
    it("an opt-in record for a channel without its identifier, not a quiet skip", function()
      local err = refused({ email = "sms@example.com",
        sms_consent = { consented_at = os.time(), source = "form" } }, "phone_number")
      assert.equal("/sms_consent", err.pointer)
      err = refused({ phone_number = "+15005550006", email_consent = { consented_at = os.time(),
        source = "form" }, sms_consent = { consented_at = os.time(), source = "form" } }, "email")
      assert.equal("/email_consent", err.pointer)
    end)
    it("a consent time far outside the calendar, without raising", function()
      for _, at in ipairs({ 1e300, -1e300 }) do
        refused({ phone_number = "+15005550006", sms_consent = { consented_at = at,
          source = "form" } }, "out of range")
      end
    end)
    it("no email or phone, a bad email, every channel off", function()
      refused({ list = "L1" }, "email and/or a phone_number")
      refused({ email = "not-an-email" }, "valid address")
      refused({ email = "a@example.com", email_consent = false }, "nothing to subscribe")
    end)
  end)

  it("raises on programmer errors", function()
    assert.has_error(function() t.consent:subscribe{ emails = "x" } end)
    assert.has_error(function()
      t.consent:subscribe{ phone_number = "+15005550006", sms_consent = "yes" }
    end)
    assert.has_error(function()
      t.consent:subscribe{ phone_number = "+15005550006",
        sms_consent = { consented_at = os.time(), source = "form", when = 1 } }
    end)
    assert.equal(0, #S.requests(t.acct))
  end)
end)

describe("consent:unsubscribe, suppress, unsuppress", function()
  local t
  before_each(function() t = S.setup() end)

  it("unsubscribes email and SMS", function()
    assert(t.consent:subscribe{ email = "u@example.com", phone_number = "+15005550010",
      sms_consent = { consented_at = os.time(), source = "form" } })
    assert.is_true(t.consent:unsubscribe{ email = "u@example.com", phone_number = "+15005550010" })
    local subs = consent_of(t, { email = "u@example.com" })
    assert.equal("UNSUBSCRIBED", subs.email.marketing.consent)
    assert.equal("UNSUBSCRIBED", subs.sms.marketing.consent)
    local _, err = S.nothing_sent(t.acct, function()
      return t.consent:unsubscribe{ phone_number = "5550010" }
    end)
    assert.matches("E%.164", err.detail)
  end)

  it("suppresses and unsuppresses email addresses", function()
    assert(t.consent:subscribe{ email = "s@example.com" })
    assert.is_true(t.consent:suppress{ email = "s@example.com" })
    local m = consent_of(t, { email = "s@example.com" }).email.marketing
    assert.is_false(m.can_receive_email_marketing)
    assert.is_true(t.consent:unsuppress{ emails = { "s@example.com" } })
    m = consent_of(t, { email = "s@example.com" }).email.marketing
    assert.is_true(m.can_receive_email_marketing)
    local _, err = S.nothing_sent(t.acct, function() return t.consent:suppress{ emails = { "x" } } end)
    assert.equal("/emails/0", err.pointer)
  end)
end)

describe("consent:suppress with a list of emails holding a hole", function()
  it("is refused (# would stop at the hole), nothing sent", function()
    local t = S.setup()
    local emails = {}
    emails[1], emails[3] = "h1@example.com", "h3@example.com"
    local ok, err = S.nothing_sent(t.acct, function() return t.consent:suppress{ emails = emails } end)
    assert.is_nil(ok)
    assert.equal("refused", err.kind)
    assert.equal("/emails/1", err.pointer)
  end)
end)

describe("consent:back_in_stock (server side)", function()
  local t
  before_each(function() t = S.setup() end)

  it("subscribes a profile to a variant's back-in-stock alert", function()
    assert.is_true(t.consent:back_in_stock{ variant = "$custom:::$default:::SKU-1",
      channels = { "EMAIL" }, email = "bis@example.com" })
    local req = S.requests(t.acct, "create_back_in_stock_subscription")[1]
    assert.equal(202, req.status)
    local body = S.body(req)
    assert.same({ "EMAIL" }, body.data.attributes.channels)
    assert.equal("$custom:::$default:::SKU-1", body.data.relationships.variant.data.id)
  end)

  it("refuses SMS alerts without an E.164 phone and unknown variants, nothing sent", function()
    local _, err = S.nothing_sent(t.acct, function()
      return t.consent:back_in_stock{ variant = "V1", channels = { "SMS" }, email = "a@example.com" }
    end)
    assert.matches("E%.164", err.detail)
    local _, err2 = S.nothing_sent(t.acct, function()
      return t.consent:back_in_stock{ channels = { "EMAIL" }, email = "a@example.com" }
    end)
    assert.equal("/variant", err2.pointer)
    assert.has_error(function()
      t.consent:back_in_stock{ variant = "V1", channels = { "FAX" }, email = "a@example.com" }
    end)
  end)
end)
