-- Shared by spec/net/*_spec.lua: every string inside a result (to look for secrets in), a
-- loopback proxy child (proxy_server.lua), a CA made for the test with openssl in a temp dir,
-- and `openssl s_server` with a certificate it signed. Not a spec itself.
local P = require "helpers.process"
local emu = require "helpers.emulator"

local M = { emu = emu }
local q = P.quote

local function run(cmd)
  local r = os.execute(cmd .. " >/dev/null 2>&1")
  assert(r == true or r == 0, "failed: " .. cmd)
end

-- Every string inside v (keys and values, nested), appended to out.
function M.strings(v, out)
  if type(v) == "table" then
    for k, x in pairs(v) do M.strings(k, out) M.strings(x, out) end
  elseif v ~= nil then
    out[#out + 1] = tostring(v)
  end
  return out
end

-- The proxy: .url, .lines() (request lines it read, oldest first), .stop().
function M.proxy()
  local port, log = emu.free_port(), os.tmpname()
  local pid = P.spawn(("%s %s %d %s"):format(P.interpreter(), q(P.root .. "/spec/net/proxy_server.lua"),
    port, q(log)))
  P.wait_port(port)
  local p = { url = "http://127.0.0.1:" .. port }
  function p.lines()
    local out, f = {}, io.open(log, "rb")
    for line in f:lines() do if line ~= "ready" then out[#out + 1] = line end end
    f:close()
    return out
  end
  function p.stop() os.execute("kill " .. pid) os.remove(log) end
  return p
end

-- A CA, a server certificate for DNS name "localhost" and a client certificate, in a temp dir.
function M.pki()
  local dir = os.tmpname()
  os.remove(dir)
  run("mkdir -p " .. q(dir))
  local function path(n) return dir .. "/" .. n end
  local key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
  run(("cd %s && openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=spec-ca")
    :format(q(dir), key))
  for _, who in ipairs({ "server", "client" }) do
    run(("cd %s && openssl req %s -keyout %s.key -out %s.csr -subj /CN=%s"):format(q(dir), key, who, who,
      who == "server" and "localhost" or "spec-client"))
    local ext = who == "server" and "subjectAltName=DNS:localhost" or "extendedKeyUsage=clientAuth"
    run(("cd %s && printf '%%s\\n' %s > %s.ext && openssl x509 -req -in %s.csr -CA ca.pem -CAkey ca.key " ..
      "-CAcreateserial -out %s.pem -days 2 -extfile %s.ext"):format(q(dir), q(ext), who, who, who, who))
  end
  return { dir = dir, ca = path("ca.pem"), cert = path("server.pem"), key = path("server.key"),
           client_cert = path("client.pem"), client_key = path("client.key"),
           remove = function() os.execute("rm -rf " .. q(dir)) end }
end

-- `openssl s_server -www` on loopback with pki's server certificate; verify_client: a client
-- certificate signed by the CA is required. .port, .stop().
function M.tls_server(pki, verify_client)
  local port = emu.free_port()
  local pid = P.spawn(("exec openssl s_server -accept 127.0.0.1:%d -cert %s -key %s -www -quiet%s")
    :format(port, q(pki.cert), q(pki.key), verify_client and (" -Verify 1 -CAfile " .. q(pki.ca)) or ""))
  P.wait_port(port)
  return { port = port, stop = function() os.execute("kill " .. pid) end }
end

return M
