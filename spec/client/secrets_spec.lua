-- The key/path rule holds for every URL the client sends to, links.next included, read as the
-- most lenient server would read it: a private key never reaches a /client/ path however the
-- path is written (repeated slashes, dot segments, percent-encoded letters, slashes or dots),
-- and nothing at all is sent for such a URL. Klaviyo's paths are case-sensitive, but the rule
-- ignores case (/CLIENT/ is refused too), so no server or proxy that folds case gets the key.
-- The emulator routes paths as nginx reads them (//client/x is /client/x), as Klaviyo's front
-- would: the first test shows the danger is real.
local S = require "client.support"
local L = require "client.loopback"
local socket = require "socket"
local cjson = require "cjson.safe"

local emu = S.emu

-- Paths a hostile links.next (or a careless caller) could name, and the refusal each gets.
local HOSTILE = {
  { "//client/profiles", "private_key_to_client" },
  { "///client/profiles", "private_key_to_client" },
  { "/%63lient/profiles", "private_key_to_client" },
  { "/client%2Fprofiles", "private_key_to_client" },
  { "/client%2fprofiles", "private_key_to_client" },
  { "/%2Fclient/profiles", "private_key_to_client" },
  { "/CLIENT/profiles?x=1", "private_key_to_client" },
  { "/api/../client/profiles", "invalid_path" },
  { "/api/%2e%2e/client/profiles", "invalid_path" },
  { "/api/%2E%2E/client/profiles", "invalid_path" },
  { "/api/..%2Fclient/profiles", "invalid_path" },
  { "/./client/profiles", "invalid_path" },
}

-- One raw request (exact request-target), the emulator's status line.
local function raw_get(target, auth)
  local c = assert(socket.connect("127.0.0.1", tonumber(emu.url:match(":(%d+)$"))))
  c:settimeout(5)
  c:send("GET " .. target .. " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: " .. auth ..
    "\r\nrevision: " .. emu.REVISION .. "\r\nConnection: close\r\n\r\n")
  local line = c:receive("*l")
  c:close()
  return line
end

-- A page of one profile whose links.next is `next_url`.
local function page(next_url)
  return assert(cjson.encode { data = { { type = "profile", id = "P1", attributes = {} } },
                               links = { self = "x", next = next_url } })
end

-- A refusal with `code`, one line naming the operation and the path, never the key.
local function check_refusal(err, code, key, path)
  assert.is_table(err)
  assert.equal("refused", err.kind)
  assert.equal(code, err.code)
  local line = tostring(S.klaviyo.errors.wrap(err))
  assert.is_nil(line:find(key, 1, true))
  assert.matches("get_profiles", line, 1, true)
  local shown = ": " .. path:match("^[^?]*")
  assert.equal(shown, err.detail:sub(-#shown))
end

describe("the key/path rule on hostile URLs", function()
  local client, acct
  setup(function() client, acct = S.client(nil, { retry = { attempts = 1 } }) end)
  teardown(function() emu.faults(nil); client:close() end)

  it("is needed: the emulator, like an nginx front, routes //client/x and its kin to /client/x", function()
    for _, target in ipairs({ "//client/geofences", "/%63lient/geofences", "/client%2Fgeofences",
                              "/api/../client/geofences", "/api/%2e%2e/client/geofences" }) do
      local mark = S.mark()
      local line = raw_get(target, "Klaviyo-API-Key pk_route_probe")
      assert.matches("^HTTP/1%.1 401", line, nil, target)
      local recs = S.since(mark)
      assert.equal(1, #recs, target)
      assert.matches("client", recs[1].operation, 1, true, target)
    end
  end)

  it("refuses each through c:request{url = ...}, with nothing sent", function()
    local mark = S.mark()
    for _, case in ipairs(HOSTILE) do
      local res, err = client.core:request { operation = "get_profiles", method = "GET",
                                             url = emu.url .. case[1] }
      assert.is_nil(res, case[1])
      check_refusal(err, case[2], acct.private_key, case[1])
    end
    assert.same({}, S.since(mark))
    assert.same({}, emu.requests(acct))
  end)

  it("refuses each as a links.next from a loopback server: one request reaches it, no more", function()
    for _, case in ipairs(HOSTILE) do
      local base = "http://127.0.0.1:" .. emu.free_port()
      local server = L.server("page", page(base .. case[1]), base)
      local c = assert(S.klaviyo.new { base_url = server.url, api_key = acct.private_key,
                                       retry = { attempts = 1 } })
      local items = {}
      for item, err in c:paginate("get_profiles", {}) do
        if not item then items.err = err break end
        items[#items + 1] = item.id
      end
      c:close()
      local reqs = server.requests()
      server.stop()
      assert.same({ "P1" }, { items[1] }, case[1])
      check_refusal(items.err, case[2], acct.private_key, case[1])
      assert.equal(1, #reqs, case[1])
      assert.matches("^GET /api/profiles", reqs[1])
    end
  end)

  it("refuses each as a links.next from the emulator (fault injection), nothing sent", function()
    if not S.fault_body_supported() then
      pending("the emulator's fault rules cannot answer a raw body")
      return
    end
    for _, case in ipairs(HOSTILE) do
      local mark = S.mark()
      emu.faults { { operation = "get_profiles", status = 200, body = page(emu.url .. case[1]), count = 1 } }
      local it = client:pages("get_profiles", {})
      local doc = it()
      assert.is_table(doc, case[1])
      local again, err = it()
      assert.is_false(again, case[1])
      check_refusal(err, case[2], acct.private_key, case[1])
      assert.is_nil(it())
      local recs = S.since(mark)
      assert.equal(1, #recs, case[1])
      assert.equal("get_profiles", recs[1].operation)
    end
    emu.faults(nil)
  end)

  it("lets a public key reach a client path written oddly, and refuses it /api/ written oddly", function()
    local pub = S.client("public", { retry = { attempts = 1 } }, acct)
    for _, path in ipairs({ "//api/profiles", "/%61pi/profiles", "/API/profiles" }) do
      local res, err = pub.core:request { operation = "get_profiles", method = "GET", auth = "public",
                                          url = emu.url .. path }
      assert.is_nil(res, path)
      assert.equal("public_key_to_api", err.code)
    end
    pub:close()
  end)
end)

-- The ngx transport builds every request through the same core (c:build), so the same rule
-- holds inside nginx; the test bed's /paginate runs paginate, then pages, over cosockets.
describe("the key/path rule in nginx (ngx transport)", function()
  local T = require "ngx.support"
  setup(function() T.start() end)
  teardown(function() emu.faults(nil); T.stop() end)

  it("refuses a hostile links.next over cosockets, nothing sent", function()
    if not S.fault_body_supported() then
      pending("the emulator's fault rules cannot answer a raw body")
      return
    end
    local acct = emu.account()
    for _, case in ipairs({ HOSTILE[1], HOSTILE[3], HOSTILE[4], HOSTILE[9] }) do
      local mark = S.mark()
      emu.faults { { operation = "get_profiles", status = 200, body = page(emu.url .. case[1]), count = 2 } }
      local status, out = T.request("POST", "/paginate",
        { client = T.opts(acct, nil, { retry = { attempts = 1 } }), op = "get_profiles" })
      assert.equal(200, status)
      assert.is_nil(out.raised)
      assert.same({ "P1" }, out.items)
      assert.equal(case[2], out.err and out.err.code, case[1])
      assert.equal(case[2], out.pages_err and out.pages_err.code, case[1])
      local recs = S.since(mark)
      assert.equal(2, #recs, case[1])
      for _, r in ipairs(recs) do assert.equal("get_profiles", r.operation) end
    end
  end)
end)
