-- Runs every use-case example (examples/*.lua but quickstart, which the client specs own)
-- against the emulator as a user would: a separate process, exit status 0, and the lines
-- that show the use case worked.
local emu = require "helpers.emulator"

-- The interpreter running busted: examples run under the same one.
local interpreter = require("helpers.process").interpreter

local ROOT = emu.root

local function run(name, args)
  local cmd = ("cd %q && env -u KLAVIYO_API_KEY KLAVIYO_BASE_URL=%q LUA_PATH=%q LUA_CPATH=%q " ..
    "%s examples/%s.lua %s 2>&1"):format(ROOT, emu.url, package.path, package.cpath,
    interpreter(), name, args or "")
  local f = io.popen(cmd)
  local out = f:read("*a")
  local ok, _, code = f:close()
  if type(ok) == "number" then code = ok end -- Lua 5.1: close returns the status
  if ok == true then code = 0 end
  return out, code
end

describe("examples", function()
  it("abandoned_cart: the flow starts once for a sent-twice event", function()
    local out, code = run("abandoned_cart")
    assert.equal(0, code, out)
    assert.matches("flow runs%s+1 for", out)
    assert.matches("refused locally", out)
  end)

  it("post_purchase: Placed Order with items and value, Ordered Product in bulk", function()
    local out, code = run("post_purchase")
    assert.equal(0, code, out)
    assert.matches("108%.50 EUR, 3 items", out)
    assert.matches("3 events in 1 bulk job", out)
    assert.matches("after a resend%s+1 Placed Order", out)
  end)

  it("back_in_stock_sms: refuses without consent, subscribes with it, alert requested", function()
    local out, code = run("back_in_stock_sms")
    assert.equal(0, code, out)
    assert.matches("E%.164", out)
    assert.matches("opt%-in record", out)
    assert.matches("sms consent%s+SUBSCRIBED", out)
    assert.matches("alert requested", out)
    assert.matches("sms consent%s+UNSUBSCRIBED", out)
  end)

  it("crm_list_sync: thousands of profiles into a list, then removals in chunks", function()
    local out, code = run("crm_list_sync", "2500")
    assert.equal(0, code, out)
    assert.matches("2500 rows in 1 job", out)
    assert.matches("members%s+2500", out)
    assert.matches("removed%s+833; 1667 members remain", out)
  end)
end)
