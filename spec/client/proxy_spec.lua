-- Credentials never go through a proxy the caller did not name. libcurl reads http_proxy,
-- HTTP_PROXY (lowercase only for http), https_proxy, ALL_PROXY from the environment by
-- itself; a plain-http or loopback target (the emulator, tests) must ignore them, or the
-- proxy reads `Authorization: Klaviyo-API-Key ...` in clear. A child process runs the client
-- with every such variable pointing at a loopback proxy that records what reaches it.
-- An https target may still use an environment proxy: libcurl tunnels it with CONNECT, so
-- the proxy sees the host name and the key stays inside TLS (spec/c/test_transport.c shows
-- the CONNECT). The ngx transport needs no such rule: cosockets connect to the host they are
-- given and read no proxy from anywhere (and nginx workers do not inherit the environment).
local L = require "client.loopback"
local P = require "helpers.process"
local S = require "client.support"

local PROXY_VARS = { "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy" }

describe("environment proxies", function()
  local proxy
  after_each(function()
    if proxy then proxy.stop() proxy = nil end
  end)

  it("are ignored for a loopback target: the emulator gets every request, the proxy none", function()
    proxy = L.server("proxy")
    local acct = S.emu.account()
    local env = { NO_PROXY = false, no_proxy = false }
    for _, name in ipairs(PROXY_VARS) do env[name] = proxy.url end
    local out = P.child("client/proxy_child.lua", env, { S.emu.url, acct.private_key })
    assert.same({}, proxy.requests(), "the proxy saw a request")
    assert.matches("get_profiles ok\n", out, 1, true)
    assert.matches("create_profile ok\ncreate_profile ok\n", out, 1, true)
    assert.matches("page ok\npage ok\n", out, 1, true)
    assert.matches("plain_remote insecure_transport\n", out, 1, true)
    local ops = {}
    for _, r in ipairs(S.emu.requests(acct)) do ops[r.operation] = (ops[r.operation] or 0) + 1 end
    assert.equal(2, ops.create_profile, out)
    assert.is_true((ops.get_profiles or 0) >= 3, out)
  end)

  it("are ignored whichever one variable is set", function()
    proxy = L.server("proxy")
    local acct = S.emu.account()
    for _, name in ipairs(PROXY_VARS) do
      local env = { [name] = proxy.url, NO_PROXY = false, no_proxy = false }
      local out = P.child("client/proxy_child.lua", env, { S.emu.url, acct.private_key })
      assert.matches("get_profiles ok\n", out, 1, true)
      assert.same({}, proxy.requests(), name .. " sent a request to the proxy")
    end
  end)
end)
