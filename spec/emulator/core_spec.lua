-- The request pipeline every route shares: routing, JSON:API errors,
-- authentication, scopes, the revision header, body checks, 501 for what the
-- emulator does not emulate, and the launcher itself.
local emu = require "helpers.emulator"
local cjson = require "cjson.safe"

local function event_body(email)
  return { data = { type = "event", attributes = {
    properties = {}, metric = { data = { type = "metric", attributes = { name = "Core" } } },
    profile = { data = { type = "profile", attributes = { email = email or "core@example.com" } } },
  } } }
end

local function assert_error(status, body, want_status, want_code)
  assert.are.equal(want_status, status)
  assert.is_table(body, "error body is JSON")
  local e = body.errors[1]
  assert.are.equal(want_code, e.code)
  assert.are.equal(want_status, e.status)
  assert.is_string(e.id)
  assert.is_string(e.title)
  assert.is_string(e.detail)
  return e
end

describe("emulator core", function()
  local acct
  before_each(function()
    emu.reset()
    acct = emu.account()
  end)

  describe("routing", function()
    it("answers an unknown path 404 in Klaviyo's error format", function()
      local st, h, body = emu.api(acct, "GET", "/api/no-such-thing")
      assert_error(st, body, 404, "not_found")
      assert.matches("application/vnd.api+json", h["content-type"], 1, true)
    end)

    it("answers a wrong method 405 with Allow", function()
      local st, h, body = emu.api(acct, "PUT", "/api/events")
      assert_error(st, body, 405, "method_not_allowed")
      assert.are.equal("GET, POST", h["allow"])
    end)

    it("routes templated paths and accepts a trailing slash", function()
      local st, _, body = emu.api(acct, "GET", "/api/profiles/NOPE/")
      assert_error(st, body, 404, "not_found")
      assert.matches("NOPE", body.errors[1].detail, 1, true)
      st = emu.api(acct, "GET", "/api/profiles/")
      assert.are.equal(200, st)
    end)
  end)

  describe("authentication", function()
    it("refuses a request without credentials", function()
      local st, _, body = emu.api(acct, "GET", "/api/profiles", { headers = { authorization = false } })
      assert_error(st, body, 401, "not_authenticated")
    end)

    it("refuses an unknown private key", function()
      local st, _, body = emu.api(acct, "GET", "/api/profiles",
        { headers = { authorization = "Klaviyo-API-Key pk_nope" } })
      assert_error(st, body, 401, "not_authenticated")
    end)

    it("accepts an OAuth bearer token and refuses a bad one", function()
      local st = emu.api(acct, "GET", "/api/profiles",
        { headers = { authorization = "Bearer " .. acct.access_token } })
      assert.are.equal(200, st)
      local st2, _, body = emu.api(acct, "GET", "/api/profiles",
        { headers = { authorization = "Bearer nope" } })
      assert_error(st2, body, 401, "not_authenticated")
    end)

    it("never echoes the key in an error", function()
      local _, _, _, raw = emu.api(acct, "GET", "/api/profiles",
        { headers = { authorization = "Klaviyo-API-Key pk_secret_value_123" } })
      assert.is_nil(raw:find("pk_secret_value_123", 1, true))
    end)

    it("authenticates /client/* with the public key only", function()
      local path = "/client/push-tokens"
      local body = { data = { type = "push-token", attributes = {} } }
      -- no company_id
      local st, _, doc = emu.request { method = "POST", path = path, body = body,
                                       headers = { revision = emu.REVISION } }
      assert_error(st, doc, 401, "not_authenticated")
      -- unknown company_id
      st, _, doc = emu.request { method = "POST", path = path, body = body, query = { company_id = "XXXXXX" },
                                 headers = { revision = emu.REVISION } }
      assert_error(st, doc, 401, "not_authenticated")
      -- a private key is refused even with a good company_id
      st, _, doc = emu.request { method = "POST", path = path, body = body,
        query = { company_id = acct.public_key },
        headers = { revision = emu.REVISION, authorization = "Klaviyo-API-Key " .. acct.private_key } }
      assert_error(st, doc, 401, "not_authenticated")
      -- the public key passes authentication (this operation is not emulated: 501)
      st, _, doc = emu.request { method = "POST", path = path, body = body,
        query = { company_id = acct.public_key }, headers = { revision = emu.REVISION } }
      assert_error(st, doc, 501, "not_implemented")
    end)
  end)

  describe("scopes", function()
    it("answers 403 permission_denied outside the key's scopes", function()
      local ro = emu.account { scopes = { "profiles:read" } }
      local st, _, body = emu.api(ro, "POST", "/api/events", { body = event_body() })
      assert_error(st, body, 403, "permission_denied")
      assert.matches("events:write", body.errors[1].detail, 1, true)
      assert.are.equal(200, (emu.api(ro, "GET", "/api/profiles")))
    end)
  end)

  describe("revision header", function()
    it("is required", function()
      local st, _, body = emu.api(acct, "GET", "/api/profiles", { headers = { revision = false } })
      local e = assert_error(st, body, 400, "invalid")
      assert.are.equal("revision", e.source.parameter)
    end)

    it("must be YYYY-MM-DD with an optional suffix", function()
      local bads = { "2024-1-01", "2024-13-01", "2024-02-30", "2023-02-29", "yesterday", "2024-01-01pre",
                     "2024-01-01." }
      for _, bad in ipairs(bads) do
        local st, _, body = emu.api(acct, "GET", "/api/profiles", { headers = { revision = bad } })
        assert_error(st, body, 400, "invalid")
      end
      for _, good in ipairs { "2024-10-15", "2024-10-15.pre", "2026-07-15", "2024-02-29" } do
        assert.are.equal(200, (emu.api(acct, "GET", "/api/profiles", { headers = { revision = good } })))
      end
    end)

    it("refuses a date before the first revision", function()
      local st, _, body = emu.api(acct, "GET", "/api/profiles", { headers = { revision = "2021-01-01" } })
      assert_error(st, body, 400, "invalid")
    end)
  end)

  describe("bodies", function()
    it("needs a JSON:API content type", function()
      local st, _, body = emu.api(acct, "POST", "/api/events",
        { body = event_body(), headers = { ["content-type"] = "text/plain" } })
      assert_error(st, body, 415, "unsupported_media_type")
      -- plain application/json is what the official SDKs send
      st = emu.api(acct, "POST", "/api/events",
        { body = event_body(), headers = { ["content-type"] = "application/json" } })
      assert.are.equal(202, st)
    end)

    it("refuses malformed JSON, a missing body and a missing data member", function()
      local st, _, body = emu.api(acct, "POST", "/api/events", { body = "{nope" })
      assert_error(st, body, 400, "invalid")
      st, _, body = emu.api(acct, "POST", "/api/events", { body = "" })
      assert_error(st, body, 400, "invalid")
      st, _, body = emu.api(acct, "POST", "/api/events", { body = { meta = {} } })
      local e = assert_error(st, body, 400, "invalid")
      assert.are.equal("/data", e.source.pointer)
    end)

    it("answers text that is not JSON 400 with cjson's parse error as the detail", function()
      local cases = {
        "{nope", "   ", "[1,]", '{"a":1,}', '{"a" 1}', "{a:1}", "[1 2]", '{"a":1', "[", "nul",
        "-", ".5", '{"a":1}x', '{"a":1} {}', '"open', '{"data":"a\0b"}',
        string.rep("[", 1001) .. string.rep("]", 1001),
      }
      for _, raw in ipairs(cases) do
        local st, _, body = emu.api(acct, "POST", "/api/events", { body = raw })
        local e = assert_error(st, body, 400, "invalid")
        local _, why = cjson.decode(raw)
        assert.is_string(why, raw)
        assert.are.equal("JSON parse error - " .. why, e.detail, raw)
      end
    end)

    it("reads escapes, exponents, long numbers and repeated keys as cjson does", function()
      local props = '{"q":"say \\"hi\\"","u":"\\u00e9\\u5b57","nl":"a\\nb","e":1e3,"E":2E-1,' ..
        '"long":12345678901234567890,"frac":0.1234567890123456,"dup":1,"dup":2,' ..
        '"deep":' .. string.rep("[", 9) .. "1" .. string.rep("]", 9) .. '}'
      local raw = '{"data":{"type":"event","attributes":{"properties":' .. props .. ',"metric":' ..
        '{"data":{"type":"metric","attributes":{"name":"Core"}}},"profile":{"data":{"type":' ..
        '"profile","attributes":{"email":"json@example.com"}}}}}}'
      assert.are.equal(202, (emu.api(acct, "POST", "/api/events", { body = raw })))
      local st, _, body = emu.api(acct, "GET", "/api/events")
      assert.are.equal(200, st)
      -- what the emulator keeps is cjson's reading of the text (read back through its encoder)
      local want = cjson.decode(cjson.encode(cjson.decode(props)))
      assert.are.same(want, body.data[1].attributes.event_properties)
      assert.are.equal('say "hi"', want.q)
      assert.are.equal(2, want.dup)
    end)

    it("answers 409 when data.type is not the endpoint's type", function()
      local b = event_body()
      b.data.type = "profile"
      local st, _, body = emu.api(acct, "POST", "/api/events", { body = b })
      local e = assert_error(st, body, 409, "conflict")
      assert.are.equal("/data/type", e.source.pointer)
    end)

    it("answers an update naming another id in its body 409, and an unknown id 404", function()
      local st, _, body = emu.api(acct, "POST", "/api/images", { body = { data = { type = "image",
        attributes = { import_from_url = "https://example.com/a.png" } } } })
      assert.are.equal(201, st)
      local function rename(url_id, body_id)
        return emu.api(acct, "PATCH", "/api/images/" .. url_id, { body = { data = { type = "image",
          id = body_id, attributes = { name = "b.png" } } } })
      end
      local st2, _, body2 = rename(body.data.id, "999999")
      local e = assert_error(st2, body2, 409, "conflict")
      assert.are.equal("/data/id", e.source.pointer)
      local st3, _, body3 = rename("999999", "999999")
      assert_error(st3, body3, 404, "not_found")
    end)
  end)

  describe("operations the emulator does not emulate", function()
    it("answer 501 after auth, scope, revision and rate-limit checks", function()
      local st, h, body = emu.api(acct, "GET", "/api/campaigns",
        { query = { filter = "equals(messages.channel,'email')" } })
      local e = assert_error(st, body, 501, "not_implemented")
      assert.matches("get_campaigns", e.detail, 1, true)
      assert.is_truthy(h["ratelimit-limit"])
      -- each earlier check still wins
      st = emu.api(acct, "GET", "/api/campaigns", { headers = { authorization = false } })
      assert.are.equal(401, st)
      local ro = emu.account { scopes = { "profiles:read" } }
      assert.are.equal(403, (emu.api(ro, "GET", "/api/campaigns")))
      assert.are.equal(400, (emu.api(acct, "GET", "/api/campaigns", { headers = { revision = false } })))
      emu.limits({ get_campaigns = { daily = 0 } }, acct)
      assert.are.equal(429, (emu.api(acct, "GET", "/api/campaigns")))
    end)
  end)
end)

