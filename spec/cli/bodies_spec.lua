-- The `klaviyo` command and the body check: `describe` prints the body's shape from the
-- generated checks, and `call` refuses a body Klaviyo would refuse with exit code 3 and
-- nothing sent, unless --no-validate.
local C = require "cli.support"
local S = require "client.support"
local emu = C.emu
local run = C.run

local BASE = "--base-url=" .. emu.url

describe("klaviyo (the command) and request bodies", function()
  it("describe prints the body's shape: members, types, enums, formats, required", function()
    local r = run { "describe", "create_event" }
    assert.are.equal(0, r.code)
    local out = r.stdout
    assert.truthy(out:find("body shape (members, types, required):", 1, true))
    assert.truthy(out:find('\n%s+type: "metric" %(required%)\n'), out)
    assert.truthy(out:find("\n%s+time: date%-time or null\n"), out)
    assert.truthy(out:find("phone_number: string, E.164 or null", 1, true), out)
    local l = run { "describe", "add_profiles_to_list" }
    assert.truthy(l.stdout:find("data: array of object (required)", 1, true), l.stdout)
  end)

  it("call refuses a body Klaviyo would refuse, nothing sent; --no-validate sends it", function()
    local acct = emu.account()
    local env = { KLAVIYO_API_KEY = acct.private_key }
    local body = '{"data":{"type":"list","attributes":{}}}'
    local mark = S.mark()
    local r = run { "call", "create_list", "--body", "-", BASE, env = env, stdin = body }
    assert.are.equal(3, r.code, r.stderr)
    assert.are.equal("refused", r.err.kind)
    assert.are.equal("/data/attributes/name", r.err.pointer)
    assert.same({}, S.since(mark))
    r = run { "call", "create_list", "--body", "-", "--no-validate", BASE, env = env, stdin = body }
    assert.are.equal(4, r.code, r.stderr)
    assert.are.equal(400, r.err.status)
    assert.are.equal(1, #S.since(mark))
  end)
end)
