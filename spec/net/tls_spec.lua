-- The libcurl transport's TLS options against `openssl s_server` on loopback with a CA made
-- for the test: peers are verified by default, ca_file/ca_path trust the test's CA, a wrong
-- host name is refused, and client_cert/client_key are presented when the server asks.
-- s_server -www answers any GET with an HTML page: a call that got through TLS fails to decode
-- (kind "decode", status 200); one refused by TLS fails with code "tls_failed".
local N = require "net.support"
local klaviyo = require "klaviyo"

local pki
local function client(port, opts, host)
  local o = { base_url = ("https://%s:%d"):format(host or "localhost", port), api_key = "pk_spec_tls_key",
              retry = { attempts = 1 }, transport = "curl" }
  for k, v in pairs(opts or {}) do o[k] = v end
  return assert(klaviyo.new(o))
end

describe("TLS options", function()
  local server
  setup(function() pki = N.pki() end)
  teardown(function() pki.remove() end)
  after_each(function() if server then server.stop() server = nil end end)

  it("verify the server by default: a CA the system does not know is refused", function()
    server = N.tls_server(pki)
    local ok, err = client(server.port):call("get_lists", {})
    assert.is_nil(ok)
    assert.equal("tls_failed", err.code)
  end)

  it("trust the CA in ca_file", function()
    server = N.tls_server(pki)
    local ok, err = client(server.port, { ca_file = pki.ca }):call("get_lists", {})
    assert.is_nil(ok)
    assert.equal("decode", err.kind, tostring(err.message))
    assert.equal(200, err.status)
  end)

  it("trust the CA in a hashed ca_path directory", function()
    server = N.tls_server(pki)
    assert(os.execute(("openssl rehash %s >/dev/null 2>&1 || c_rehash %s >/dev/null 2>&1")
      :format(pki.dir, pki.dir)))
    local ok, err = client(server.port, { ca_path = pki.dir }):call("get_lists", {})
    assert.is_nil(ok)
    assert.equal("decode", err.kind, tostring(err.message))
  end)

  it("refuse a certificate for another host name", function()
    server = N.tls_server(pki)
    local ok, err = client(server.port, { ca_file = pki.ca }, "127.0.0.1"):call("get_lists", {})
    assert.is_nil(ok)
    assert.equal("tls_failed", err.code)
  end)

  it("present client_cert and client_key when the server asks for one", function()
    server = N.tls_server(pki, true)
    local ok, err = client(server.port, { ca_file = pki.ca }):call("get_lists", {})
    assert.is_nil(ok)
    assert.equal("transport", err.kind)   -- the server refuses the handshake without one
    ok, err = client(server.port, { ca_file = pki.ca, client_cert = pki.client_cert,
                                    client_key = pki.client_key }):call("get_lists", {})
    assert.is_nil(ok)
    assert.equal("decode", err.kind, tostring(err.message))
    assert.equal(200, err.status)
  end)

  it("are checked at klaviyo.new", function()
    local ok, err = klaviyo.new { api_key = "pk_x", ca_file = "a file\nwith a newline" }
    assert.is_nil(ok)
    assert.equal("invalid_option", err.code)
    assert.matches("ca_file", err.message)
    ok, err = klaviyo.new { api_key = "pk_x", client_key = "/tmp/k.pem" }
    assert.is_nil(ok)
    assert.matches("client_key needs client_cert", err.message)
    ok, err = klaviyo.new { api_key = "pk_x", ca_path = "dir\0x" }
    assert.is_nil(ok)
    assert.matches("ca_path", err.message)
    assert.has_error(function() klaviyo.new { api_key = "pk_x", ca_file = 1 } end,
      "klaviyo.new: option ca_file must be a string, got number")
  end)
end)