describe("klaviyo-emulator launcher", function()
  local launcher = emu.root .. "/emulator/klaviyo-emulator"

  -- exit status through the output: LuaJIT's popen close does not report it
  local function run(args)
    local f = io.popen(launcher .. " " .. args .. " 2>&1; echo \"exit=$?\"")
    local out = f:read("*a")
    f:close()
    local code = tonumber(out:match("exit=(%d+)%s*$"))
    return out, code == 0
  end

  local free_port = require("helpers.process").free_port

  it("refuses a bad port", function()
    local out, ok = run("start --port nope")
    assert.is_false(ok)
    assert.matches("--port", out, 1, true)
  end)

  it("starts a sink that answers 202 to anything, then stops it", function()
    local port = free_port()
    local out, ok = run("start --sink --port " .. port)
    assert.is_true(ok, out)
    local url = out:match("(http://127%.0%.0%.1:%d+)")
    assert.are.equal("http://127.0.0.1:" .. port, url)
    local st, _, _, raw = emu.request { url = url .. "/api/events", method = "POST", body = "x" }
    assert.are.equal(202, st)
    assert.are.equal("", raw)
    st = emu.request { url = url .. "/anything/at/all" }
    assert.are.equal(202, st)
    -- a second start on the same port is refused
    local _, again = run("start --sink --port " .. port)
    assert.is_false(again)
    local _, stopped = run("stop --port " .. port)
    assert.is_true(stopped)
    assert.is_nil((emu.request { url = url .. "/" }))
    local _, twice = run("stop --port " .. port)
    assert.is_false(twice)
  end)
end)

