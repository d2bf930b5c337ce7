-- Hostile answers and careless callers at the binding's edge (src/lua_klaviyo.c): answers that
-- must become Lua values without overflowing the Lua stack or raising, and strings and numbers
-- that must not reach C cut short or wrapped around.  Against the emulator and a loopback
-- server the spec starts itself.
local emu = require "helpers.emulator"
local core = require "klaviyo.core"
local klaviyo = require "klaviyo"

-- A server on a loopback port, in a process of its own, that answers `n` connections with
-- the bytes `raw` (whatever the request was).  Returns its base URL.
local SERVER = [[
local socket = require "socket"
local portfile, respfile, n = arg[1], arg[2], tonumber(arg[3])
local f = assert(io.open(respfile, "rb")); local resp = f:read("*a"); f:close()
local s = assert(socket.bind("127.0.0.1", 0)); s:settimeout(20)
local _, port = s:getsockname()
local pf = assert(io.open(portfile .. ".tmp", "w")); pf:write(port); pf:close()
os.rename(portfile .. ".tmp", portfile)
for _ = 1, n do
  local c = s:accept(); if not c then break end
  c:settimeout(5)
  local len = 0
  repeat
    local l = c:receive("*l")
    if l and l:lower():match("^content%-length:") then len = tonumber(l:match(":%s*(%d+)")) end
  until not l or l == ""
  if len > 0 then c:receive(len) end
  c:send(resp); c:close()
end
os.remove(respfile)
]]

