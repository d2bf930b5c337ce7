-- The `klaviyo` command run as a process against the emulator with command lines that hold
-- something the verb would not use: each is a usage error (exit 2) naming it, nothing sent.
local C = require "cli.support"
local emu = C.emu
local run = C.run

local BASE = "--base-url=" .. emu.url

describe("klaviyo (the command) and what a verb does not take", function()
  local acct, env
  setup(function() acct, env = C.account() end)

  local CASES = {
    { { "call", "delete_list", "id=L1", "--read-only" }, "--read-only" },
    { { "call", "get_lists", "--unique-id", "u-1" }, "--unique-id" },
    { { "call", "get_lists", "--public" }, "--public" },
    { { "describe", "get_lists", "--body", "@x.json" }, "--body" },
    { { "mcp", "--dry-run" }, "--dry-run" },
    { { "call", "get_lists", "-n" }, "-n" },
    { { "track", "Placed Order", "email=a@example.com", "--value", "1", "--value", "2" }, "--value" },
    { { "call", "get_lists", "get_profiles" }, "call takes" },
    { { "flow", "status", "F1", "live", "now" }, "flow takes" },
    { { "list", "add", "L1", "P1", "email=a@example.com" }, "email=" },
    { { "mcp", "email=a@example.com" }, "email=" },
    { { "track", "Placed Order", "email=a@example.com", "email=b@example.com" }, "email= given twice" },
    { { "track", "Placed Order", "email=a@example.com", "sku=A1", "sku:=2" }, "sku= given twice" },
    { { "profile", "upsert", "email=a@example.com", "first_name=A", "first_name=B" },
      "first_name= given twice" },
    { { "subscribe", "email=a@example.com", "email=b@example.com" }, "email= given twice" },
    { { "unsubscribe", "email=a@example.com", "list=L1", "--list", "L2" }, "list= given twice" },
    { { "subscribe", "phone_number=+15005550006", "--historical" }, "--historical" },
    { { "subscribe", "email=a@example.com", "--consented-at", "now", "--source", "form", "--transactional" },
      "--transactional" },
  }

  for _, case in ipairs(CASES) do
    it(table.concat(case[1], " ") .. " is a usage error naming " .. case[2] .. ", nothing sent", function()
      local argv = { BASE, env = env }
      for _, a in ipairs(case[1]) do argv[#argv + 1] = a end
      local r = run(argv)
      assert.are.equal(2, r.code, r.stderr)
      assert.are.equal("usage", r.err and r.err.kind, r.stderr)
      assert.truthy(r.err.detail:find(case[2], 1, true), r.err.detail)
      assert.are.equal("", r.stdout)
      assert.are.same({}, emu.requests(acct))
    end)
  end

  it("an option a verb takes, given once, and -- before a word starting with - still work", function()
    local r = run { "call", "get_lists", "--dry-run", BASE, env = env }
    assert.are.equal(0, r.code, r.stderr)
    -- the reports are POSTs with a body and pages
    r = run { "pages", "query_flow_values", "--body", "-", "--dry-run", BASE, env = env, stdin =
      '{"data":{"type":"flow-values-report","attributes":{"statistics":["opens"],' ..
      '"timeframe":{"key":"last_30_days"},"conversion_metric_id":"M1"}}}' }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("POST", r.doc.method)
    r = run { "track", "--dry-run", BASE, "--value", "-5", "email=a@example.com", "--",
      "-Odd Metric", env = env }
    assert.are.equal(0, r.code, r.stderr)
    assert.truthy(r.doc.body:find("-Odd Metric", 1, true))
    assert.are.same({}, emu.requests(acct))
  end)
end)
