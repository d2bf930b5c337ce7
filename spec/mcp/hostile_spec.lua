-- The MCP server as a child process (spec/mcp/support.lua) under hostile input and hostile
-- answers: every request gets exactly one well-formed answer, whatever it or Klaviyo held.
local emulator = require "helpers.emulator"
local cjson = require("cjson").new()
local M = require "mcp.support"

local start, call = M.start, M.call

describe("klaviyo.mcp under hostile input", function()
  local acct
  setup(function() acct = emulator.account() end)

  it("answers a result it cannot write as JSON with a tool error saying why, and serves on", function()
    -- a profile whose properties nest deeper than the encoder writes
    local deep = string.rep('{"a":', 150) .. "1" .. string.rep("}", 150)
    local status = emulator.api(acct, "POST", "/api/profiles", { body =
      '{"data":{"type":"profile","attributes":{"email":"deep@example.com","properties":' .. deep .. "}}}" })
    assert.equal(201, status)
    local s = start(acct)
    local r = call(s, 1, "get_profile", { email = "deep@example.com" })
    assert.is_true(r.result.isError)
    assert.is_string(r.result.content[1].text)
    assert.matches("could not be encoded", r.result.content[1].text, 1, true)
    assert.matches("max_depth", r.result.content[1].text, 1, true)
    s.ping(2)
    s.close()
  end)

  it("answers a request whose id cannot be written back with -32600 and id null", function()
    local s = start(acct)
    -- infinity once decoded, and a string that is not UTF-8
    for i, id in ipairs({ "1e400", "-1e400", '"\255"' }) do
      s.send('{"jsonrpc":"2.0","id":' .. id .. ',"method":"ping"}')
      s.send('{"jsonrpc":"2.0","id":' .. i .. ',"method":"ping"}')
      local r = s.recv()
      assert.equal(cjson.null, r.id)
      assert.equal(-32600, r.error and r.error.code)
      assert.equal(i, s.recv().id)
    end
    s.close()
  end)
end)
