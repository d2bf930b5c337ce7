-- Every limiter store through the same cases, as a user reaches it: klaviyo.new{limiter = ...}
-- against the emulator. The C stores (in-process, Redis through hiredis) run in this process;
-- the nginx stores (shared dict, Redis through lua-resty-redis) run inside the nginx test bed
-- (spec/ngx/support.lua, location /call: one client per request). A case a store cannot meet
-- by its nature (sharing an in-process store, an unavailable shared dict) is not run for it;
-- the shared dict's damaged data is checked with a fake dict in spec/ngx/limiter_shdict_spec.lua.
--
-- The stores' interface. C: kl_limiter_* (src/limiter.c) and kl_redis_* (src/limiter_redis.c).
-- Lua (klaviyo.limiter.shdict, klaviyo.limiter.redis), as the nginx driver calls them:
--   store:acquire(key, limits)  limits {burst=, steady=, daily=}: 0 = go (the send is
--                               recorded), a wait in seconds (> 0, at most a day), or nil, err
--                               (err "locked": ask again in a millisecond)
--   store:block(key, seconds)   a 429's Retry-After, capped at a day: true, or nil, err
--   store:observe(key, limits, remaining, reset)   RateLimit-Remaining/-Reset: a non-nil
--                               value, or nil, err (err "locked": ask again)
-- Each does its step atomically: the C limiter in-process, Redis by one script
-- (klaviyo.limiter.redis_script), the shared dict under a per-key lock.
local S = require "retry.support"
local T = require "ngx.support"
local emu = S.emu

local rport, rstop, hport, hstop

-- The Redis store's options, the same from C and from nginx: the spec's redis-server unless
-- `url` names another.
local function redis_limiter(prefix, url)
  return { store = "redis", url = url or ("redis://127.0.0.1:" .. rport), prefix = prefix }
end

-- Each store: how to name it in klaviyo.new (`prefix` keeps the Redis keys of a case apart),
-- whether it runs inside nginx, whether two clients share it, whether it is reached over
-- the network (so it can be unavailable or answer damaged data).
local STORES = {
  { name = "in-process (C)", limiter = function() return { store = "local" } end },
  { name = "Redis through hiredis (C)", shared = true, redis = true, limiter = redis_limiter },
  { name = "nginx shared dict", ngx = true, shared = true,
    limiter = function() return { store = "shdict", dict = "klaviyo_limits" } end },
  { name = "Redis from nginx", ngx = true, shared = true, redis = true, limiter = redis_limiter },
}

local n = 0
local function prefix()
  n = n + 1
  return ("conf-%d-%d:"):format(os.time(), n)
end

-- An error as plain fields, whichever side made it.
local function plain(err)
  return { kind = err.kind, code = err.code, status = err.status, detail = err.detail,
           retry_after = err.retry_after }
end

-- Runs `calls` ({op, params} each) with one new client of `store`: the results ({ok = true}
-- or {err = {...}}), the seconds taken, and the client's stats (C stores; nil in nginx).
local function run(store, opts, calls)
  local t0 = S.socket.gettime()
  local out, stats = {}, nil
  if store.ngx then
    local doc = T.call(opts, calls)
    assert(doc.raised == nil and doc.new_err == nil, T.cjson.encode(doc))
    for i, r in ipairs(doc.results) do out[i] = r.err and { err = plain(r.err) } or { ok = true } end
  else
    local o = {}
    for k, v in pairs(opts) do o[k] = v end
    local c = assert(S.klaviyo.new(o))
    for i, call in ipairs(calls) do
      local doc, err = c:call(call[1], call[2] or {})
      out[i] = doc and { ok = true } or { err = plain(err) }
    end
    stats = c:stats()
    c:close()
  end
  return out, S.socket.gettime() - t0, stats
end

