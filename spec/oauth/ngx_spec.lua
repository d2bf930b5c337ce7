-- Eight nginx workers share one installation through a lua_shared_dict store (and then a
-- Redis store) while its
-- access token keeps expiring (2 s lifetime, rotated refresh tokens): the dict's lock makes
-- exactly one refresh per expiry (the emulator counts them), the other workers reuse its
-- token, and no call fails.
local S = require "oauth.support"
local socket = require "socket"
local http = require "socket.http"
local cjson = require "cjson.safe"
local emu = S.emu
local R = require "retry.support"
local nginx = require "helpers.nginx"

local NGX = [[
  lua_shared_dict oauth 1m;
  init_worker_by_lua_block { require("oauth.ngx_app").init_worker(%q, %q, %q, %q, 5, %s) }
  server {
    listen 127.0.0.1:@PORT@;
    location = /results { content_by_lua_block { require("oauth.ngx_app").results() } }
  }
]]

local function hammer(redis_port)
    local acct, tokens = S.install { rotate = true, access_token_ttl = 2 }
    emu.limits({ get_profiles = "off" }, acct)
    local n = nginx.start(NGX:format(emu.url, acct.client_id, acct.client_secret, cjson.encode(tokens),
      tostring(redis_port)), { workers = 8 })
    local ok, err = pcall(function()
      local results
      for _ = 1, 150 do
        socket.sleep(0.1)
        local body = http.request(n.url .. "/results")
        results = body and cjson.decode(body)
        if results and #results == 8 then break end
      end
      assert.equal(8, results and #results or 0, n.log():sub(-4000))
      local all, distinct, total = {}, 0, 0
      for _, r in ipairs(results) do
        assert.equal(0, r.fail, cjson.encode(r))
        total = total + r.ok
        for _, h in ipairs(r.tokens) do
          if not all[h] then all[h] = true; distinct = distinct + 1 end
        end
      end
      local refreshes = S.refreshes(acct)
      -- 5 s, a token good for 1 s before the margin: at most one refresh a second
      assert.is_true(refreshes >= 3 and refreshes <= 6, "refreshes: " .. refreshes)
      assert.equal(distinct - 1, refreshes)   -- one refresh per token generation
      assert.is_true(total > 200)
      local log = n.log()
      for _, secret in ipairs({ acct.client_secret, tokens.access_token, tokens.refresh_token }) do
        assert.is_nil(log:find(secret, 1, true))
      end
    end)
    n.remove()
    assert(ok, err)
end

describe("OAuth stores across eight nginx workers", function()
  it("shared dict: one refresh per expiry and no call fails", function() hammer(nil) end)

  it("redis: one refresh per expiry and no call fails", function()
    local port, stop = R.redis()
    local ok, err = pcall(hammer, port)
    stop()
    assert(ok, err)
  end)
end)

describe("OAuth redis store inside nginx", function()
  -- Two stores of one key in two databases of one Redis: a pooled connection SELECTed for
  -- one must never serve the other.
  it("redis: stores in other databases never share a pooled connection", function()
    local port, stop = R.redis()
    local n = nginx.start(([[
  server {
    listen 127.0.0.1:@PORT@;
    location = /stores { content_by_lua_block {
      local stores = require("klaviyo.oauth").stores
      local a = stores.redis { port = %d, db = 0, key = "same", initial = { access_token = "zero" } }
      local b = stores.redis { port = %d, db = 1, key = "same", initial = { access_token = "one" } }
      local ta, tb = a:get(), b:get()
      ngx.say(ta and ta.access_token, " ", tb and tb.access_token)
    } }
  }
]]):format(port, port), { workers = 1 })
    local body = http.request(n.url .. "/stores")
    n.remove()
    stop()
    assert.equal("zero one\n", body)
  end)
end)
