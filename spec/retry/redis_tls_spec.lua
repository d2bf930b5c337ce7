-- The limiter's Redis store over TLS (rediss://), against redis-servers this spec starts with
-- TLS on loopback. Inside nginx (lua-resty-redis) the server is verified against
-- lua_ssl_trusted_certificate: the test bed's /call-trusted location trusts the test bed's
-- own certificate, which one server uses; the other uses a certificate from a CA this spec
-- makes, which nginx does not trust. The C store (hiredis) refuses rediss:// at klaviyo.new.
local S = require "retry.support"
local T = require "ngx.support"
local emu = S.emu

local function sh(cmd) return os.execute("(" .. cmd .. ") >/dev/null 2>&1") end
local function ok(r) return r == true or r == 0 end

-- Starts redis-server on a free port with TLS only, the given certificate and key: port, stop.
local function tls_redis(dir, cert, key)
  local port = S.free_port()
  local pidfile = ("%s/redis-%d.pid"):format(dir, port)
  assert(ok(sh(("redis-server --port 0 --tls-port %d --bind 127.0.0.1 --tls-cert-file %s " ..
    "--tls-key-file %s --tls-ca-cert-file %s --tls-auth-clients no --save '' --appendonly no " ..
    "--daemonize yes --dir %s --logfile '' --pidfile %s"):format(port, cert, key, cert, dir, pidfile))))
  local sock
  for _ = 1, 250 do
    sock = S.socket.tcp()
    sock:settimeout(0.2)
    local up = sock:connect("127.0.0.1", port)
    sock:close()
    if up then break end
    S.socket.sleep(0.02)
  end
  return port, function()
    sh(("kill $(cat %s)"):format(pidfile))
    os.remove(pidfile)
  end
end

describe("limiter store over TLS (rediss://)", function()
  local dir, tls, good, stop_good, wrong, stop_wrong

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(ok(sh("mkdir -p " .. dir)))
    -- Debian's redis-server is built with TLS (linked with libssl)
    if not ok(sh("ldd $(readlink -f $(command -v redis-server)) | grep -q libssl")) then
      print("redis_tls_spec: skipped, this redis-server is built without TLS")
      return
    end
    tls = true
    T.start()
    local tb = ("%s/klaviyo-ngx-%d/tls"):format(os.getenv("TMPDIR") or "/tmp", T.port)
    good, stop_good = tls_redis(dir, tb .. "/cert.pem", tb .. "/key.pem")
    -- a CA nginx does not trust, and a certificate for 127.0.0.1 it signed
    assert(ok(sh(("cd %s && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=spec-ca " ..
      "-keyout ca.key -out ca.pem && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 " ..
      "-keyout srv.key -out srv.csr && printf 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1' > ext && " ..
      "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 " ..
      "-extfile ext -out srv.pem"):format(dir))))
    wrong, stop_wrong = tls_redis(dir, dir .. "/srv.pem", dir .. "/srv.key")
  end)

  teardown(function()
    if stop_good then stop_good() end
    if stop_wrong then stop_wrong() end
    if tls then T.stop() end
    if dir then sh("rm -rf " .. dir) end
  end)

  local function in_nginx(port, location)
    local acct = emu.account()
    local limiter = { store = "redis", url = "rediss://127.0.0.1:" .. port, prefix = "tls:" }
    local _, r = T.call1(T.opts(acct, nil, { limiter = limiter, retry = { attempts = 1 } }),
      "get_lists", {}, location)
    return r, acct
  end

  -- First: a connection verified in /call-trusted goes back to the pool that /call would use.
  it("nginx refuses a server signed by a CA it does not trust, and sends nothing", function()
    if not tls then return end
    for _, case in ipairs({ { wrong, "/call-trusted" }, { good, "/call" } }) do
      local r, acct = in_nginx(case[1], case[2])
      assert.equal("refused", r.err.kind)
      assert.matches("TLS handshake failed", r.err.detail)
      assert.equal(0, #S.requests(acct, "get_lists"))
    end
  end)

  it("nginx reaches a server whose certificate it trusts", function()
    if not tls then return end
    local r, acct = in_nginx(good, "/call-trusted")
    assert.is_nil(r.err, T.cjson.encode(r.err or {}))
    assert.equal(1, #S.requests(acct, "get_lists"))
    local keys = io.popen(("redis-cli --tls --cacert %s/klaviyo-ngx-%d/tls/cert.pem -p %d KEYS 'tls:*'")
      :format(os.getenv("TMPDIR") or "/tmp", T.port, good)):read("*a")
    assert.matches("/get_lists", keys)   -- the limiter's keys went over TLS
  end)

  it("the C store refuses rediss:// at klaviyo.new rather than speak plain text", function()
    if not tls then return end
    local c, err = S.klaviyo.new { base_url = emu.url, api_key = "pk_x",
      limiter = { store = "redis", url = "rediss://127.0.0.1:" .. good } }
    assert.is_nil(c)
    assert.matches("rediss:// %(TLS%) is not supported", tostring(err))
  end)
end)