local function opts_for(acct, limiter, extra)
  local o = { base_url = emu.url, api_key = acct.private_key, limiter = limiter,
              retry = { attempts = 1 } }
  for k, v in pairs(extra or {}) do o[k] = v end
  return o
end

local function calls(k)
  local t = {}
  for i = 1, k do t[i] = { "get_lists", {} } end
  return t
end

-- err is a throttled error whose retry_after is above `low` and at most `high` seconds.
local function assert_throttled(err, low, high)
  assert.equal("throttled", err.kind)
  assert.is_true(err.retry_after > low and err.retry_after <= high, tostring(err.retry_after))
end

-- `k` get_lists calls of `acct` through one new client of `store` on keys of its own, with
-- the options of `extra`: what run answers.
local function run_calls(store, acct, k, extra)
  return run(store, opts_for(acct, store.limiter(prefix()), extra), calls(k))
end

-- Two get_lists calls of a fresh account through `store`, the first answered 429 with
-- Retry-After `retry_after`, which it must report: what run answers, and the account.
local function after_a_429(store, retry_after)
  local acct = emu.account()
  emu.faults { { operation = "get_lists", status = 429, retry_after = retry_after, count = 1 } }
  local res, took, stats = run_calls(store, acct, 2)
  assert.equal(429, res[1].err.status)
  return res, took, stats, acct
end

