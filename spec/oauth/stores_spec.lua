-- The token stores when their medium fails: a store that could not keep the tokens says so
-- (set answers nil, err) and still holds the tokens it had.
local oauth = require "klaviyo.oauth"
local P = require "helpers.process"

describe("klaviyo.oauth file store", function()
  local dir, path
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. P.quote(dir)))
    path = dir .. "/tokens.json"
  end)
  after_each(function() os.execute("rm -rf " .. P.quote(dir)) end)

  -- store_set_child.lua writing `access` to the store, under a file size limit of `kib` KiB
  -- (none when nil): what it printed.
  local function child_set(access, kib)
    local limit = kib and ("trap '' XFSZ; ulimit -f " .. kib .. "; ") or ""
    return P.sh(("%s%s %s %s %s %s %s 2>&1"):format(limit, P.interpreter(),
      P.quote(P.root .. "/spec/oauth/store_set_child.lua"), P.quote(P.root), P.quote(P.build_dir()),
      P.quote(path), P.quote(access)))
  end

  it("a write that fails (file size limit) answers nil, err and keeps the old file", function()
    local s = oauth.stores.file(path, { access_token = "at_old", refresh_token = "rt_old", expires_at = 1 })
    assert.equal("ok\n", child_set("at_child"))   -- the child itself writes without a limit
    assert.equal("at_child", s:get().access_token)
    local out = child_set("at_" .. string.rep("x", 4000), 1)
    assert.matches("^failed: ", out)
    local t = s:get()
    assert.is_table(t, "the store's file was replaced by a truncated one")
    assert.equal("at_child", t.access_token)
    local left = P.sh("ls -A " .. P.quote(dir))
    assert.equal("tokens.json\n", (left:gsub("tokens%.json%.lock\n", "")), "no temporary file left")
  end)
end)
