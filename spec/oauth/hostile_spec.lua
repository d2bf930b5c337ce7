-- OAuth token calls go through the library's own request path: against a hostile loopback
-- server (spec/hostile/server.lua) they fail within the timeout with the transport's error
-- kind, and a server that echoes the app's secret does not put it in the error.
local S = require "hostile.support"
local oauth = require "klaviyo.oauth"
local klaviyo = require "klaviyo"
local socket = require "socket"

local SECRET = "cs_hostile_secret_0123456789"

local function case(name)
  for _, c in ipairs(S.catalogue) do if c.name == name then return c end end
  error("no hostile case " .. name)
end

local function creds(url, extra)
  local o = { client_id = "cid_hostile", client_secret = SECRET, base_url = url,
              refresh_token = "rt_hostile" }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

-- Every string reachable from an error, headers and body included.
local function texts(v, out, seen)
  out, seen = out or {}, seen or {}
  if type(v) == "string" then out[#out + 1] = v
  elseif type(v) == "table" and not seen[v] then
    seen[v] = true
    for k, x in pairs(v) do texts(k, out, seen); texts(x, out, seen) end
    local ok, s = pcall(tostring, v)
    if ok then out[#out + 1] = s end
  end
  return out
end

describe("klaviyo.oauth token calls against a hostile server", function()
  local url
  setup(function() url = S.start() end)
  teardown(function() S.stop() end)

  -- A refresh with `timeout` against the hostile case `name`, which must fail as a transport
  -- error: the error and the seconds it took.
  local function refresh_fails(name, timeout)
    S.play(case(name))
    local t0 = socket.gettime()
    local t, err = oauth.refresh(creds(url, { timeout = timeout }))
    assert.is_nil(t)
    assert.equal("transport", err.kind)
    return err, socket.gettime() - t0
  end

  it("a body over the core's cap fails as a transport error, not read whole", function()
    local err, took = refresh_fails("body over the cap with Content-Length", 10)
    assert.equal("response_too_large", err.code)
    assert.equal("oauth_refresh", err.operation)
    assert.is_true(took < 10, "within the timeout")
  end)

  it("a body dripped past the timeout fails within the timeout", function()
    local err, took = refresh_fails("body dripped past the timeout", 1)
    assert.equal("timeout", err.code)
    assert.is_true(took < 3, "within the timeout")
  end)

  it("a client's refresh goes through its own core: its timeout and error kinds", function()
    S.play(case("body dripped past the timeout"))
    local store = oauth.stores.memory { access_token = "at_old", refresh_token = "rt_hostile",
                                        expires_at = 0 }
    local c = assert(klaviyo.new { base_url = url, timeout = 1, limiter = false,
      oauth = { client_id = "cid_hostile", client_secret = SECRET, tokens = store } })
    local t0 = socket.gettime()
    local ok, err = c:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal("transport", err.kind)
    assert.equal("timeout", err.code)
    assert.equal("oauth_refresh", err.operation)
    assert.is_true(socket.gettime() - t0 < 3, "within the client's timeout")
    c:close()
  end)
end)

describe("klaviyo.oauth and a server that echoes the app's secret", function()
  local port, stop
  setup(function() port, stop = require("oauth.loopback").start("echo_server.lua", SECRET) end)
  teardown(function() stop() end)

  it("no error holds the client secret, plain or in the Basic credential", function()
    local url = "http://127.0.0.1:" .. port
    local basic = require("mime").b64("cid_hostile:" .. SECRET)
    local calls = {
      function() return oauth.refresh(creds(url)) end,
      function()
        return oauth.exchange(creds(url, { code = "c", verifier = string.rep("v", 43),
                                           redirect_uri = "https://x/cb" }))
      end,
      function() return oauth.revoke(creds(url, { token = "t" })) end,
    }
    for i, call in ipairs(calls) do
      local r, err = call()
      assert.is_nil(r, "call " .. i)
      assert.equal("oauth", err.kind)
      assert.equal(401, err.status)
      assert.equal("invalid_client", err.code)
      assert.truthy(err.detail:find("[redacted]", 1, true), err.detail)   -- the echo came back
      for _, s in ipairs(texts(err)) do
        assert.is_nil(s:find(SECRET, 1, true), s)
        assert.is_nil(s:find(basic, 1, true), s)
      end
    end
  end)
end)

describe("klaviyo.oauth token calls refused locally", function()
  it("a client secret is never sent over plain http to a remote host", function()
    local t, err = oauth.refresh(creds("http://example.com"))
    assert.is_nil(t)
    assert.is_true(require("klaviyo.errors").is_error(err))
    assert.equal("refused", err.kind)
    assert.equal("insecure_transport", err.code)
    assert.equal("oauth_refresh", err.operation)
    assert.is_nil(tostring(err):find(SECRET, 1, true))
  end)
end)

describe("klaviyo.oauth token calls inside nginx against a hostile server", function()
  local http = require "socket.http"
  local cjson = require "cjson.safe"
  local n, url

  setup(function()
    url = S.start()
    n = require("helpers.nginx").start([[
  server {
    listen 127.0.0.1:@PORT@;
    location = /refresh { content_by_lua_block { require("oauth.ngx_refresh").refresh() } }
  }
]])
  end)
  teardown(function()
    S.stop()
    n.remove()
  end)

  -- A refresh inside nginx with `timeout` against the hostile case `name`, which must fail
  -- through one cosocket call as a transport error, nothing raised: what nginx reported.
  local function refresh_fails(name, timeout)
    S.play(case(name))
    local body
    for _ = 1, 50 do
      body = http.request(string.format("%s/refresh?url=%s&timeout=%d&secret=%s",
        n.url, url, timeout, SECRET))
      if body then break end
      socket.sleep(0.1)
    end
    local r = assert(cjson.decode(body or ""), tostring(body))
    assert.is_nil(r.raised)
    assert.equal(1, r.ngx_calls)
    assert.equal("transport", r.kind)
    return r
  end

  it("a body dripped past the timeout: cosockets, transport timeout, within the timeout", function()
    local r = refresh_fails("body dripped past the timeout", 1)
    assert.equal("timeout", r.code)
    assert.is_true(r.elapsed < 3, "elapsed " .. r.elapsed)
    assert.is_nil(r.text:find(SECRET, 1, true))
  end)

  it("a body over the core's cap: cosockets, response_too_large", function()
    local r = refresh_fails("body over the cap with Content-Length", 10)
    assert.equal("response_too_large", r.code)
    assert.is_true(r.elapsed < 10, "elapsed " .. r.elapsed)
  end)
end)