describe("limiter store conformance", function()
  setup(function()
    T.start()
    rport, rstop = S.redis()
    hport, hstop = S.hostile()
  end)
  teardown(function()
    T.stop()
    if rstop then rstop() end
    if hstop then hstop() end
  end)
  after_each(function() emu.faults(nil) end)

  for _, store in ipairs(STORES) do
    describe(store.name, function()
      it("keeps a burst window: three sends at 1/s, no 429", function()
        local acct = emu.account()
        emu.limits({ get_lists = { burst = 1, steady = 100 } }, acct)
        local res, took, stats = run_calls(store, acct, 3, { limits = { get_lists = { burst = 1 } } })
        for i = 1, 3 do assert.is_true(res[i].ok, T.cjson.encode(res[i])) end
        assert.equal(0, S.count_status(acct, "get_lists", 429))
        assert.is_true(took >= 1.5, "took " .. took .. " s")   -- two waits near 1 s
        if stats then assert.is_true(stats.get_lists.waited >= 1.5) end
      end)

      it("keeps a steady window: a wait past the call's time fails it as throttled", function()
        local acct = emu.account()
        emu.limits({ get_lists = { burst = 100, steady = 2 } }, acct)
        local res, took = run_calls(store, acct, 3,
          { limits = { get_lists = { burst = 100, steady = 2 } }, retry = { attempts = 1, max_time = 5 } })
        assert.is_true(res[1].ok and res[2].ok)
        assert_throttled(res[3].err, 50, 60)
        assert.equal(2, #S.requests(acct, "get_lists"))
        assert.is_true(took < 3, "took " .. took .. " s")
      end)

      it("a 429 blocks the operation until Retry-After (no second 429)", function()
        local res, took, stats, acct = after_a_429(store, 2)
        assert.is_true(res[2].ok, T.cjson.encode(res[2]))   -- waits out the block first
        assert.is_true(took >= 1.9, "took " .. took .. " s")
        if stats then assert.is_true(stats.get_lists.waited >= 1.9) end
        assert.equal(2, #S.requests(acct, "get_lists"))
      end)

      it("caps a 429's block at a day: the next call fails at once, nothing sent", function()
        local res, took, _, acct = after_a_429(store, 1e9)
        assert.equal(86400, res[1].err.retry_after)
        assert_throttled(res[2].err, 86300, 86400)
        assert.equal(1, #S.requests(acct, "get_lists"))
        assert.is_true(took < 3, "took " .. took .. " s")
      end)

      -- The emulator's steady window has a random phase: its reset is anywhere in 60 s.
      it("RateLimit-Remaining and -Reset lower what is left until the reset (no 429)", function()
        local acct = emu.account()
        emu.limits({ get_lists = { burst = 100, steady = 3 } }, acct)
        local other = S.client({ limiter = false }, acct)   -- another process used 2 of the 3
        assert(other:call("get_lists", {}))
        assert(other:call("get_lists", {}))
        other:close()
        local res = run_calls(store, acct, 2,
          { limits = { get_lists = { steady = 3 } }, retry = { attempts = 1, max_time = 2 } })
        assert.is_true(res[1].ok)                  -- answer: Remaining 0 until the reset
        if not res[2].ok then                       -- the reset is further than max_time
          assert_throttled(res[2].err, 0, 60)
          assert.equal(3, #S.requests(acct, "get_lists"))
        end
        assert.equal(0, S.count_status(acct, "get_lists", 429))
      end)

      if store.shared then
        it("is shared by two clients of one account", function()
          local acct = emu.account()
          emu.limits({ get_lists = { burst = 1, steady = 100 } }, acct)
          local o = opts_for(acct, store.limiter(prefix()), { limits = { get_lists = { burst = 1 } } })
          local took, waited = 0, 0
          for _ = 1, 4 do   -- clients a, b, a, b: four sends at 1/s
            local res, t, stats = run(store, o, calls(1))
            assert.is_true(res[1].ok, T.cjson.encode(res[1]))
            took = took + t
            if stats then waited = waited + stats.get_lists.waited end
          end
          assert.equal(0, S.count_status(acct, "get_lists", 429))
          assert.is_true(took >= 2, "took " .. took .. " s")
          if not store.ngx then assert.is_true(waited >= 2) end
        end)
      end

      if store.redis then
        it("refuses to send when the store is unreachable, and says so", function()
          local acct = emu.account()
          local res, _, stats = run(store, opts_for(acct,
            store.limiter(prefix(), "redis://127.0.0.1:" .. S.free_port())), calls(1))
          local err = res[1].err
          assert.equal("refused", err.kind)
          assert.equal("limiter_unavailable", err.code)
          assert.matches("unreachable", err.detail)
          assert.equal(0, #S.requests(acct, "get_lists"))
          if stats then assert.equal(1, stats.get_lists.errors["refused:limiter_unavailable"]) end
        end)

        -- A connection made for one database (authenticated, SELECTed) never serves another:
        -- the same keys in database 1 hold nothing of what database 0's client recorded.
        it("keeps the windows of two databases apart", function()
          local acct = emu.account()
          local p = prefix()
          local extra = { limits = { get_lists = { burst = 100, steady = 1 } },
                          retry = { attempts = 1, max_time = 5 } }
          for _, db in ipairs({ 0, 1 }) do
            local res = run(store, opts_for(acct,
              store.limiter(p, ("redis://127.0.0.1:%d/%d"):format(rport, db)), extra), calls(1))
            assert.is_true(res[1].ok, "database " .. db .. ": " .. T.cjson.encode(res[1]))
          end
          local res = run(store, opts_for(acct,
            store.limiter(p, ("redis://127.0.0.1:%d/1"):format(rport)), extra), calls(1))
          assert_throttled(res[1].err, 50, 60)   -- database 1 did record its own send
        end)

        -- spec/retry/hostile_server.lua answers the wait named in the store's prefix
        for _, wait in ipairs({ "-5", "-5000000", "0", "100000000000000000", "9223372036854775807" }) do
          it("refuses a store answering the damaged wait " .. wait .. " us, no hang", function()
            local o = S.hostile_opts(hport, "ra", "1",
              { limiter = store.limiter("w=" .. wait .. ":", "redis://127.0.0.1:" .. hport) })
            local res, took = run(store, o, calls(1))
            assert.equal("refused", res[1].err.kind)
            assert.matches("impossible wait", res[1].err.detail)
            assert.is_true(took < 3, "took " .. took .. " s")
          end)
        end
      end
    end)
  end
end)
