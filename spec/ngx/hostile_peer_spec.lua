-- The ngx transport and its Redis limiter store against a hostile peer (spec/ngx/hostile_peer.lua,
-- a loopback process this spec starts), inside nginx through the test bed's /call location,
-- each case compared with what the curl transport gives for the same answer.
local T = require "ngx.support"
local P = require "helpers.process"
local portfile = require "helpers.portfile"

local function hex(s) return (s:gsub(".", function(ch) return string.format("%02x", ch:byte()) end)) end
-- a piece of a Redis answer the peer repeats n times (spec/ngx/hostile_peer.lua)
local function times(s, n) return hex(s) .. "x" .. n end

local ONCE = { retry = { attempts = 1 } }

describe("ngx transport against a hostile peer", function()
  local port, acct
  setup(function()
    T.start()
    local file = os.tmpname()
    os.remove(file)
    P.spawn(("%s %s %s %s"):format(P.interpreter(), P.quote(P.root .. "/spec/ngx/hostile_peer.lua"),
      P.quote(file), P.my_pid()))
    port = assert(portfile.wait(file, 5), "the hostile peer did not start")
    os.remove(file)
  end)
  teardown(function() T.stop() end)
  before_each(function() acct = T.emu.account() end)

  -- Client options for both transports: the emulator as the API, the peer as Redis answering
  -- the limiter script as the store's prefix says (spec/ngx/hostile_peer.lua).
  local function redis_opts(prefix, transport)
    return T.opts(acct, nil, { transport = transport, retry = ONCE.retry, limiter = {
      store = "redis", url = "redis://127.0.0.1:" .. port, prefix = prefix } })
  end

  describe("a Redis store answering what is not RESP", function()
    -- held: the peer keeps the connection open after its answer, so only refusing the answer
    -- from what has arrived ends the call
    local replies = {
      { "a bulk length that is not a number", "$abc\r\n" },
      { "an empty bulk length", "$\r\n" },
      { "an array length that is not a number", "*x\r\n" },
      { "an array of a thousand million items", "*1000000000\r\n", held = true },
      { "a string of a thousand million bytes", "$1000000000\r\n", held = true },
      { "a string of 64 KB", pieces = { hex("$65536\r\n"), times("x", 65536), hex("\r\n") } },
      { "sixteen arrays of sixteen items",
        pieces = { hex("*16\r\n"), times("*16\r\n" .. (":1\r\n"):rep(16), 16) } },
      -- the ngx store (lua-resty-redis) reads a line until it ends: its timeout refuses this one
      { "a line that never ends", pieces = { hex("+"), times("x", 100000) }, slow_ngx = true },
      { "an item whose bulk length is not a number", "*3\r\n:1\r\n$zz\r\n" },
      { "arrays nested a hundred thousand deep", prefix = "d=100000:" },
    }
    for _, case in ipairs(replies) do
      local name = case[1]
      local prefix = case.prefix or case.pieces and "w=" .. table.concat(case.pieces, ".") .. ":" or
        (case.held and "w=" or "r=") .. hex(case[2]) .. ":"
      it(name .. ": refused at once, nothing sent, nothing raised (as with curl)", function()
        for _, transport in ipairs({ "ngx", "curl" }) do
          local t0 = require("socket").gettime()
          local out = T.call(redis_opts(prefix, transport), { { "get_lists", {} } })
          local took = require("socket").gettime() - t0
          assert.is_nil(out.raised, transport .. " raised: " .. tostring(out.raised))
          local e = out.results[1].err
          assert.is_table(e, transport .. ": " .. T.cjson.encode(out))
          assert.equal("refused", e.kind, transport .. ": " .. T.cjson.encode(e))
          assert.equal("limiter_unavailable", e.code, transport .. ": " .. T.cjson.encode(e))
          -- the store's own timeout is 1 s: an answer refused only by it took longer
          if not (case.slow_ngx and transport == "ngx") then
            assert.is_true(took < 0.5, transport .. " took " .. took .. " s: " .. T.cjson.encode(e))
          end
        end
        assert.equal(0, #T.emu.requests(acct, "get_lists"))
      end)
    end
  end)

  -- The peer answers every request with `answer` and closes the connection: a connection the
  -- transport pooled anyway fails the next request, a POST that was never acted on.
  describe("keepalive after an answer whose server closes", function()
    local BODY = '{"data":[]}'
    local function answer(headers)
      return "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.api+json\r\n" .. headers ..
        "Content-Length: " .. #BODY .. "\r\n\r\n" .. BODY
    end
    local profile = { body = { data = { type = "profile", attributes = { email = "pool@example.com" } } } }
    local cases = {
      { "Connection: close, then Connection: keep-alive",
        answer("Connection: close\r\nConnection: keep-alive\r\n") },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. ": the connection is not pooled (as with curl)", function()
        for _, transport in ipairs({ "ngx", "curl" }) do
          local out = T.call({ base_url = "http://127.0.0.1:" .. port .. "/" .. hex(case[2]),
                               api_key = "pk_hostile0123456789abcdef", transport = transport,
                               retry = ONCE.retry },
                             { { "get_profiles", {} }, { "create_profile", profile } })
          assert.is_nil(out.raised, transport .. " raised: " .. tostring(out.raised))
          for i = 1, 2 do
            assert.is_nil(out.results[i].err, transport .. " call " .. i .. ": " .. T.cjson.encode(out))
          end
        end
      end)
    end
  end)

  -- Each case: {name, answer, "ok" | fields the error must have}, the same for both transports.
  local function same_as_curl(cases)
    for _, case in ipairs(cases) do
      it(case[1] .. " (as with curl)", function()
        for _, transport in ipairs({ "ngx", "curl" }) do
          local out = T.call({ base_url = "http://127.0.0.1:" .. port .. "/" .. hex(case[2]),
                               api_key = "pk_hostile0123456789abcdef", transport = transport,
                               retry = ONCE.retry }, { { "get_profiles", {} } })
          assert.is_nil(out.raised, transport .. " raised: " .. tostring(out.raised))
          local r, what = out.results[1], transport .. ": " .. T.cjson.encode(out)
          if case[3] == "ok" then
            assert.is_nil(r.err, what)
          else
            assert.is_table(r.err, what)
            for k, v in pairs(case[3]) do assert.equal(v, r.err[k], what) end
          end
        end
      end)
    end
  end
  local HEAD = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.api+json\r\n"
  local BAD_ENCODING = { kind = "transport", code = "bad_encoding" }

  describe("a repeated list header says what all its copies say", function()
    same_as_curl {
      { "Content-Encoding: gzip, then Content-Encoding: identity, the body not gzip",
        HEAD .. "Content-Encoding: gzip\r\nContent-Encoding: identity\r\nContent-Length: 11\r\n\r\n" ..
        '{"data":[]}', BAD_ENCODING },
      { "Transfer-Encoding: chunked, then Transfer-Encoding: identity",
        HEAD .. "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n" ..
        'b\r\n{"data":[]}\r\n0\r\n\r\n', "ok" },
    }
  end)

  -- the ngx transport decodes no coding: one it would have to is refused, never framed by a
  -- Content-Length that the Transfer-Encoding overrides
  describe("codings", function()
    same_as_curl {
      { "an empty Content-Encoding", HEAD .. "Content-Encoding: \r\nContent-Length: 11\r\n\r\n" ..
        '{"data":[]}', "ok" },
      { "Transfer-Encoding: gzip with a Content-Length, the body not gzip",
        HEAD .. "Transfer-Encoding: gzip\r\nContent-Length: 11\r\n\r\n" .. '{"data":[]}', BAD_ENCODING },
      { "Transfer-Encoding: gzip, chunked, the chunks not gzip",
        HEAD .. "Transfer-Encoding: gzip, chunked\r\n\r\n" .. 'b\r\n{"data":[]}\r\n0\r\n\r\n',
        BAD_ENCODING },
    }
  end)

  -- The answer `head` (its status and header lines, interim answers included) then a small
  -- body: both transports refuse it as too large.
  local function too_large_on_both(head)
    local url = "http://127.0.0.1:" .. port .. "/" .. hex(head .. "Content-Length: 11\r\n\r\n" ..
      '{"data":[]}')
    for _, transport in ipairs({ "ngx", "curl" }) do
      local out = T.call({ base_url = url, api_key = "pk_hostile0123456789abcdef", transport = transport,
                           retry = ONCE.retry }, { { "get_profiles", {} } })
      local e, what = out.results[1].err, transport .. ": " .. T.cjson.encode(out):sub(1, 300)
      assert.is_table(e, what)
      assert.equal("transport", e.kind, what)
      assert.equal("response_too_large", e.code, what)
    end
  end

  it("a header block over 300 KB in short lines: too large (as with curl)", function()
    local lines = {}
    for i = 1, 45000 do lines[i] = "X-A: b\r\n" end   -- 6 bytes a line, 8 with its CRLF
    too_large_on_both(HEAD .. table.concat(lines))
  end)

  it("interim answers over 300 KB before the final one: too large (as with curl)", function()
    too_large_on_both(("HTTP/1.1 102 Processing\r\n\r\n"):rep(15000) .. HEAD)
  end)

  it("a TLS handshake never answered: connect_timeout within the connect timeout (as with curl)", function()
    for _, transport in ipairs({ "ngx", "curl" }) do
      local t0 = require("socket").gettime()
      local out = T.call({ base_url = "https://127.0.0.1:" .. port, api_key = "pk_hostile0123456789abcdef",
                           transport = transport, retry = ONCE.retry, connect_timeout = 0.5, timeout = 4 },
                         { { "get_profiles", {} } })
      local took = require("socket").gettime() - t0
      local what = transport .. ": " .. T.cjson.encode(out)
      local e = out.results[1].err
      assert.is_table(e, what)
      assert.equal("transport", e.kind, what)
      assert.equal("connect_timeout", e.code, what)
      assert.is_false(e.sent, what)
      assert.is_true(took < 2, what .. " took " .. took .. " s")
    end
  end)
end)
