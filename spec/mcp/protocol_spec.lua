-- The MCP server as a child process (spec/mcp/server.lua) spoken to over two FIFOs with raw
-- JSON-RPC lines: version negotiation, and each malformed, invalid or hostile message gets its
-- JSON-RPC error or tool error while the server keeps serving.
local emulator = require "helpers.emulator"
local cjson = require("cjson").new()
local socket_gettime = require("socket").gettime
local M = require "mcp.support"

local start, call = M.start, M.call

describe("klaviyo.mcp over stdio", function()
  local acct
  setup(function() acct = emulator.account() end)

  it("answers initialize with the client's version when it is one the SDK speaks, else the latest", function()
    local s = start(acct)
    for i, v in ipairs({ "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05" }) do
      local r = s.ask({ jsonrpc = "2.0", id = i, method = "initialize", params = {
        protocolVersion = v, capabilities = {}, clientInfo = { name = "spec", version = "1" } } })
      assert.equal(v, r.result.protocolVersion)
      assert.equal("lua-klaviyo", r.result.serverInfo.name)
      assert.is_false(r.result.capabilities.tools.listChanged)
    end
    local r = s.ask({ jsonrpc = "2.0", id = "x", method = "initialize", params = {
      protocolVersion = "1999-01-01", capabilities = {}, clientInfo = { name = "spec", version = "1" } } })
    assert.equal("2025-11-25", r.result.protocolVersion)
    -- a notification is never answered: the next answer is the ping's
    s.send('{"jsonrpc":"2.0","method":"notifications/initialized"}')
    s.send('{"jsonrpc":"2.0","method":"notifications/whatever","params":{}}')
    s.ping(9)
    s.close()
  end)

  it("answers a malformed line with -32700 and id null, and serves on", function()
    local s = start(acct)
    for i, line in ipairs({ "{bad", '{"jsonrpc":"2.0","id":1,', "\1\2\3", string.rep("[", 5000) }) do
      s.send(line)
      local r = s.recv()
      assert.equal(-32700, r.error.code)
      assert.equal(cjson.null, r.id)
      s.ping(i)
    end
    assert.matches("parse error", s.close())
  end)

  it("answers invalid requests with -32600 and unknown methods with -32601", function()
    local s = start(acct)
    local invalid = {
      { '[]', cjson.null }, { '"ping"', cjson.null }, { '42', cjson.null },
      { '{"jsonrpc":"1.0","id":1,"method":"ping"}', 1 },
      { '{"id":2,"method":"ping"}', 2 },
      { '{"jsonrpc":"2.0","id":{},"method":"ping"}', cjson.null },
      { '{"jsonrpc":"2.0","id":true,"method":"ping"}', cjson.null },
      { '{"jsonrpc":"2.0","id":3,"method":5}', 3 },
      { '[{"jsonrpc":"2.0","id":4,"method":"ping"}]', cjson.null },
    }
    for i, case in ipairs(invalid) do
      s.send(case[1])
      local r = s.recv()
      assert.equal(-32600, r.error.code, case[1])
      assert.equal(case[2], r.id, case[1])
      s.ping(100 + i)
    end
    local r = s.ask({ jsonrpc = "2.0", id = 7, method = "resources/list" })
    assert.equal(-32601, r.error.code)
    assert.equal(7, r.id)
    s.ping(8)
    s.close()
  end)

  it("answers an unknown tool or bad params with -32602, wrong argument types with a tool error", function()
    local s = start(acct)
    local r = call(s, 1, "no_such_tool", {})
    assert.equal(-32602, r.error.code)
    assert.matches("Unknown tool: no_such_tool", r.error.message, 1, true)
    s.send('{"jsonrpc":"2.0","id":2,"method":"tools/call","params":[1]}')
    assert.equal(-32602, s.recv().error.code)
    s.send('{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_flow","arguments":[1]}}')
    assert.equal(-32602, s.recv().error.code)
    r = call(s, 4, "get_flow", { id = 12 })
    assert.is_true(r.result.isError)
    assert.equal("invalid arguments for get_flow: /id: must be string, got integer", r.result.content[1].text)
    r = call(s, 5, "track_event",
      { metric = "Placed Order", profile = { email = "a@example.com" }, value = "9" })
    assert.is_true(r.result.isError)
    assert.matches("/value: must be number, got string", r.result.content[1].text, 1, true)
    r = call(s, 6, "list_flows", { status = "running" })
    assert.matches("/status: must be one of draft, manual, live", r.result.content[1].text, 1, true)
    s.ping(7)
    s.close()
  end)

  it("gives the library's refusal text as a tool error, nothing sent", function()
    local s = start(acct)
    local before = #emulator.requests(acct)
    local r = call(s, 1, "track_event", { metric = "Placed Order", profile = { first_name = "Ann" } })
    assert.is_true(r.result.isError)
    assert.matches("refused locally", r.result.content[1].text, 1, true)
    r = call(s, 2, "subscribe", { phone_number = "+15005550006" })
    assert.is_true(r.result.isError)
    assert.matches("consent", r.result.content[1].text)
    r = call(s, 3, "call_operation", { operation = "delete_list", params = { id = "L1" } })
    assert.matches('"confirm": true', r.result.content[1].text, 1, true)
    assert.equal(before, #emulator.requests(acct))
    r = call(s, 4, "track_event", { metric = "Placed Order", profile = { email = "mcp@example.com" } })
    assert.is_false(r.result.isError, r.result.content[1].text)
    assert.equal(before + 1, #emulator.requests(acct))
    s.close()
  end)

  it("refuses a query value the operation does not allow, naming what is allowed, nothing sent", function()
    local s = start(acct)
    local before = #emulator.requests(acct)
    local r = call(s, 1, "call_operation", { operation = "get_metrics",
      params = { filter = 'equals(name,"Placed Order")' } })
    assert.is_true(r.result.isError)
    local text = r.result.content[1].text
    assert.matches("refused locally", text, 1, true)
    assert.matches("integration.category, integration.name", text, 1, true)
    r = call(s, 2, "call_operation", { operation = "get_profiles", params = { sort = "nme" } })
    assert.is_true(r.result.isError)
    assert.matches('sort: \\?"nme\\?" is not allowed', r.result.content[1].text)
    assert.equal(before, #emulator.requests(acct))
    s.close()
  end)

  it("waits within the client's rate limits instead of drawing 429s", function()
    local s = start(acct)
    local was = emulator.stats(acct).operations.get_flows or { answers = 0, throttled = 0 }
    local t0 = socket_gettime()
    for i = 1, 7 do
      local r = call(s, i, "call_operation", { operation = "get_flows", params = {} })
      assert.is_false(r.result.isError, r.result.content[1].text)
    end
    -- get_flows allows 3 a second: seven calls take more than a second, none throttled
    assert.is_true(socket_gettime() - t0 > 1)
    local st = emulator.stats(acct).operations.get_flows
    assert.equal(7, st.answers - was.answers)
    assert.equal(0, st.throttled - was.throttled)
    s.close()
  end)

  it("says how long the rate limiter would wait when that is longer than a call may last", function()
    local s = start(acct, "--max-time 2")
    -- the emulator's stats count every account's answers: other specs may send this operation
    local was = emulator.stats(acct).operations.query_flow_values or { answers = 0 }
    -- query_flow_values allows 2 a minute: the third call would wait about half a minute
    local texts = {}
    for i = 1, 3 do
      local r = call(s, i, "flow_report", { conversion_metric_id = "M1" })
      assert.is_true(r.result.isError)
      texts[i] = r.result.content[1].text
    end
    assert.matches("HTTP 501", texts[1], 1, true)
    assert.matches("HTTP 501", texts[2], 1, true)
    assert.matches("the rate limiter asks to wait %d+ s, longer than", texts[3])
    assert.matches("nothing sent", texts[3], 1, true)
    assert.matches("%[retry after %d+", texts[3])
    local st = emulator.stats(acct).operations.query_flow_values
    assert.equal(2, st.answers - was.answers)
    s.close()
  end)

  it("refuses a 100 MB line without holding it, then serves the next line", function()
    local s = start(acct)
    s.ping(1)
    local mb = string.rep("x", 1024 * 1024)
    s.write('{"jsonrpc":"2.0","id":2,"method":"ping","params":{"pad":"')
    for _ = 1, 100 do s.write(mb) end
    s.send('"}}')
    local r = s.recv()
    assert.equal(-32600, r.error.code)
    assert.equal(cjson.null, r.id)
    assert.matches("limited to 4194304 bytes", r.error.message, 1, true)
    s.ping(3)
    local peak = s.peak_kb()
    assert.truthy(peak)
    assert.is_true(peak < 48 * 1024, "the server's peak memory was " .. peak .. " kB")
    -- a line just under the limit is read and judged (here: not JSON)
    s.send(string.rep("y", 4 * 1024 * 1024 - 1))
    assert.equal(-32700, s.recv().error.code)
    s.ping(4)
    assert.matches("refused a line of", s.close())
  end)
end)
