-- The `klaviyo` command run as a process with its standard output on a full device
-- (/dev/full): a result that could not be written is never a success.
local C = require "cli.support"
local emu = C.emu
local run = C.run

local BASE = "--base-url=" .. emu.url

describe("klaviyo (the command) when its output cannot be written", function()
  local acct, env
  setup(function() acct, env = C.account() end)

  local function lost(argv)
    argv[#argv + 1] = BASE
    argv.env = env
    argv.stdout_to = "/dev/full"
    local r = run(argv)
    assert.are.equal(5, r.code, r.stderr)
    -- the error object is the last line of stderr (the MCP server logs there before it)
    r.err = require("cjson.safe").decode(r.stderr:match("([^\n]*)\n$") or "")
    assert.are.equal("output", r.err and r.err.kind, r.stderr)
    assert.truthy(r.err.detail:find("No space left on device", 1, true), r.err.detail)
    return r
  end

  it("is exit 5, kind output, for a result, a dry run, ops, describe and --help", function()
    lost { "call", "get_lists" }
    assert.are.equal(1, #emu.requests(acct, "get_lists"))
    lost { "call", "get_lists", "--dry-run" }
    lost { "ops" }
    lost { "describe", "create_event" }
    lost { "--help" }
  end)

  it("stops pages at the first line it cannot write: no page is asked for in vain", function()
    local S = require "emulator.support"
    for i = 1, 3 do S.create_list(acct, "Out " .. i) end
    local before = #emu.requests(acct, "get_lists")
    lost { "pages", "get_lists", "page[size]=1" }
    assert.are.equal(before + 1, #emu.requests(acct, "get_lists"))
  end)

  it("is exit 5 for the MCP server, which stops at the first answer it cannot write", function()
    local ping = '{"jsonrpc":"2.0","id":1,"method":"ping"}\n'
    local call = '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"call_operation",' ..
      '"arguments":{"operation":"get_flows"}}}\n'
    lost { "mcp", stdin = ping .. call }
    assert.are.same({}, emu.requests(acct, "get_flows"))
  end)
end)

describe("klaviyo (the command) and the numbers it prints", function()
  after_each(function() emu.faults(nil) end)

  it("prints every number of an answer as Klaviyo wrote it (no rounding to 14 digits)", function()
    local _, env = C.account()
    local body = '{"data":[{"type":"list","id":"L1","attributes":{"name":"x","n":12345678901234567,' ..
      '"f":0.30000000000000004,"t":1733600000123.5}}],"links":{"self":"https://a.klaviyo.com/api/lists"}}'
    emu.faults { { operation = "get_lists", status = 200, count = 1, body = body } }
    local r = run { "call", "get_lists", BASE, env = env }
    assert.are.equal(0, r.code, r.stderr)
    local want = require("cjson").decode(body).data[1].attributes
    local got = r.doc.data[1].attributes
    for _, k in ipairs({ "n", "f", "t" }) do
      assert.are.equal(want[k], got[k], k .. " in " .. r.stdout)
    end
    assert.truthy(r.stdout:find('"self":"https://a.klaviyo.com/api/lists"', 1, true), r.stdout)
  end)
end)
