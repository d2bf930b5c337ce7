-- The libcurl transport's proxy option, through a small forward/CONNECT proxy on loopback
-- (spec/net/proxy_server.lua in a child process): a proxy the caller names is used even for a
-- loopback target, plain http is forwarded and https is tunnelled with CONNECT.
local N = require "net.support"
local klaviyo = require "klaviyo"

describe("proxy option", function()
  local proxy
  after_each(function() if proxy then proxy.stop() proxy = nil end end)

  it("forwards plain-http requests to a loopback target through the named proxy", function()
    proxy = N.proxy()
    local acct = N.emu.account()
    local c = assert(klaviyo.new { api_key = acct.private_key, base_url = N.emu.url, proxy = proxy.url,
                                   transport = "curl" })
    local doc, err = c:call("get_lists", {})
    assert.is_table(doc, err and err.message)
    local lines = proxy.lines()
    assert.equal(1, #lines)
    assert.equal("GET " .. N.emu.url .. "/api/lists HTTP/1.1", lines[1])
    c:close()
  end)

  it("tunnels https with CONNECT", function()
    proxy = N.proxy()
    local pki = N.pki()
    local server = N.tls_server(pki)
    local c = assert(klaviyo.new { api_key = "pk_spec_proxy_key", proxy = proxy.url, ca_file = pki.ca,
                                   base_url = "https://localhost:" .. server.port, transport = "curl",
                                   retry = { attempts = 1 } })
    local ok, err = c:call("get_lists", {})
    server.stop()
    pki.remove()
    assert.is_nil(ok)
    assert.equal("decode", err.kind, err.message)   -- s_server's HTML page came back over TLS
    assert.same({ ("CONNECT localhost:%d HTTP/1.1"):format(server.port) }, proxy.lines())
  end)

  it("is refused unless it is a proxy URL", function()
    local ok, err = klaviyo.new { api_key = "pk_x", proxy = "127.0.0.1:3128" }
    assert.is_nil(ok)
    assert.equal("invalid_option", err.code)
    assert.matches("proxy must be an http://", err.message, 1, true)
  end)
end)
