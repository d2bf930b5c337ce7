-- err.sent tells whether any byte of the request may have reached the server (the retry
-- policy repeats a request that may have been sent only when repeating it is safe): false
-- only when no connection was made or nothing was written. Hostile servers here are loopback
-- processes (spec/client/loopback_server.lua) that read the request and then misbehave.
local L = require "client.loopback"
local emu = require "helpers.emulator"
local klaviyo = require "klaviyo"

-- retries quick, so the specs that count attempts do not wait
local FAST = { attempts = 3, base = 0.01, cap = 0.02 }

local function client(url, retry)
  return assert(klaviyo.new { base_url = url, api_key = "pk_sent_spec_0123456789", retry = retry or FAST })
end

local function profile()
  return { body = { data = { type = "profile", attributes = { email = "sent@example.com" } } } }
end

describe("err.sent", function()
  local server
  after_each(function()
    if server then server.stop() server = nil end
  end)

  it("is false when the connection was refused", function()
    local c = client("http://127.0.0.1:" .. emu.free_port())
    local doc, err = c:call("create_profile", profile())
    c:close()
    assert.is_nil(doc)
    assert.equal("transport", err.kind)
    assert.equal("connect_failed", err.code)
    assert.is_false(err.sent)
  end)

  -- create_profile, tried once, against a loopback server in `mode`
  local function create_once(mode)
    server = L.server(mode)
    local c = client(server.url, { attempts = 1 })
    local doc, err = c:call("create_profile", profile())
    c:close()
    return doc, err
  end

  it("is true when the server read the request and closed without answering", function()
    local doc, err = create_once("close")
    assert.is_nil(doc)
    assert.equal("transport", err.kind)
    assert.is_true(err.sent)
    assert.equal(1, #server.requests())
  end)

  it("is true when the server read a POST and answered garbage (not HTTP)", function()
    local doc, err = create_once("garbage")
    assert.is_nil(doc)
    assert.equal("transport", err.kind)
    assert.is_true(err.sent, tostring(err))
    local reqs = server.requests()
    assert.equal(1, #reqs)
    assert.matches("^POST /api/profiles", reqs[1])
    assert.matches("sent@example%.com", reqs[1])
  end)

  it("keeps a POST that may have been sent from being repeated, and repeats a safe one", function()
    server = L.server("close")
    local c = client(server.url)
    local _, err = c:call("create_profile", profile())
    assert.is_true(err.sent)
    assert.equal(1, #server.requests(), "create_profile is not safe to repeat once it may have arrived")
    local _, gerr = c:call("get_profiles", {})
    c:close()
    assert.is_true(gerr.sent)
    assert.equal(1 + FAST.attempts, #server.requests(), "get_profiles is repeated")
  end)
end)
