-- The `klaviyo` command run as a process against the emulator with hostile files and
-- standard input: what it reads is bounded and checked, a file it cannot use is a usage
-- error (exit 2) naming the option, nothing sent.
local C = require "cli.support"
local emu = C.emu
local run = C.run

local BASE = "--base-url=" .. emu.url
local MAX = 5 * 1024 * 1024

local tmpfile = C.tmpfile

describe("klaviyo (the command) and the files it reads", function()
  local acct, env
  setup(function() acct, env = C.account() end)

  -- Runs argv (with the account's key and the emulator) in 400 MB of address space.
  local function refused(argv, option, why)
    argv[#argv + 1] = BASE
    argv.env = argv.env or env
    argv.memory_kb = 400 * 1024
    local r = run(argv)
    assert.are.equal(2, r.code, r.stderr)
    assert.are.equal("usage", r.err and r.err.kind, r.stderr)
    assert.truthy(r.err.detail:find(option, 1, true), r.err.detail)
    assert.truthy(r.err.detail:find(why, 1, true), r.err.detail)
    assert.are.same({}, emu.requests(acct))
  end

  it("reads no more than 5 MB of a file without end", function()
    refused({ "call", "create_list", "--body", "@/dev/zero" }, "--body", "more than " .. MAX .. " bytes")
    refused({ "track", "Viewed", "email=a@example.com", "--properties", "@/dev/zero" }, "--properties",
      "more than " .. MAX .. " bytes")
    refused({ "call", "get_lists", "--key-file", "/dev/zero", env = {} }, "--key-file",
      "more than " .. MAX .. " bytes")
  end)

  it("reads no more than 5 MB of standard input", function()
    refused({ "call", "create_list", "--body", "-", stdin = string.rep(" ", MAX + 1) }, "--body",
      "more than " .. MAX .. " bytes")
  end)

  it("names a directory given as a file", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir " .. C.quote(dir)))
    refused({ "call", "create_list", "--body", "@" .. dir }, "--body", "Is a directory")
    refused({ "call", "get_lists", "--key-file", dir, env = {} }, "--key-file", "Is a directory")
    os.execute("rmdir " .. C.quote(dir))
  end)

  it("takes a body of exactly 5 MB from a file", function()
    local body = '{"data":{"type":"list","attributes":{"name":"Big"}}}'
    local path = tmpfile(body .. string.rep(" ", MAX - #body))
    local r = run { "call", "create_list", "--body", "@" .. path, "--dry-run", BASE, env = env }
    os.remove(path)
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("POST", r.doc.method)
  end)
end)
