-- Encoding of every parameter kind, checked on what the emulator received: path parameters,
-- the filter, sparse fieldsets (lists joined with commas), integers, plain strings, spec
-- headers and JSON bodies, with values holding spaces, quotes, &, #, +, / and UTF-8.
local S = require "client.support"
local F = S.klaviyo.filter

local NASTY = 'Zoë "the" O\'Brien & Co #1 +50% a/b?c=d\\'

describe("parameter encoding", function()
  local client
  before_each(function() client = S.client() end)
  after_each(function() client:close() end)

  it("percent-encodes query values so they arrive intact", function()
    local filter = F.equals("email", NASTY)
    client:call("get_profiles", {
      filter = filter,
      ["fields[profile]"] = { "email", "first_name" },
      ["additional-fields[profile]"] = { "subscriptions" },
      ["page[size]"] = 7,
      sort = "-created",
    })
    local rec = S.last()
    assert.equal("get_profiles", rec.operation)
    local raw = rec.query
    -- nothing that would split or end the query, or read as a space, is sent raw
    assert.is_nil(raw:find("[ #\"+]"), raw)
    local pairs_ = S.query_pairs(raw)
    assert.equal(5, #pairs_, raw)
    assert.equal(tostring(filter), S.query_value(raw, "filter"))
    assert.equal("email,first_name", S.query_value(raw, "fields[profile]"))
    assert.equal("subscriptions", S.query_value(raw, "additional-fields[profile]"))
    assert.equal("7", S.query_value(raw, "page[size]"))
    assert.equal("-created", S.query_value(raw, "sort"))
  end)

  it("finds a profile by an email holding specials through the filter", function()
    local email = "o'brien+tag&x#1@exämple.com"
    local created = assert(client:call("create_profile", { body = S.profile_body { email = email } }))
    local doc = assert(client:call("get_profiles", { filter = F.equals("email", email) }))
    assert.equal(1, #doc.data)
    assert.equal(created.data.id, doc.data[1].id)
    assert.equal(email, doc.data[1].attributes.email)
  end)

  it("percent-encodes path parameters on the wire", function()
    -- the wire form, from the core's request builder (the same code path as sending)
    local req = assert(require("klaviyo.request").build("get_profile", { id = "a b/c?d#e&f\"é+%" }))
    local built = assert(client.core:build(req))
    local seg = built.url:match("/api/profiles/([^?]*)$")
    assert.is_string(seg, built.url)
    assert.is_nil(seg:find("[ /?#&\"+]"), seg)
    assert.equal("a b/c?d#e&f\"é+%", S.unescape(seg))
  end)

  it("delivers path parameters intact to the route", function()
    local id = "a b?d#e&f\"é+%"
    local ok, err = client:call("get_profile", { id = id })
    assert.is_nil(ok)
    local rec = S.last()
    assert.equal("get_profile", rec.operation)
    assert.equal(rec.status, err.status)
    -- the emulator records the decoded path: one segment equal to the id
    assert.equal("/api/profiles/" .. id, rec.path)
  end)

  it("sends spec headers by name", function()
    local pub = S.client("public")
    pub:call("get_client_geofences", { ["X-Klaviyo-API-Filters"] = 'equals(x,"a b")' })
    local rec = S.last()
    assert.equal("get_client_geofences", rec.operation)
    assert.equal('equals(x,"a b")', S.header(rec, "x-klaviyo-api-filters"))
    pub:close()
  end)

  it("sends JSON bodies with UTF-8, escapes, empty arrays and nulls", function()
    local props = { note = NASTY, emoji = "✓ 🚀", ctrl = "tab\there\nline",
                    none = S.klaviyo.null, list = S.klaviyo.array(), n = 12345678901, f = 0.1 }
    local ok, err = client:call("create_event", { body = S.event_body("enc@example.com", "Encoded", {
      properties = props, unique_id = "enc-1" }) })
    assert.is_true(ok, tostring(err))
    local rec = S.last()
    local body = require("cjson").decode(rec.request_body)
    local got = body.data.attributes.properties
    assert.equal(NASTY, got.note)
    assert.equal("✓ 🚀", got.emoji)
    assert.equal("tab\there\nline", got.ctrl)
    assert.equal(require("cjson").null, got.none)
    assert.matches('"list":%[%]', rec.request_body)
    assert.equal(12345678901, got.n)
    assert.equal(0.1, got.f)
    assert.equal("application/vnd.api+json", S.header(rec, "content-type"))
    assert.equal("application/vnd.api+json", S.header(rec, "accept"))
    assert.matches("^lua%-klaviyo/", S.header(rec, "user-agent"))
  end)
end)
