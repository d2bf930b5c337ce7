-- Consent against the emulator: bulk subscribe / unsubscribe for email and SMS marketing
-- (E.164 for SMS, the optional list, historical imports), suppressions, and the state
-- read back through additional-fields[profile]=subscriptions.
local S = require("emulator.support")
local api = S.api
local new_account = S.new_account
local create_list = S.create_list
local members = S.members
local null = require("cjson.safe").null

local function item(attrs, subs)
  local a = {subscriptions = subs}
  for k, v in pairs(attrs) do a[k] = v end
  return {type = "profile", attributes = a}
end

local EMAIL = {email = {marketing = {consent = "SUBSCRIBED"}}}
local SMS = {sms = {marketing = {consent = "SUBSCRIBED"}}}
local NO_EMAIL = {email = {marketing = {consent = "UNSUBSCRIBED"}}}

local function subscribe(acct, items, list_id, extra)
  local attrs = {profiles = {data = items}}
  for k, v in pairs(extra or {}) do attrs[k] = v end
  local data = {type = "profile-subscription-bulk-create-job", attributes = attrs}
  if list_id then data.relationships = {list = {data = {type = "list", id = list_id}}} end
  return api(acct, "POST", "/api/profile-subscription-bulk-create-jobs", {body = {data = data}})
end

local function unsubscribe(acct, items, list_id)
  local data = {type = "profile-subscription-bulk-delete-job", attributes = {profiles = {data = items}}}
  if list_id then data.relationships = {list = {data = {type = "list", id = list_id}}} end
  return api(acct, "POST", "/api/profile-subscription-bulk-delete-jobs", {body = {data = data}})
end

local function profile_by(acct, field, value)
  local st, _, body, raw = api(acct, "GET", "/api/profiles", {query = {
    filter = string.format('equals(%s,"%s")', field, value),
    ["additional-fields[profile]"] = "subscriptions"}})
  assert(st == 200, raw)
  return body.data[1]
end

local function subs_of(acct, email)
  local p = profile_by(acct, "email", email)
  return p and p.attributes.subscriptions
end