describe("filter expressions (unit)", function()
  local filter = require "emulator.filter"
  local allowed = {
    email = { ops = { "equals", "any", "contains", "starts-with", "ends-with" }, type = "string" },
    tags = { ops = { "has", "contains-any", "contains-all" } },
    n = { ops = { "greater-than", "less-or-equal", "equals" } },
    datetime = { ops = { "greater-or-equal", "less-than" }, type = "datetime" },
    ["and"] = true, ["or"] = true, ["not"] = true,
  }
  local function matches(expr, obj)
    local fn, err = filter.compile(expr, allowed)
    assert.is_function(fn, err)
    return fn(obj)
  end

  it("parses strings with escapes in either quote style", function()
    local ast = assert(filter.parse([[equals(email,"a\"b\\c\u00e9")]]))
    assert.are.equal("a\"b\\c\195\169", ast.value)
    ast = assert(filter.parse([[equals(email,'it\'s')]]))
    assert.are.equal("it's", ast.value)
  end)

  it("evaluates field operators", function()
    local o = { email = "ann@example.com", tags = { "a", "b" }, n = 5, datetime = 1704067200 }
    assert.is_true(matches('equals(email,"ann@example.com")', o))
    assert.is_true(matches('any(email,["x","ann@example.com"])', o))
    assert.is_true(matches('contains(email,"@example")', o))
    assert.is_true(matches('starts-with(email,"ann")', o))
    assert.is_true(matches('ends-with(email,".com")', o))
    assert.is_false(matches('ends-with(email,".org")', o))
    assert.is_true(matches('has(tags,"b")', o))
    assert.is_true(matches('contains-any(tags,["z","a"])', o))
    assert.is_false(matches('contains-all(tags,["a","z"])', o))
    assert.is_true(matches("greater-than(n,4)", o))
    assert.is_false(matches("less-or-equal(n,4.5)", o))
    assert.is_true(matches("greater-or-equal(datetime,2024-01-01T00:00:00Z)", o))
    assert.is_true(matches("less-than(datetime,2024-01-01T00:00:01+00:00)", o))
    assert.is_false(matches("less-than(datetime,2024-01-01T01:00:00+01:00)", o))
  end)

  it("combines with and, or, not and a top-level comma", function()
    local o = { email = "ann@example.com", n = 5 }
    assert.is_true(matches('and(equals(email,"ann@example.com"),equals(n,5))', o))
    assert.is_true(matches('or(equals(email,"x"),equals(n,5))', o))
    assert.is_false(matches('not(equals(n,5))', o))
    assert.is_false(matches('equals(email,"ann@example.com"),equals(n,6)', o))
  end)

  it("refuses unknown fields, operators and combinators, and malformed input", function()
    for _, bad in ipairs {
      'equals(name,"x")', 'less-than(email,"x")', 'wobbles(email,"x")', 'equals(email,"x"',
      'equals(email,"unterminated)', "equals(email,[1,2)", "", 'any(email,"x")',
      "greater-than(n,abc)",
    } do
      local fn, err = filter.compile(bad, allowed)
      assert.is_nil(fn, bad)
      assert.matches("^Invalid filter provided", err)
    end
    local no_or = { email = allowed.email, n = allowed.n }
    local fn = filter.compile('or(equals(email,"x"),equals(n,1))', no_or)
    assert.is_nil(fn)
  end)
end)

describe("JSON:API documents (unit)", function()
  local jsonapi = require "emulator.jsonapi"

  it("encodes an empty collection as [] rather than {}", function()
    assert.are.equal('{"data":[]}', jsonapi.encode { data = jsonapi.array({}) })
    assert.are.equal('{"data":[1]}', jsonapi.encode { data = jsonapi.array({ 1 }) })
  end)

  it("builds error documents with a fresh id each time", function()
    local st, doc = jsonapi.error(400, "invalid", "Invalid input.", "bad",
      { parameter = "filter" }, { x = 1 })
    assert.are.equal(400, st)
    local e = doc.errors[1]
    assert.are.same({ "invalid", "Invalid input.", "bad", "filter", 1 },
      { e.code, e.title, e.detail, e.source.parameter, e.meta.x })
    local _, doc2 = jsonapi.error(400, "invalid", "Invalid input.", "bad")
    assert.are_not.equal(e.id, doc2.errors[1].id)
  end)

  it("answers empty collections with a JSON array over HTTP", function()
    emu.reset()
    local acct = emu.account()
    local _, _, _, raw = emu.api(acct, "GET", "/api/metrics")
    assert.matches('"data":[]', raw, 1, true)
  end)
end)
