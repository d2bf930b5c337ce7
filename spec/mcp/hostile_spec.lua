-- The MCP server as a child process (spec/mcp/support.lua) under hostile input and hostile
-- answers: every request gets exactly one well-formed answer, whatever it or Klaviyo held.
local emulator = require "helpers.emulator"
local cjson = require("cjson").new()
local M = require "mcp.support"

local start, call = M.start, M.call

describe("klaviyo.mcp under hostile input", function()
  local acct
  setup(function() acct = emulator.account() end)
  after_each(function() emulator.faults(nil) end)

  it("shows an answer nested as deep as the decoder reads", function()
    local deep = string.rep('{"a":', 150) .. "1" .. string.rep("}", 150)
    local status = emulator.api(acct, "POST", "/api/profiles", { body =
      '{"data":{"type":"profile","attributes":{"email":"deep@example.com","properties":' .. deep .. "}}}" })
    assert.equal(201, status)
    local s = start(acct)
    local r = call(s, 1, "get_profile", { email = "deep@example.com" })
    assert.is_false(r.result.isError, r.result.content[1].text)
    local p = cjson.decode(r.result.content[1].text).properties
    for _ = 1, 150 do p = p.a end
    assert.equal(1, p)
    s.ping(2)
    s.close()
  end)

  it("answers a result it cannot write as JSON with a tool error saying why, and serves on", function()
    emulator.faults { { operation = "get_lists", status = 200, count = 1,
                        body = '{"data":[{"type":"list","id":"L\255"}],"links":{"next":null}}' } }
    local s = start(acct)
    local r = call(s, 1, "call_operation", { operation = "get_lists" })
    assert.is_true(r.result.isError)
    assert.is_string(r.result.content[1].text)
    assert.matches("could not be encoded", r.result.content[1].text, 1, true)
    assert.matches("not valid UTF-8", r.result.content[1].text, 1, true)
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
  it("asks for confirm before sending a campaign or merging profiles, nothing sent", function()
    local s = start(acct)
    local before = #emulator.requests(acct)
    local calls = {
      { operation = "send_campaign", params = { body = { data = { type = "campaign-send-job",
        id = "C1" } } } },
      { operation = "merge_profiles", params = { body = { data = { type = "profile-merge",
        id = "P1", relationships = { profiles = { data = { { type = "profile", id = "P2" } } } } } } } },
    }
    for i, args in ipairs(calls) do
      local r = call(s, i, "call_operation", args)
      assert.is_true(r.result.isError, r.result.content[1].text)
      assert.matches(args.operation .. ' is destructive; call it again with "confirm": true',
        r.result.content[1].text, 1, true)
      r = call(s, 10 + i, "describe_operation", { operation = args.operation })
      assert.is_true(cjson.decode(r.result.content[1].text).destructive)
    end
    assert.equal(before, #emulator.requests(acct))
    s.close()
  end)
  it("does not show an answer over its bound: says its size and how to ask for less", function()
    local s = start(acct, "--max-result 100000")
    local item = '{"type":"list","id":"L%d","attributes":{"name":"' .. string.rep("n", 200) .. '"}}'
    local items = {}
    for i = 1, 1000 do items[i] = item:format(i) end
    local big = '{"data":[' .. table.concat(items, ",") .. '],"links":{"next":null}}'
    local created = '{"data":' .. item:format(0):gsub('"n+"', '"' .. string.rep("n", 200000) .. '"') .. "}"
    emulator.faults { { operation = "get_lists", status = 200, count = 1, body = big },
                      { operation = "create_list", status = 201, count = 1, body = created } }
    local r, line = call(s, 1, "call_operation", { operation = "get_lists" })
    assert.is_true(r.result.isError)
    assert.matches("more than the 100000 bytes this server shows", r.result.content[1].text, 1, true)
    assert.matches("page[size]", r.result.content[1].text, 1, true)
    assert.is_true(#line < 1000)
    -- a write that happened is no failure: the agent must not repeat it
    r, line = call(s, 2, "call_operation", { operation = "create_list",
      params = { body = { data = { type = "list", attributes = { name = "Big" } } } } })
    assert.is_false(r.result.isError)
    assert.matches("the call succeeded", r.result.content[1].text, 1, true)
    assert.is_true(#line < 1000)
    s.ping(3)
    s.close()
  end)
  it("never answers a response, whatever its id (a peer's error about a line it could not read)", function()
    local s = start(acct)
    s.send('{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}')
    s.send('{"jsonrpc":"2.0","id":"r1","result":{}}')
    s.ping(1)
    s.close()
  end)
end)
