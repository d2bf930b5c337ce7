-- Four processes share one installation through a file store while its access token keeps
-- expiring (2 s lifetime, rotated refresh tokens): the store's lock makes exactly one refresh
-- per expiry (the emulator counts them), the others reuse its token, and no call fails (a
-- second refresh with the rotated-away refresh token would get invalid_grant).
local S = require "oauth.support"
local oauth, emu = S.oauth, S.emu

local interpreter = require("helpers.process").interpreter

describe("OAuth file store across processes", function()
  it("four processes make one refresh per expiry and no call fails", function()
    local acct, tokens = S.install { rotate = true, access_token_ttl = 2 }
    emu.limits({ get_profiles = "off" }, acct)
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    local path = dir .. "/tokens.json"
    oauth.stores.file(path, tokens)
    local f = io.popen("ls -l " .. path)
    assert.matches("^%-rw%-%-%-%-%-%-%-", f:read("*a"))   -- 0600
    f:close()
    local cmd = {}
    for i = 1, 4 do
      cmd[#cmd + 1] = ("LUA_PATH='lua/?.lua;lua/?/init.lua;;' %s spec/oauth/hammer_child.lua %s %s %s %s 5"
        .. " > %s/out%d &"):format(interpreter(), emu.url, path, acct.client_id, acct.client_secret, dir, i)
    end
    assert(os.execute("cd " .. emu.root .. " && " .. table.concat(cmd, " ") .. " wait"))
    local all, total = {}, 0
    for i = 1, 4 do
      local out = assert(io.open(dir .. "/out" .. i)):read("*a")
      local ok, fail, toks = out:match("ok=(%d+) fail=(%d+) tokens=(%S*)")
      assert.is_string(ok, out)
      assert.equal("0", fail, out)
      total = total + tonumber(ok)
      for h in toks:gmatch("[^,]+") do all[h] = true end
    end
    local distinct = 0
    for _ in pairs(all) do distinct = distinct + 1 end
    local refreshes = S.refreshes(acct)
    -- 5 s, a token good for 1 s before the margin: at most one refresh a second
    assert.is_true(refreshes >= 3 and refreshes <= 6, "refreshes: " .. refreshes)
    assert.equal(distinct - 1, refreshes)   -- one refresh per token generation
    assert.is_true(total > 100)
    os.execute("rm -rf " .. dir)
  end)
end)
