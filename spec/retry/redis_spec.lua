-- The limiter store in Redis, chosen by klaviyo.new's options, against a redis-server this
-- spec starts (and the emulator).
local S = require "retry.support"
local emu = S.emu

describe("limiter store in Redis", function()
  local port, stop
  setup(function() port, stop = S.redis() end)
  teardown(function() if stop then stop() end end)

  it("is used with limiter = {store = \"redis\", url = ...}", function()
    local acct = emu.account()
    local c = S.client({ limiter = { store = "redis", url = "redis://127.0.0.1:" .. port,
                                     prefix = "spec-a:" } }, acct)
    assert(c:call("get_lists", {}))
    local keys = S.redis_cmd(port, "KEYS", "spec-a:*")
    assert.is_true(#keys >= 1)
    for _, k in ipairs(keys) do
      assert.truthy(k:find("/get_lists", 1, true))
      assert.falsy(k:find(acct.private_key, 1, true)) -- never the key itself
    end
    c:close()
  end)

  it("shares one account's limit between clients (as between processes)", function()
    local acct = emu.account()
    emu.limits({ get_lists = { burst = 1, steady = 100 } }, acct)
    local opts = { limiter = { store = "redis", url = "redis://127.0.0.1:" .. port, prefix = "spec-b:" },
                   limits = { get_lists = { burst = 1 } }, retry = { attempts = 1 } }
    local a, b = S.client(opts, acct), S.client(opts, acct)
    for _ = 1, 2 do
      assert(a:call("get_lists", {}))
      assert(b:call("get_lists", {}))
    end
    assert.equal(0, S.count_status(acct, "get_lists", 429))
    assert.is_true(a:stats().get_lists.waited + b:stats().get_lists.waited >= 2)
    a:close()
    b:close()
  end)

  it("refuses to send when Redis is unreachable, and says so", function()
    local dead = S.free_port()
    local c, acct = S.client { limiter = { store = "redis", url = "redis://127.0.0.1:" .. dead } }
    local ok, err = c:call("get_lists", {})
    assert.is_nil(ok)
    assert.equal("refused", err.kind)
    assert.equal("limiter_unavailable", err.code)
    assert.matches("unreachable", err.detail)
    assert.equal(0, #S.requests(acct, "get_lists"))
    assert.equal(1, c:stats().get_lists.errors["refused:limiter_unavailable"])
    c:close()
  end)

  it("rejects a malformed URL and a store that needs nginx", function()
    local ok, err = S.klaviyo.new { base_url = emu.url, api_key = "pk_x",
      limiter = { store = "redis", url = "http://nope" } }
    assert.is_nil(ok)
    assert.matches("redis", tostring(err))
    assert.has_error(function()
      S.klaviyo.new { base_url = emu.url, api_key = "pk_x", transport = "curl",
        limiter = { store = "shdict", dict = "x" } }
    end, 'klaviyo.new: option limiter (store "shdict") needs transport "ngx"')
  end)
end)
