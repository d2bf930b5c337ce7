-- The ngx transport inside nginx (its own nginx, spec/net/ngx/): hooks see every attempt with
-- credentials redacted, the network options nginx owns are refused at klaviyo.new with what to
-- set instead, and a delivery the tracker's timer could not make is in nginx's error log,
-- without the key.
local N = require "net.support"
local F = require "helpers.files"
local P = require "helpers.process"
local nginx = require "helpers.nginx"
local http = require "socket.http"
local ltn12 = require "ltn12"
local cjson = require "cjson"
local socket = require "socket"

local emu = N.emu
local prefix, url, n
local strings = N.strings

local function post(path, t)
  local body, chunks = t and cjson.encode(t) or "{}", {}
  local _, status = http.request { url = url .. path, method = "POST", sink = ltn12.sink.table(chunks),
    headers = { ["content-length"] = tostring(#body) }, source = ltn12.source.string(body) }
  assert.equal(200, status, table.concat(chunks))
  return cjson.decode(table.concat(chunks))
end


describe("inside nginx", function()
  setup(function()
    -- nginx's resolver: spec/net/dns_server.lua (names under .test only, the rest unanswered)
    local file = os.tmpname()
    os.remove(file)
    P.spawn(("%s %s %s %s"):format(P.interpreter(), P.quote(P.root .. "/spec/net/dns_server.lua"),
      P.quote(file), P.my_pid()))
    local dns_port = assert(require("helpers.portfile").wait(file, 5), "the DNS server did not start")
    os.remove(file)
    local conf = assert(F.read(P.root .. "/spec/net/ngx/nginx.conf.in")):gsub("@DNS_PORT@", dns_port)
    n = nginx.start(conf)
    prefix, url = n.prefix, n.url
  end)
  teardown(function() n.remove() end)
  after_each(function() emu.faults(nil) end)

  it("hooks see every attempt of a retried call, the key redacted", function()
    local acct = emu.account()
    emu.faults { { operation = "get_lists", status = 503, count = 1 } }
    local r = post("/hooks", { base_url = emu.url, api_key = acct.private_key })
    assert.equal("ngx", r.transport)
    assert.is_true(r.ok)
    local kinds, attempts, statuses = {}, {}, {}
    for _, s in ipairs(r.seen) do
      kinds[#kinds + 1] = s[1]
      attempts[#attempts + 1] = s[2].attempt
      if s[1] == "response" then statuses[#statuses + 1] = s[2].status end
      assert.equal("get_lists", s[2].operation)
      assert.equal(emu.url .. "/api/lists", s[2].url)
      assert.equal("[redacted]", s[2].headers.Authorization)
    end
    assert.same({ "request", "response", "request", "response" }, kinds)
    assert.same({ 1, 1, 2, 2 }, attempts)
    assert.same({ 503, 200 }, statuses)
    assert.is_true(r.seen[3][2].waited > 0)
    assert.is_true(r.seen[2][2].duration >= 0)
    for _, s in ipairs(strings(r, {})) do assert.is_nil(s:find(acct.private_key, 1, true), s) end
  end)

  it("a hook that raises does not stop the call, and no token is seen", function()
    local r = post("/hooks", { base_url = emu.url, access_token = "spec-ngx-token-0123", raise = true })
    assert.is_false(r.ok)
    assert.equal(401, r.err.status)
    assert.matches("^on_request: .*hook broke", r.hook_error)
    for _, s in ipairs(strings(r, {})) do assert.is_nil(s:find("spec-ngx-token-0123", 1, true), s) end
  end)

  it("refuses the network options cosockets cannot honour, naming nginx's own", function()
    local r = post("/refuse")
    assert.matches('option proxy is not available with transport "ngx"', r.proxy, 1, true)
    assert.matches("lua_ssl_trusted_certificate", r.ca_file, 1, true)
    assert.matches("lua_ssl_trusted_certificate", r.ca_path, 1, true)
    assert.matches("client certificate", r.client_cert, 1, true)
    assert.matches("client certificate", r.client_key, 1, true)
  end)

  it("reaches a host by name through nginx's resolver, then on its pooled connection", function()
    local acct = emu.account()
    for _ = 1, 2 do
      local r = post("/dns", { base_url = emu.url:gsub("127%.0%.0%.1", "emu.test"),
                               public_key = acct.public_key, timeout = 5 })
      assert.is_true(r.ok, cjson.encode(r))
    end
    local recs = emu.wait_requests(acct, "create_client_event", 2)
    assert.equal(recs[1].connection, recs[2].connection)
  end)

  it("bounds a host name's resolution by the call's timeout, nothing sent", function()
    local acct = emu.account()
    local r = post("/dns", { base_url = "https://a.klaviyo.invalid", public_key = acct.public_key,
                             timeout = 1 })
    assert.is_false(r.ok)
    assert.equal("transport", r.err.kind)
    assert.equal("connect_timeout", r.err.code, r.err.message)
    assert.is_false(r.err.sent)
    assert.is_true(r.elapsed < 2, "took " .. r.elapsed .. " s")
  end)

  it("bounds a Redis store's host name resolution by the store's timeout, nothing sent", function()
    local acct = emu.account()
    local r = post("/dns", { base_url = emu.url, public_key = acct.public_key, timeout = 5,
                             redis_url = "redis://redis.klaviyo.invalid:6379" })
    assert.is_false(r.ok)
    assert.equal("refused", r.err.kind, r.err.text)
    assert.matches("unreachable", r.err.text)
    assert.is_true(r.elapsed < 2.5, "took " .. r.elapsed .. " s")
    assert.equal(0, #emu.requests(acct, "create_client_event"))
  end)

  it("logs a delivery the tracker's timer could not make, without the key", function()
    local key = "pk_spec_timer_secret_0123"
    post("/tracker", { base_url = "http://127.0.0.1:" .. emu.free_port(), api_key = key,
                       spool = prefix .. "/spool" })
    local log, deadline = "", socket.gettime() + 10
    while not log:find("klaviyo tracker: delivery failed", 1, true) do
      assert(socket.gettime() < deadline, "no log line: " .. log)
      socket.sleep(0.05)
      log = n.log()
    end
    assert.matches("1 events kept in the spool", log, 1, true)
    assert.matches("connect", log)
    assert.is_nil(log:find(key, 1, true))
  end)
end)
