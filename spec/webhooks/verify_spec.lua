-- klaviyo.webhooks.verify in plain Lua: the vectors Node's crypto computed
-- (spec/sdk/webhooks_vectors_test.js writes spec/webhooks/vectors.json), what errors say,
-- and that no error or message ever holds the secret.
local cjson = require "cjson"
local webhooks = require "klaviyo.webhooks"
local P = require "helpers.process"

local function load_vectors()
  local f = assert(io.open(P.root .. "/spec/webhooks/vectors.json", "rb"))
  local t = cjson.decode(f:read("*a"))
  f:close()
  return t
end

describe("klaviyo.webhooks.verify", function()
  local vectors = load_vectors()

  it("accepts and refuses each of Node's vectors as Node expects", function()
    assert.is_true(#vectors >= 20)
    for _, v in ipairs(vectors) do
      local payload, err = webhooks.verify(v.secret, v.headers, v.body,
        { now = v.now, tolerance = v.tolerance })
      if v.expect == "ok" then
        assert(payload, v.name .. ": " .. tostring(err))
        assert.equal("event:klaviyo.placed_order", payload.data[1].topic)
      else
        assert.is_nil(payload, v.name)
        assert.equal(v.expect, err.code, v.name)
        assert.equal("webhook", err.kind)
      end
    end
  end)

  it("signs as Node does", function()
    for _, v in ipairs(vectors) do
      if v.expect == "ok" then
        local sig
        for k, val in pairs(v.headers) do if k:lower() == "klaviyo-signature" then sig = val:lower() end end
        assert.equal(sig, webhooks.sign(v.secret, v.body, v.timestamp), v.name)
      end
    end
  end)

  it("names the header at fault and never shows the secret", function()
    for _, v in ipairs(vectors) do
      local _, err = webhooks.verify(v.secret, v.headers, v.body, { now = v.now, tolerance = v.tolerance })
      if err then
        local line = tostring(err)
        assert.is_nil(line:find(v.secret, 1, true), v.name)
        assert.is_nil(cjson.encode(err):find(v.secret, 1, true), v.name)
        assert.truthy(line:find(err.code, 1, true), v.name)
        if v.expect == "missing_header" then assert.truthy(line:find("Klaviyo%-")) end
      end
    end
  end)

  it("uses the clock when no now is given", function()
    local secret, id = "0123456789abcdef0123", "W"
    local ts = os.date("!%a, %d %b %Y %H:%M:%S GMT", os.time() - 5)
    local body = '{"data":[],"meta":{"klaviyo_webhook_id":"W"}}'
    local h = { ["Klaviyo-Webhook-Id"] = id, ["Klaviyo-Timestamp"] = ts,
                ["Klaviyo-Signature"] = webhooks.sign(secret, body, ts) }
    assert.truthy(webhooks.verify(secret, h, body))
    local _, err = webhooks.verify(secret, h, body, { tolerance = 1 })
    assert.equal("stale_timestamp", err.code)
  end)

  it("answers nil, err for any finite now and tolerance it accepts", function()
    local secret = "0123456789abcdef0123"
    local ts = "Tue, 14 Apr 2026 03:50:12 GMT"
    local body = '{"data":[],"meta":{"klaviyo_webhook_id":"W"}}'
    local h = { ["Klaviyo-Webhook-Id"] = "W", ["Klaviyo-Timestamp"] = ts,
                ["Klaviyo-Signature"] = webhooks.sign(secret, body, ts) }
    local sent = 1776138612
    for _, case in ipairs {
      { now = 1e300, when = "before" }, { now = -1e300, when = "after" },
      { now = sent + 2 ^ 63, when = "before" }, { now = sent + 1e20, tolerance = 1e19, when = "before" },
    } do
      local ok, payload, err = pcall(webhooks.verify, secret, h, body,
        { now = case.now, tolerance = case.tolerance })
      assert.is_true(ok, payload)
      assert.is_nil(payload)
      assert.equal("stale_timestamp", err.code)
      local line = tostring(err)
      assert.truthy(line:find(" seconds " .. case.when .. " now", 1, true), line)
      assert.is_nil(line:find("-9223372036854775808", 1, true), line)
    end
    -- a fractional tolerance is shown as given, not rounded to another figure
    local _, err = webhooks.verify(secret, h, body, { now = sent + 2, tolerance = 0.5 })
    assert.truthy(tostring(err):find("(tolerance 0.5)", 1, true), tostring(err))
  end)

  it("refuses a signed body that is not JSON, or not the delivery's shape", function()
    local secret = "0123456789abcdef0123"
    local ts = "Tue, 14 Apr 2026 03:50:12 GMT"
    local function check(body)
      local h = { ["Klaviyo-Webhook-Id"] = "W", ["Klaviyo-Timestamp"] = ts,
                  ["Klaviyo-Signature"] = webhooks.sign(secret, body, ts) }
      return webhooks.verify(secret, h, body, { now = 1776138612 })
    end
    assert.truthy(check('{"data":[{"n":1e3}],"meta":{"klaviyo_webhook_id":"W"}}'))
    local meta = ',"meta":{"klaviyo_webhook_id":"W"}}'
    for _, body in ipairs {
      '{"data":[NaN]' .. meta, '{"data":[Infinity]' .. meta, '{"data":[-inf]' .. meta,
      '{"data":[0x10]' .. meta,
      '{"data":[],"meta":{"klaviyo_webhook_id":"W"}', '', 'null', '"W"', '[]', '{"data":[],"meta":"W"}',
      '{"data":"x","meta":{"klaviyo_webhook_id":"W"}}', ("["):rep(5000) .. ("]"):rep(5000),
    } do
      local payload, err = check(body)
      assert.is_nil(payload, body:sub(1, 60))
      assert.equal("malformed_body", err.code, body:sub(1, 60))
    end
    -- the error says where the text stops being JSON, or which part of the shape is wrong
    local _, err = check('{"data":[],"meta":{"klaviyo_webhook_id":"W"}')
    assert.truthy(err.detail:find("not JSON", 1, true), err.detail)
    assert.truthy(err.detail:find("character 45", 1, true), err.detail)
    _, err = check('{"data":[],"meta":"W"}')
    assert.truthy(err.detail:find("meta", 1, true), err.detail)
    assert.is_nil(err.detail:find("not JSON", 1, true), err.detail)
  end)

  it("refuses a header given as a list", function()
    local _, err = webhooks.verify("0123456789abcdef0123", { ["klaviyo-webhook-id"] = { "a", "b" },
      ["klaviyo-timestamp"] = "x", ["klaviyo-signature"] = "y" }, "{}")
    assert.equal("duplicate_header", err.code)
    assert.equal("Klaviyo-Webhook-Id", err.header)
  end)

  it("parses IMF-fixdates strictly", function()
    assert.equal(1776138612, webhooks.parse_imf_fixdate("Tue, 14 Apr 2026 03:50:12 GMT"))
    assert.equal(0, webhooks.parse_imf_fixdate("Thu, 01 Jan 1970 00:00:00 GMT"))
    assert.equal(951782400, webhooks.parse_imf_fixdate("Tue, 29 Feb 2000 00:00:00 GMT"))
    -- the ends of four-digit years: far from any clock, refused as stale, never a raise
    assert.equal(-62167219200, webhooks.parse_imf_fixdate("Sat, 01 Jan 0000 00:00:00 GMT"))
    assert.equal(253402300799, webhooks.parse_imf_fixdate("Fri, 31 Dec 9999 23:59:59 GMT"))
    for _, bad in ipairs { "Tue, 14 Apr 2026 03:50:12 UTC", "Tue, 14 Apr 2026 3:50:12 GMT",
                           "Mon, 29 Feb 2100 00:00:00 GMT", "Tue, 14 apr 2026 03:50:12 GMT",
                           "Tue, 14 Apr 2026 03:60:12 GMT", "Tuesday, 14-Apr-26 03:50:12 GMT",
                           " Tue, 14 Apr 2026 03:50:12 GMT", "Wed, 14 Apr 2026 03:50:12 GMT",
                           "", "0", "-1", "1776138612", "1776138612.5", "1e999", "nan",
                           "Tue, 14 Apr 2026 03:50:12 GMT\0", "Tue, 14 Apr 2026 03:50:12 GMT " } do
      assert.is_nil(webhooks.parse_imf_fixdate(bad), bad)
    end
  end)

  it("raises on arguments of the wrong type", function()
    local h = {}
    assert.has_error(function() webhooks.verify("short", h, "") end,
      "klaviyo.webhooks: the secret must be a string of at least 16 characters")
    assert.has_error(function() webhooks.verify(("s"):rep(16), nil, "") end)
    assert.has_error(function() webhooks.verify(("s"):rep(16), h, nil) end)
    assert.has_error(function() webhooks.verify(("s"):rep(16), h, "", { tolerance = -1 }) end)
    assert.has_error(function() webhooks.verify(("s"):rep(16), h, "", { tolerence = 1 }) end,
      "klaviyo.webhooks: unknown option 'tolerence'")
    -- max_body is ngx_verify's (it reads the body); verify is given the body
    assert.has_error(function() webhooks.verify(("s"):rep(16), h, "", { max_body = 10 }) end,
      "klaviyo.webhooks: unknown option 'max_body'")
  end)
end)