describe("emulator consent", function()
  local acct
  before_each(function() acct = new_account() end)

  describe("bulk_subscribe_profiles", function()
    it("subscribes email marketing (creating the profile) and answers 202 with no body", function()
      local st, _, body, raw = subscribe(acct, {item({email = "sub@example.com"}, EMAIL)})
      assert.are.equal(202, st, raw)
      assert.is_nil(body)
      local m = subs_of(acct, "sub@example.com").email.marketing
      assert.are.equal("SUBSCRIBED", m.consent)
      assert.is_true(m.can_receive_email_marketing)
      assert.are.equal("API", m.method)
      assert.truthy(m.consent_timestamp:match("^%d%d%d%d%-"))
    end)

    it("leaves profiles never subscribed until asked", function()
      api(acct, "POST", "/api/profiles", {body = {data = {type = "profile",
          attributes = {email = "n@example.com"}}}})
      local s = subs_of(acct, "n@example.com")
      assert.are.equal("NEVER_SUBSCRIBED", s.email.marketing.consent)
      assert.are.equal("NEVER_SUBSCRIBED", s.sms.marketing.consent)
    end)

    it("subscribes SMS marketing for an E.164 phone number", function()
      local st = subscribe(acct, {item({phone_number = "+15005550006"}, SMS)})
      assert.are.equal(202, st)
      local p = profile_by(acct, "phone_number", "+15005550006")
      assert.are.equal("SUBSCRIBED", p.attributes.subscriptions.sms.marketing.consent)
      assert.is_true(p.attributes.subscriptions.sms.marketing.can_receive_sms_marketing)
      assert.are.equal("NEVER_SUBSCRIBED", p.attributes.subscriptions.email.marketing.consent)
    end)

    it("refuses SMS consent without an E.164 phone number, changing nothing", function()
      local st, _, body = subscribe(acct, {item({email = "ok@example.com"}, EMAIL),
        item({phone_number = "5005550006"}, SMS)})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/profiles/data/1/attributes/phone_number",
          body.errors[1].source.pointer)
      assert.is_nil(profile_by(acct, "email", "ok@example.com"))
      st, _, body = subscribe(acct, {item({email = "nophone@example.com"}, SMS)})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/profiles/data/0/attributes/subscriptions/sms/marketing",
        body.errors[1].source.pointer)
    end)

    it("keeps identifiers consistent when items of one request overlap", function()
      -- the third item names two profiles the first two items create: no identifier moves
      local st = subscribe(acct, {item({email = "o1@example.com"}, EMAIL),
        item({phone_number = "+15005550100"}, SMS),
        item({email = "o1@example.com", phone_number = "+15005550100"},
          {email = EMAIL.email, sms = SMS.sms})})
      assert.are.equal(202, st)
      local by_email = profile_by(acct, "email", "o1@example.com")
      local by_phone = profile_by(acct, "phone_number", "+15005550100")
      assert.are_not.equal(by_email.id, by_phone.id)
      assert.are.equal(null, by_email.attributes.phone_number)
      assert.are.equal(null, by_phone.attributes.email)
    end)

    it("refuses more than 1000 profiles and an empty request", function()
      local items = {}
      for i = 1, 1001 do items[i] = item({email = "bulk" .. i .. "@example.com"}, EMAIL) end
      local st, _, body = subscribe(acct, items)
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/profiles/data", body.errors[1].source.pointer)
      items[1001] = nil
      assert.are.equal(202, (subscribe(acct, items)))
      assert.are.equal("SUBSCRIBED", subs_of(acct, "bulk1000@example.com").email.marketing.consent)
    end)

    it("adds the profiles to the list given", function()
      local list_id = create_list(acct, "Newsletter")
      assert.are.equal(202, (subscribe(acct, {item({email = "l@example.com"}, EMAIL)}, list_id)))
      assert.are.same({profile_by(acct, "email", "l@example.com").id}, members(acct, list_id))
      local st, _, body = subscribe(acct, {item({email = "l@example.com"}, EMAIL)}, "NOPE")
      assert.are.equal(400, st)
      assert.are.equal("/data/relationships/list/data/id", body.errors[1].source.pointer)
    end)

    it("waits for confirmation on a double opt-in list", function()
      local list_id = create_list(acct, "Confirmed", "double_opt_in")
      assert.are.equal(202, (subscribe(acct, {item({email = "dbl@example.com"}, EMAIL)}, list_id)))
      assert.are.equal("NEVER_SUBSCRIBED", subs_of(acct, "dbl@example.com").email.marketing.consent)
      assert.are.same({}, members(acct, list_id))
    end)

    it("requires a past consented_at for historical imports and keeps it", function()
      local list_id = create_list(acct, "Imported", "double_opt_in")
      local st, _, body = subscribe(acct, {item({email = "h@example.com"}, EMAIL)}, nil,
          {historical_import = true})
      assert.are.equal(400, st)
      assert.are.equal(
        "/data/attributes/profiles/data/0/attributes/subscriptions/email/marketing/consented_at",
        body.errors[1].source.pointer)
      local future = {email = {marketing = {consent = "SUBSCRIBED", consented_at = "2999-01-01T00:00:00Z"}}}
      assert.are.equal(400, (subscribe(acct, {item({email = "h@example.com"}, future)}, nil,
          {historical_import = true})))
      local past = {email = {marketing = {consent = "SUBSCRIBED", consented_at = "2020-05-06T07:08:09Z"}}}
      assert.are.equal(202, (subscribe(acct, {item({email = "h@example.com"}, past)}, list_id,
          {historical_import = true})))
      local m = subs_of(acct, "h@example.com").email.marketing
      assert.are.equal("SUBSCRIBED", m.consent)
      assert.are.equal("2020-05-06T07:08:09+00:00", m.consent_timestamp)
      assert.are.equal(1, #members(acct, list_id)) -- historical imports bypass double opt-in
    end)

    it("answers 501 for WhatsApp consent, which it does not emulate", function()
      local st, _, body = subscribe(acct, {item({phone_number = "+15005550006"},
        {whatsapp = {marketing = {consent = "SUBSCRIBED"}}})})
      assert.are.equal(501, st)
      assert.are.equal("not_implemented", body.errors[1].code)
    end)
  end)

  describe("bulk_unsubscribe_profiles", function()
    it("unsubscribes globally without a list", function()
      subscribe(acct, {item({email = "u@example.com", phone_number = "+15005550007"},
        {email = EMAIL.email, sms = SMS.sms})})
      local st = unsubscribe(acct, {item({email = "u@example.com"}, NO_EMAIL)})
      assert.are.equal(202, st)
      local s = subs_of(acct, "u@example.com")
      assert.are.equal("UNSUBSCRIBED", s.email.marketing.consent)
      assert.is_false(s.email.marketing.can_receive_email_marketing)
      assert.are.equal("SUBSCRIBED", s.sms.marketing.consent)
      unsubscribe(acct, {item({phone_number = "+15005550007"},
          {sms = {marketing = {consent = "UNSUBSCRIBED"}}})})
      assert.are.equal("UNSUBSCRIBED", subs_of(acct, "u@example.com").sms.marketing.consent)
    end)

    it("with a list: members leave that list only, others are unsubscribed globally", function()
      local list_id = create_list(acct, "Weekly")
      subscribe(acct, {item({email = "in@example.com"}, EMAIL), item({email = "out@example.com"}, EMAIL)})
      subscribe(acct, {item({email = "in@example.com"}, EMAIL)}, list_id)
      assert.are.equal(202, (unsubscribe(acct, {item({email = "in@example.com"}, NO_EMAIL),
        item({email = "out@example.com"}, NO_EMAIL)}, list_id)))
      local inside = subs_of(acct, "in@example.com").email.marketing
      assert.are.equal("SUBSCRIBED", inside.consent)
      assert.are.equal(list_id, inside.list_suppressions[1].list_id)
      assert.are.same({}, members(acct, list_id))
      assert.are.equal("UNSUBSCRIBED", subs_of(acct, "out@example.com").email.marketing.consent)
    end)

    it("refuses more than 100 profiles and a consent other than UNSUBSCRIBED", function()
      local items = {}
      for i = 1, 101 do items[i] = item({email = "x" .. i .. "@example.com"}, NO_EMAIL) end
      assert.are.equal(400, (unsubscribe(acct, items)))
      local st, _, body = unsubscribe(acct, {item({email = "x@example.com"}, EMAIL)})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/profiles/data/0/attributes/subscriptions/email/marketing/consent",
        body.errors[1].source.pointer)
    end)
  end)

  describe("back in stock", function()
    local function bis(channels, profile_attrs, variant)
      return api(acct, "POST", "/api/back-in-stock-subscriptions", {body = {data = {
        type = "back-in-stock-subscription",
        attributes = {channels = channels, profile = {data = {type = "profile", attributes = profile_attrs}}},
        relationships = {variant = {data = {type = "catalog-variant",
          id = variant or "$custom:::$default:::SKU-1"}}}}}})
    end

    it("subscribes a profile (creating it) without changing its marketing consent", function()
      local st, _, body = bis({"EMAIL", "SMS"}, {email = "bis@example.com", phone_number = "+15005550020"})
      assert.are.equal(202, st)
      assert.is_nil(body)
      local s = subs_of(acct, "bis@example.com")
      assert.are.equal("NEVER_SUBSCRIBED", s.email.marketing.consent)
      assert.are.equal("NEVER_SUBSCRIBED", s.sms.marketing.consent)
    end)

    it("needs the identifier each channel sends to, a well-formed variant, and known channels", function()
      local st, _, body = bis({"SMS"}, {email = "b@example.com"})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/channels/0", body.errors[1].source.pointer)
      st, _, body = bis({"SMS"}, {phone_number = "555-0100"})
      assert.are.equal(400, st)
      assert.are.equal("/data/attributes/profile/data/attributes/phone_number", body.errors[1].source.pointer)
      st, _, body = bis({"EMAIL"}, {email = "b@example.com"}, "SKU-1")
      assert.are.equal(400, st)
      assert.are.equal("/data/relationships/variant/data/id", body.errors[1].source.pointer)
      assert.are.equal(400, (bis({"FAX"}, {email = "b@example.com"})))
      assert.are.equal(501, (bis({"PUSH"}, {email = "b@example.com"})))
      assert.is_nil(profile_by(acct, "email", "b@example.com"))
    end)
  end)

  describe("suppressions", function()
    local function suppress(kind, emails, rel)
      local data = {type = kind == "create" and "profile-suppression-bulk-create-job" or
        "profile-suppression-bulk-delete-job", attributes = {}}
      if emails then
        local items = {}
        for i, e in ipairs(emails) do items[i] = {type = "profile", attributes = {email = e}} end
        data.attributes.profiles = {data = items}
      end
      data.relationships = rel
      return api(acct, "POST", "/api/profile-suppression-bulk-" .. kind .. "-jobs", {body = {data = data}})
    end

    it("suppresses and unsuppresses by email, readable as a job", function()
      subscribe(acct, {item({email = "s@example.com"}, EMAIL)})
      local st, _, body, raw = suppress("create", {"s@example.com"})
      assert.are.equal(202, st, raw)
      assert.are.equal("profile-suppression-bulk-create-job", body.data.type)
      assert.are.equal(1, body.data.attributes.total_count)
      local m = subs_of(acct, "s@example.com").email.marketing
      assert.is_false(m.can_receive_email_marketing)
      assert.are.equal("USER_SUPPRESSED", m.suppression[1].reason)
      assert.are.equal("SUBSCRIBED", m.consent)
      local _, _, job = api(acct, "GET", "/api/profile-suppression-bulk-create-jobs/" .. body.data.id)
      assert.are.equal("complete", job.data.attributes.status)
      assert.are.equal(202, (suppress("delete", {"s@example.com"})))
      m = subs_of(acct, "s@example.com").email.marketing
      assert.is_true(m.can_receive_email_marketing)
      assert.is_nil(m.suppression)
    end)

    it("lists suppression jobs, filtered by list", function()
      local list_id = create_list(acct, "Jobs")
      subscribe(acct, {item({email = "j@example.com"}, EMAIL)}, list_id)
      local _, _, by_email = suppress("create", {"j@example.com"})
      local _, _, by_list = suppress("create", nil, {list = {data = {type = "list", id = list_id}}})
      suppress("delete", {"j@example.com"})
      local st, _, body = api(acct, "GET", "/api/profile-suppression-bulk-create-jobs")
      assert.are.equal(200, st)
      assert.are.equal(2, #body.data)
      assert.are.equal(by_email.data.id, body.data[1].id)
      _, _, body = api(acct, "GET", "/api/profile-suppression-bulk-create-jobs",
        {query = {filter = string.format('equals(list_id,"%s")', list_id)}})
      assert.are.equal(1, #body.data)
      assert.are.equal(by_list.data.id, body.data[1].id)
      assert.are.equal(list_id, body.data[1].relationships.lists.data[1].id)
      _, _, body = api(acct, "GET", "/api/profile-suppression-bulk-delete-jobs")
      assert.are.equal(1, #body.data)
      local wrong_kind = "/api/profile-suppression-bulk-delete-jobs/" .. by_email.data.id
      assert.are.equal(404, (api(acct, "GET", wrong_kind)))
    end)

    it("suppresses every member of a list", function()
      local list_id = create_list(acct, "Bounced")
      subscribe(acct, {item({email = "a@example.com"}, EMAIL), item({email = "b@example.com"}, EMAIL)},
        list_id)
      subscribe(acct, {item({email = "c@example.com"}, EMAIL)})
      local st, _, body = suppress("create", nil, {list = {data = {type = "list", id = list_id}}})
      assert.are.equal(202, st)
      assert.are.equal(2, body.data.attributes.total_count)
      assert.is_false(subs_of(acct, "a@example.com").email.marketing.can_receive_email_marketing)
      assert.is_false(subs_of(acct, "b@example.com").email.marketing.can_receive_email_marketing)
      assert.is_true(subs_of(acct, "c@example.com").email.marketing.can_receive_email_marketing)
    end)

    it("is lifted by a new subscription", function()
      subscribe(acct, {item({email = "r@example.com"}, EMAIL)})
      suppress("create", {"r@example.com"})
      subscribe(acct, {item({email = "r@example.com"}, EMAIL)})
      assert.is_true(subs_of(acct, "r@example.com").email.marketing.can_receive_email_marketing)
    end)

    it("refuses a request naming both emails and a list, or neither", function()
      local list_id = create_list(acct, "Both")
      local rel = {list = {data = {type = "list", id = list_id}}}
      assert.are.equal(400, (suppress("create", {"z@example.com"}, rel)))
      assert.are.equal(400, (suppress("create", nil, nil)))
    end)
  end)
end)
