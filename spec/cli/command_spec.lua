-- The `klaviyo` command run as a process against the emulator: every verb, --dry-run sending
-- nothing, each error kind's exit code and JSON, a resent event firing its flow once, and no
-- key in any output.
local C = require "cli.support"
local S = require "emulator.support"
local emu = C.emu
local run = C.run

local BASE = "--base-url=" .. emu.url

local tmpfile = C.tmpfile

-- A live flow triggered by `metric` (its metric made first by a backfilled event): its id.
local function live_flow(acct, metric)
  local c = assert(require("klaviyo").new { api_key = acct.private_key, base_url = emu.url })
  local id = require("helpers.live_flow")(c, metric, "On " .. metric)
  c:close()
  return id
end

local function runs_of(acct, flow_id)
  local n = 0
  for _, r in ipairs(emu.flow_runs(acct)) do
    if r.flow_id == flow_id then n = n + 1 end
  end
  return n
end

describe("klaviyo (the command)", function()
  local keys = {}
  after_each(function() emu.faults(nil) end)

  local function account()
    local acct, env = C.account()
    keys[#keys + 1] = acct.private_key
    return acct, env
  end

  -- `klaviyo ARGS --base-url=...` run with the key of a fresh account: its result and the account.
  local function run_new(args)
    local acct, env = account()
    args[#args + 1] = BASE
    args.env = env
    return run(args), acct
  end

  describe("help, ops and describe", function()
    it("--help lists the verbs and the exit codes", function()
      local r = run { "--help" }
      assert.are.equal(0, r.code)
      for _, w in ipairs({ "call OPERATION", "pages OPERATION", "describe OPERATION", "track METRIC",
          "profile get", "subscribe", "unsubscribe", "list add|remove", "flow status", "--dry-run",
          "--key-file", "--base-url", "--limiter", "2  usage", "3  refused", "4  HTTP 4xx",
          "5  HTTP 5xx", "6  rate limited" }) do
        assert.truthy(r.stdout:find(w, 1, true), w)
      end
    end)

    it("ops lists every operation, one a line", function()
      local n = 0
      for _ in pairs(require("klaviyo.operations")) do n = n + 1 end
      local r = run { "ops" }
      assert.are.equal(0, r.code)
      local lines = 0
      for _ in r.stdout:gmatch("[^\n]+") do lines = lines + 1 end
      assert.are.equal(n, lines)
    end)

    it("ops WORD lists the matching operations", function()
      local r = run { "ops", "event" }
      assert.are.equal(0, r.code)
      assert.truthy(r.stdout:find("create_event%s+POST%s+/api/events"))
      assert.falsy(r.stdout:find("get_lists", 1, true))
    end)

    it("describe shows parameters, body, scopes, limits and whether it is safe to repeat", function()
      local r = run { "describe", "create_event" }
      assert.are.equal(0, r.code)
      assert.truthy(r.stdout:find("POST /api/events", 1, true))
      assert.truthy(r.stdout:find('data.type "event"', 1, true))
      assert.truthy(r.stdout:find("data.attributes requires: properties, metric, profile", 1, true))
      assert.truthy(r.stdout:find("scopes: events:write", 1, true))
      assert.truthy(r.stdout:find("350/s burst, 3500/min steady", 1, true))
      assert.truthy(r.stdout:find("safe to repeat: yes", 1, true))
      local g = run { "describe", "get_profiles" }
      assert.truthy(g.stdout:find("page%[size%]%s+query, integer 1..100"))
      assert.truthy(run({ "describe", "create_list" }).stdout:find("safe to repeat: no", 1, true))
    end)

    it("an unknown operation is a usage error", function()
      local r = run { "describe", "no_such_op" }
      assert.are.equal(2, r.code)
      assert.are.equal("usage", r.err.kind)
    end)
  end)

  describe("call and pages", function()
    it("call sends any operation with typed parameters and prints the document", function()
      local acct, env = account()
      for i = 1, 3 do S.create_profile(acct, "p" .. i .. "@example.com") end
      local r = run { "call", "get_profiles", "page[size]=2", "fields[profile]=email,first_name",
        "fields[profile]=last_name", BASE, env = env }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(2, #r.doc.data)
      assert.truthy(r.doc.data[1].attributes.email)
      local reqs = C.requests(acct, "get_profiles")
      assert.are.equal(1, #reqs)
      assert.truthy(reqs[1].query:find("page%%5Bsize%%5D=2") or reqs[1].query:find("page%[size%]=2"))
      assert.truthy(reqs[1].query:find("email,first_name,last_name", 1, true), reqs[1].query)
    end)

    it("call takes the body from a file or from standard input", function()
      local acct, env = account()
      local body = '{"data":{"type":"list","attributes":{"name":"From a file"}}}'
      local r = run { "call", "create_list", "--body", "@" .. tmpfile(body), BASE, env = env }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("From a file", r.doc.data.attributes.name)
      local r2 = run { "call", "create_list", "--body", "-", BASE, env = env,
        stdin = '{"data":{"type":"list","attributes":{"name":"From stdin"}}}' }
      assert.are.equal(0, r2.code, r2.stderr)
      assert.are.equal("From stdin", r2.doc.data.attributes.name)
      assert.are.equal(2, #C.requests(acct, "create_list"))
    end)

    it("pages prints every resource of every page as JSON lines", function()
      local acct, env = account()
      for i = 1, 5 do S.create_profile(acct, "pg" .. i .. "@example.com") end
      local r = run { "pages", "get_profiles", "page[size]=2", BASE, env = env }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(5, #r.lines)
      assert.are.equal("profile", r.lines[5].type)
      assert.are.equal(3, #C.requests(acct, "get_profiles"))
    end)
  end)

  describe("the idiomatic verbs", function()
    it("track resent with the same --unique-id is recorded once and fires its flow once", function()
      local acct, env = account()
      local flow = live_flow(acct, "Placed Order")
      local before = #C.requests(acct, "create_event")
      for _ = 1, 2 do
        local r = run { "track", "Placed Order", "email=ann@example.com", "sku=A1", "qty:=2",
          "--value", "59.9", "--unique-id", "order-1001", BASE, env = env }
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal("order-1001", r.doc.unique_id)
      end
      local events = C.requests(acct, "create_event")
      assert.are.equal(before + 2, #events)
      assert.are.equal(1, runs_of(acct, flow))
      local sent = require("cjson").decode(events[#events].request_body)
      assert.are.equal("A1", sent.data.attributes.properties.sku)
      assert.are.equal(2, sent.data.attributes.properties.qty)
    end)

    it("track takes properties from --properties @file", function()
      local r, acct = run_new { "track", "Viewed", "external_id=u-7", "--properties",
        "@" .. tmpfile('{"page":"/home","n":3}') }
      assert.are.equal(0, r.code, r.stderr)
      local sent = require("cjson").decode(C.requests(acct, "create_event")[1].request_body)
      assert.are.same({ page = "/home", n = 3 }, sent.data.attributes.properties)
      assert.is_string(sent.data.attributes.unique_id)
    end)

    it("profile upsert creates then updates; profile get finds it by email", function()
      local _, env = account()
      local r = run { "profile", "upsert", "email=bea@example.com", "first_name=Bea", BASE, env = env }
      assert.are.equal(0, r.code, r.stderr)
      assert.is_true(r.doc.created)
      local r2 = run { "profile", "upsert", "email=bea@example.com", "last_name=Bee", BASE, env = env }
      assert.are.equal(0, r2.code, r2.stderr)
      assert.is_false(r2.doc.created)
      local g = run { "profile", "get", "email=bea@example.com", BASE, env = env }
      assert.are.equal(0, g.code, g.stderr)
      assert.are.equal("Bea", g.doc.first_name)
      assert.are.equal("Bee", g.doc.last_name)
      assert.are.equal(r.doc.profile.id, g.doc.id)
    end)

    it("profile get by name is refused locally (exit 3), nothing sent", function()
      local r, acct = run_new { "profile", "get", "first_name=Ann" }
      assert.are.equal(3, r.code)
      assert.are.equal("refused", r.err.kind)
      assert.are.equal(0, #emu.requests(acct))
    end)

    it("profile get with no match is exit 4, code not_found", function()
      local r = run_new { "profile", "get", "email=nobody@example.com" }
      assert.are.equal(4, r.code)
      assert.are.equal("not_found", r.err.code)
    end)

    it("subscribe refuses a phone number without an opt-in record, accepts it with one", function()
      local acct, env = account()
      local r = run { "subscribe", "phone_number=+15005550006", BASE, env = env }
      assert.are.equal(3, r.code)
      assert.are.equal("refused", r.err.kind)
      assert.truthy(r.err.detail:find("opt-in record", 1, true))
      assert.are.equal("/sms_consent", r.err.pointer)
      assert.are.equal(0, #emu.requests(acct))
      local ok = run { "subscribe", "phone_number=+15005550006", "--consented-at", "now",
        "--source", "checkout checkbox", BASE, env = env }
      assert.are.equal(0, ok.code, ok.stderr)
      assert.is_true(ok.doc.accepted)
      assert.are.equal(1, #C.requests(acct, "bulk_subscribe_profiles"))
    end)

    it("unsubscribe sends the unsubscribe job", function()
      local r, acct = run_new { "unsubscribe", "email=cy@example.com" }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(1, #C.requests(acct, "bulk_unsubscribe_profiles"))
    end)

    it("list add and remove change the list's members", function()
      local acct, env = account()
      local list = S.create_list(acct, "VIP")
      local a, b = S.create_profile(acct, "a@example.com"), S.create_profile(acct, "b@example.com")
      local r = run { "list", "add", list, a .. "," .. b, BASE, env = env }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(2, r.doc.profiles)
      table.sort(S.members(acct, list))
      assert.are.equal(2, #S.members(acct, list))
      local r2 = run { "list", "remove", list, a, BASE, env = env }
      assert.are.equal(0, r2.code, r2.stderr)
      assert.are.same({ b }, S.members(acct, list))
    end)

    it("flow status reads and sets a flow's status", function()
      local acct, env = account()
      local id = live_flow(acct, "Started Checkout")
      local r = run { "flow", "status", id, BASE, env = env }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal("live", r.doc.status)
      local r2 = run { "flow", "status", id, "manual", BASE, env = env }
      assert.are.equal(0, r2.code, r2.stderr)
      assert.are.equal("manual", r2.doc.status)
      assert.are.equal("manual", run({ "flow", "status", id, BASE, env = env }).doc.status)
    end)
  end)

  describe("--dry-run", function()
    it("prints the request each verb would send, key redacted, and sends nothing", function()
      local acct, env = account()
      local cases = {
        { "call", "get_profiles", "page[size]=5", method = "GET", path = "/api/profiles" },
        { "track", "Placed Order", "email=dd@example.com", "--unique-id", "u-1",
          method = "POST", path = "/api/events" },
        { "subscribe", "email=dd@example.com", method = "POST",
          path = "/api/profile-subscription-bulk-create-jobs" },
        { "list", "add", "L1", "P1", method = "POST", path = "/api/lists/L1/relationships/profiles" },
        { "flow", "status", "F1", "live", method = "PATCH", path = "/api/flows/F1" },
        { "pages", "get_lists", method = "GET", path = "/api/lists" },
      }
      for _, c in ipairs(cases) do
        local argv = { BASE, "--dry-run", env = env }
        for i = 1, #c do argv[#argv + 1] = c[i] end
        local r = run(argv)
        assert.are.equal(0, r.code, r.stderr)
        assert.are.equal(c.method, r.doc.method)
        assert.truthy(r.doc.url:find(emu.url .. c.path, 1, true), r.doc.url)
        local auth
        for _, h in ipairs(r.doc.headers) do if h[1] == "Authorization" then auth = h[2] end end
        assert.are.equal("Klaviyo-API-Key [redacted]", auth)
        assert.is_nil(r.stdout:find(acct.private_key, 1, true))
      end
      assert.are.same({}, emu.requests(acct))
    end)

    it("shows the event's unique_id in the body", function()
      local acct, env = account()
      local r = run { "track", "Viewed", "email=e@example.com", "--unique-id", "dry-1", "--dry-run",
        BASE, env = env }
      local body = require("cjson").decode(r.doc.body)
      assert.are.equal("dry-1", body.data.attributes.unique_id)
      assert.are.same({}, emu.requests(acct))
    end)

    it("a local refusal prints the library's error, sends nothing", function()
      local acct, env = account()
      local r = run { "subscribe", "phone_number=5550006", "--dry-run", BASE, env = env }
      assert.are.equal(3, r.code)
      assert.truthy(r.err.message:find("E.164", 1, true))
      assert.are.same({}, emu.requests(acct))
    end)
  end)

  describe("errors: one JSON object on stderr, exit code by kind", function()
    local FIELDS = { "kind", "status", "code", "detail", "pointer", "retry_after" }
    local function has_fields(err)
      assert.is_table(err)
      for _, f in ipairs(FIELDS) do assert.is_not_nil(err[f], f) end   -- null decodes as cjson.null
    end

    it("usage: 2 (unknown verb, unknown parameter, key as an argument)", function()
      local _, env = account()
      for _, argv in ipairs({ { "frobnicate" }, { "call", "get_profiles", "bogus=1", BASE },
          { "call", "get_profiles", "--api-key", "pk_x" }, { "call", "get_profiles", "--key=pk_x" } }) do
        argv.env = env
        local r = run(argv)
        assert.are.equal(2, r.code, r.stderr)
        has_fields(r.err)
        assert.are.equal("usage", r.err.kind)
      end
      local r = run { "call", "get_profiles", "bogus=1", BASE, env = env }
      assert.truthy(r.err.detail:find("get_profiles: parameter bogus: unknown parameter", 1, true))
    end)

    it("refused: 3 (no key)", function()
      local r = run { "call", "get_lists", BASE }
      assert.are.equal(3, r.code)
      has_fields(r.err)
      assert.are.equal("missing_credential", r.err.code)
    end)

    it("http 4xx: 4 with Klaviyo's status, code and pointer", function()
      local _, env = account()
      -- the server's refusal is under test: --no-validate turns the local body check off
      local r = run { "call", "create_list", "--body", "-", "--no-validate", BASE, env = env,
        stdin = '{"data":{"type":"list","attributes":{}}}' }
      assert.are.equal(4, r.code, r.stderr)
      has_fields(r.err)
      assert.are.equal("http", r.err.kind)
      assert.are.equal(400, r.err.status)
      assert.is_string(r.err.pointer)
    end)

    it("http 5xx: 5", function()
      local _, env = account()
      emu.faults { { operation = "create_list", status = 500, count = 1 } }
      local r = run { "call", "create_list", "--body", "-", BASE, env = env,
        stdin = '{"data":{"type":"list","attributes":{"name":"x"}}}' }
      assert.are.equal(5, r.code, r.stderr)
      assert.are.equal(500, r.err.status)
    end)

    it("transport: 5", function()
      local _, env = account()
      emu.faults { { operation = "create_list", reset = "after", count = 1 } }
      local r = run { "call", "create_list", "--body", "-", BASE, env = env,
        stdin = '{"data":{"type":"list","attributes":{"name":"x"}}}' }
      assert.are.equal(5, r.code, r.stderr)
      assert.are.equal("transport", r.err.kind)
    end)

    it("rate limited: 6 with retry_after", function()
      local _, env = account()
      emu.faults { { operation = "create_list", status = 429, retry_after = 3600, count = 1 } }
      local r = run { "call", "create_list", "--body", "-", BASE, env = env,
        stdin = '{"data":{"type":"list","attributes":{"name":"x"}}}' }
      assert.are.equal(6, r.code, r.stderr)
      has_fields(r.err)
      assert.are.equal(3600, r.err.retry_after)
    end)
  end)

  describe("connection options", function()
    it("--limiter redis://... keeps the rate limits in that Redis", function()
      local R = require "retry.support"
      local port, stop = R.redis()
      local _, env = account()
      local ok, err = pcall(function()
        assert.are.same({}, R.redis_cmd(port, "KEYS", "*"))
        local r = run { "call", "get_lists", BASE, "--limiter", "redis://127.0.0.1:" .. port, env = env }
        assert.are.equal(0, r.code, r.stderr)
        assert.is_true(#R.redis_cmd(port, "KEYS", "*") >= 1)
        local bad = run { "call", "get_lists", BASE, "--limiter", "127.0.0.1:" .. port, env = env }
        assert.are.equal(2, bad.code)
      end)
      stop()
      assert(ok, err)
    end)

    it("--revision sets the revision header", function()
      local _, env = account()
      local r = run { "call", "get_lists", BASE, "--revision", "2025-10-15", "--dry-run", env = env }
      assert.are.equal(0, r.code, r.stderr)
      local rev
      for _, h in ipairs(r.doc.headers) do if h[1] == "revision" then rev = h[2] end end
      assert.are.equal("2025-10-15", rev)
    end)
  end)

  describe("credentials", function()
    it("--key-file reads the key; the key is in no output", function()
      local acct = account()
      local r = run { "call", "get_lists", "--key-file", tmpfile(acct.private_key .. "\n"), BASE }
      assert.are.equal(0, r.code, r.stderr)
      assert.are.equal(1, #C.requests(acct, "get_lists"))
    end)

    it("an error answer holding the key is written redacted", function()
      local acct, env = account()
      emu.faults { { operation = "get_lists", status = 400, count = 1,
        body = '{"errors":[{"status":400,"code":"invalid","detail":"bad key ' .. acct.private_key
          .. '"}]}' } }
      local r = run { "call", "get_lists", BASE, env = env }
      assert.are.equal(4, r.code, r.stderr)
      assert.is_nil(r.stderr:find(acct.private_key, 1, true))
    end)
  end)

  it("no key appeared in any output of the runs above", function()
    assert.is_true(#C.outputs > 40 and #keys > 15)
    for _, o in ipairs(C.outputs) do
      for _, k in ipairs(keys) do
        assert.is_nil(o:find(k, 1, true), "a key appeared in the command's output")
      end
    end
  end)
end)