local function write(path, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(bytes)
  f:close()
end

local function serve(raw, n)
  local script, resp, portfile = os.tmpname(), os.tmpname(), os.tmpname()
  os.remove(portfile)
  write(script, SERVER)
  write(resp, raw)
  os.execute(("lua5.4 %s %s %s %d >/dev/null 2>&1 &"):format(script, portfile, resp, n or 1))
  local port
  for _ = 1, 500 do
    local f = io.open(portfile)
    if f then port = f:read("*a"); f:close(); break end
    require("socket").sleep(0.01)
  end
  os.remove(portfile)
  os.remove(script)
  assert(port, "the loopback server did not start")
  return "http://127.0.0.1:" .. port
end

-- "{"a":" n times, 1, "}" n times
local function nested(n)
  return ("{\"a\":"):rep(n) .. "1" .. ("}"):rep(n)
end

local function depth_of(t)
  local d = 0
  while type(t) == "table" do t, d = t.a, d + 1 end
  return d, t
end

describe("klaviyo.core with hostile answers", function()
  local acct, c
  before_each(function()
    acct = emu.account()
    c = assert(core.new { base_url = emu.url, api_key = acct.private_key })
  end)
  after_each(function()
    emu.faults(nil)
    c:close()
  end)

  it("turns an errors[0].meta nested 60 objects deep into the error table", function()
    emu.faults { { operation = "get_lists", status = 400, count = 1,
      body = '{"errors":[{"code":"invalid","detail":"deep","meta":' .. nested(60) .. '}]}' } }
    -- in a new coroutine, whose Lua stack starts small (the spec runner's own is grown deep)
    local res, err = coroutine.wrap(function()
      return c:request { operation = "get_lists", method = "GET", path = "/api/lists" }
    end)()
    assert.is_nil(res)
    assert.equal("http", err.kind)
    assert.equal(400, err.status)
    assert.equal("invalid", err.code)
    local d, leaf = depth_of(err.meta)
    assert.equal(60, d)
    assert.equal(1, leaf)
    collectgarbage()
    -- the client and the Lua state are sound afterwards
    assert(c:request { operation = "get_lists", method = "GET", path = "/api/lists" })
  end)

  it("turns a deep meta into Lua values through c:interpret (other transports) and c:batch", function()
    local body = '{"errors":[{"code":"invalid","meta":{"x":[' .. nested(58) .. ']}}]}'
    local res, err = coroutine.wrap(function()
      return c:interpret(422, { ["content-type"] = "application/vnd.api+json" }, body, "op")
    end)()
    assert.is_nil(res)
    assert.equal(59, depth_of(err.meta.x[1]) + 1)
    emu.faults { { operation = "get_lists", status = 400, count = 2,
      body = '{"errors":[{"code":"invalid","meta":' .. nested(61) .. '}]}' } }
    local out = coroutine.wrap(function()
      return c:batch({ { operation = "get_lists", method = "GET", path = "/api/lists" },
                       { operation = "get_lists", method = "GET", path = "/api/lists" } }, 2)
    end)()
    for i = 1, 2 do
      assert.is_false(out[i][1])
      assert.equal(61, (depth_of(out[i][2].meta)))
    end
  end)

  it("answers nil, err for a response header line of 200 KB (libcurl's limit), never raises", function()
    local url = serve("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n" ..
      "X-Big: " .. ("a"):rep(200 * 1024) .. "\r\n\r\n{}")
    local cc = assert(core.new { base_url = url, api_key = "pk_test", retry_attempts = 1 })
    local ok, res, err = pcall(cc.request, cc, { operation = "get_lists", method = "GET",
                                                 path = "/api/lists" })
    cc:close()
    assert.is_true(ok, tostring(res))
    assert.is_nil(res)
    assert.equal("transport", err.kind)
    assert.equal("response_too_large", err.code)
    assert.is_true(err.sent)
    assert.matches("header", err.message)
  end)

  it("gives client:call nil, err too for an oversized header", function()
    local url = serve("HTTP/1.1 202 Accepted\r\nX-Big: " .. ("b"):rep(150 * 1024) .. "\r\n\r\n", 1)
    local k = assert(klaviyo.new { base_url = url, api_key = "pk_test", retry = { attempts = 1 } })
    local ok, res, err = pcall(k.call, k, "get_lists")
    assert.is_true(ok, tostring(res))
    assert.is_nil(res)
    assert.equal("response_too_large", err.code)
  end)
end)

describe("klaviyo.core refuses what C would cut short or wrap around", function()
  local acct, c, k
  before_each(function()
    acct = emu.account()
    c = assert(core.new { base_url = emu.url, api_key = acct.private_key, public_key = acct.public_key })
    k = assert(klaviyo.new { base_url = emu.url, api_key = acct.private_key, public_key = acct.public_key })
  end)
  after_each(function() c:close() end)

  local function nothing_sent()
    assert.same({}, emu.requests(acct))
  end

  -- call raises (a programmer error) with a message matching `want`, and sends nothing
  local function refused(op, params, want)
    local ok, msg = pcall(k.call, k, op, params)
    assert.is_false(ok, op .. " was not refused")
    assert.matches(want, tostring(msg))
    nothing_sent()
  end

  -- c:build raises on `req` with a message matching `want`
  local function raises(req, want)
    local ok, msg = pcall(c.build, c, req)
    assert.is_false(ok)
    assert.matches(want, msg)
  end

  it("refuses a NUL byte in path and query values, filters, list items and header parameters", function()
    refused("get_profile", { id = "01AB\0C" }, "get_profile: parameter id: holds a NUL byte")
    refused("get_profiles", { ["page[cursor]"] = "abc\0def" },
      "parameter page%[cursor%]: holds a NUL byte")
    refused("get_profiles", { filter = 'equals(email,"a@example.com\0x")' },
      "parameter filter: holds a NUL byte")
    refused("get_profiles", { ["fields[profile]"] = { "email", "first\0name" } },
      "parameter fields%[profile%]: item 2 holds a NUL byte")
    refused("get_profiles", { ["fields[profile]"] = "email,first\0name" },
      "parameter fields%[profile%]: holds a NUL byte")
    refused("get_client_geofences", { ["X-Klaviyo-API-Filters"] = "a\0b" },
      "parameter X%-Klaviyo%-API%-Filters: holds a NUL byte")
    refused("get_profiles", { revision = "2026-07-15\0.pre" }, "request field revision holds a NUL byte")
  end)

  -- as a CR or LF in them is: nil, err of kind "refused" naming the option, nothing sent
  it("refuses a NUL byte in every string option and in a new access token, naming it", function()
    local good = { base_url = emu.url, api_key = acct.private_key }
    for _, name in ipairs { "api_key", "revision", "user_agent", "base_url", "public_key", "account" } do
      local o = {}
      for key, v in pairs(good) do o[key] = v end
      o[name] = (o[name] or "x") .. "\0tail"
      local client, err = klaviyo.new(o)
      assert.is_nil(client, name)
      assert.equal("refused", err.kind, name)
      assert.matches(name .. " holds a NUL byte", tostring(err))
    end
    local client, err = core.new { api_key = "pk_\0" }
    assert.is_nil(client)
    assert.same({ "refused", "invalid_credential", "api_key holds a NUL byte" },
      { err.kind, err.code, err.detail })
    local ok
    ok, err = c:set_access_token("tok\0en")
    assert.is_nil(ok)
    assert.same({ "refused", "access_token holds a NUL byte" }, { err.kind, err.detail })
    nothing_sent()
  end)

  it("refuses NUL bytes in a request table's fields and c:interpret's headers", function()
    raises({ method = "GET", path = "/api/lists\0/x" }, "request field path holds a NUL byte")
    raises({ method = "GET\0", path = "/api/lists" }, "request field method holds a NUL byte")
    raises({ method = "GET", url = emu.url .. "/api/lists\0" }, "request field url holds a NUL byte")
    raises({ method = "GET", path = "/api/lists", query = { { "a\0b", "1" } } },
      "query%[1%]%[1%] %(name%) holds a NUL")
    raises({ operation = "get_profile", method = "GET", path = "/api/profiles/{id}",
             path_params = { "a\0" } },
      "get_profile: path parameter id holds a NUL byte")
    local ok, msg = pcall(c.interpret, c, 200, { ["x-a"] = "b\0c" }, "{}")
    assert.is_false(ok)
    assert.matches("NUL", msg)
  end)

  it("refuses numbers outside the 64-bit range, NaN and infinities as path and query values", function()
    for _, v in ipairs { 2 ^ 63, -2 ^ 63 * 2, 1e300 } do
      refused("get_profile", { id = v }, "get_profile: parameter id: is outside the 64%-bit integer range")
      refused("get_profiles", { ["page[size]"] = v }, "parameter page%[size%]: is outside the 64%-bit")
      refused("get_profiles", { ["page[cursor]"] = v }, "parameter page%[cursor%]: is outside the 64%-bit")
      refused("get_profiles", { ["fields[profile]"] = { "email", v } }, "item 2: is outside the 64%-bit")
    end
    for _, v in ipairs { 0 / 0, 1 / 0, -1 / 0 } do
      refused("get_profile", { id = v }, "parameter id: is NaN or infinite")
      refused("get_profiles", { ["page[size]"] = v }, "parameter page%[size%]: is NaN or infinite")
    end
    refused("get_profile", { id = 1.5 }, "parameter id: expected a string or an integer, got 1.5")
    -- the largest integers go out exactly, on every interpreter
    local b = assert(c:build { method = "GET", path = "/api/profiles/{id}", path_params = { 2 ^ 62 } })
    assert.equal(emu.url .. "/api/profiles/4611686018427387904", b.url)
    b = assert(c:build { method = "GET", path = "/api/profiles/{id}", path_params = { -2 ^ 63 } })
    assert.equal(emu.url .. "/api/profiles/-9223372036854775808", b.url)
  end)

  it("checks numbers handed to the core directly: integers in a path, finite numbers in a query", function()
    local P = "/api/profiles/{id}"
    raises({ operation = "get_profile", method = "GET", path = P, path_params = { 2 ^ 63 } },
      "get_profile: path parameter id is outside the 64%-bit integer range")
    raises({ operation = "get_profile", method = "GET", path = P, path_params = { 1.5 } },
      "get_profile: path parameter id must be an integer")
    raises({ operation = "get_profiles", method = "GET", path = "/api/profiles",
             query = { { "page[size]", 0 / 0 } } },
      "get_profiles: query parameter page%[size%] is NaN or infinite")
    raises({ method = "GET", path = "/api/profiles", query = { { "fields[profile]", { "a", 1 / 0 } } } },
      "query parameter fields%[profile%]: item 2 is NaN or infinite")
    raises({ method = "GET", path = "/api/profiles", headers = { { "X-A", -1e300 } } },
      "header X%-A is outside the 64%-bit integer range")
    -- a fraction is written exactly in a query (a number there may be one), integers as digits
    local b = assert(c:build { method = "GET", path = "/api/profiles",
      query = { { "a", 0.1 }, { "b", 1e15 }, { "c", 2 ^ 53 + 2 }, { "d", -7 } } })
    assert.equal(emu.url .. "/api/profiles?a=0.1&b=1000000000000000&c=9007199254740994&d=-7", b.url)
  end)

  it("answers nil, err for invalid UTF-8 in an event or profile, as for other bad data", function()
    local who = { email = "a@example.com" }
    local cases = {
      { "metric", { metric = "Bad\255Name", profile = who }, "/metric" },
      { "service", { metric = "Ok", service = "\192\128", profile = who }, "/service" },
      { "profile", { metric = "Ok", profile = { email = "a@example.com", first_name = "\237\160\128" } },
        "/profile/first_name" },
      { "property", { metric = "Ok", profile = who, properties = { x = { "\244\144" } } },
        "/properties/x/0" },
      { "key", { metric = "Ok", profile = who, properties = { ["k\255"] = 1 } }, "/properties/k" },
    }
    for _, case in ipairs(cases) do
      local ok, uid, err = pcall(k.events.create, k.events, case[2])
      assert.is_true(ok, case[1] .. ": raised " .. tostring(uid))
      assert.is_nil(uid, case[1])
      assert.equal("refused", err.kind, case[1])
      assert.matches("UTF%-8", err.detail, 1, false, case[1])
      assert.equal(case[3], err.pointer:sub(1, #case[3]), case[1])
    end
    local ok, p, err = pcall(k.profiles.create, k.profiles, { email = "a@example.com", last_name = "\255" })
    assert.is_true(ok, tostring(p))
    assert.is_nil(p)
    assert.equal("refused", err.kind)
    nothing_sent()
    -- valid multi-byte text still goes out
    assert(k.events:create { metric = "Caf\195\169 \240\159\152\128", profile = { email = "a@example.com" } })
  end)

  it("answers nil, err for invalid UTF-8 in a list or flow name", function()
    local cases = {
      { "lists:create", function() return k.lists:create { name = "VIP\255" } end },
      { "lists:update", function() return k.lists:update("LIST1", { name = "\192\128" }) end },
      { "flows:create", function()
        return k.flows:create { name = "Bad\237\160\128", trigger = { metric = "M1" } }
      end },
    }
    for _, case in ipairs(cases) do
      local ok, res, err = pcall(case[2])
      assert.is_true(ok, case[1] .. ": raised " .. tostring(res))
      assert.is_nil(res, case[1])
      assert.equal("refused", err.kind, case[1])
      assert.matches("UTF%-8", err.detail, 1, false, case[1])
      assert.equal("/name", err.pointer, case[1])
    end
    nothing_sent()
  end)
end)
