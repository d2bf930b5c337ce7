-- klaviyo.mcp: a Model Context Protocol server over stdio for a klaviyo client. JSON-RPC 2.0,
-- one message a line on `input`, answers one a line on `output`, diagnostics on `log` only.
--
--   require("klaviyo.mcp").serve{ client = assert(klaviyo.new{api_key = key}),
--                                 read_only = false, input = io.stdin, output = io.stdout,
--                                 log = io.stderr }
--
-- Methods: initialize (answers the client's protocol version when it is one the official
-- TypeScript SDK speaks, else the latest), notifications/initialized, ping, tools/list,
-- tools/call; notifications are never answered. The tools (klaviyo.mcp.tools) are thin over
-- the client. A tool failure is a result with isError and the library's text; a malformed
-- line, an invalid request, an unknown method or tool get JSON-RPC errors, and the server
-- reads on. serve returns true at the end of input, or nil and the error when an answer
-- could not be written (it then stops: no call is made whose answer would be lost).
local type, pairs, ipairs, pcall, tostring = type, pairs, ipairs, pcall, tostring
local format = string.format

local klaviyo = require "klaviyo"
local cjson = require("cjson").new()
local schema = require "klaviyo.mcp.schema"
local tools = require "klaviyo.mcp.tools"
local read_line = require("klaviyo.core").read_line
local V = require "klaviyo.validate"

local _M = { _VERSION = klaviyo._VERSION }

-- The protocol revisions of @modelcontextprotocol/sdk (its SUPPORTED_PROTOCOL_VERSIONS),
-- newest first.
_M.PROTOCOL_VERSIONS = { "2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05", "2024-10-07" }
-- The longest message line kept; a longer one is refused and skipped without being held
-- in memory (core.read_line), and the server reads on at the next line.
_M.MAX_LINE = 4 * 1024 * 1024

-- The longest result a tool shows, in bytes of JSON text: a longer answer is not shown (the
-- agent is told its size and how to ask for less), so one huge Klaviyo answer cannot flood
-- the agent's context.
_M.MAX_RESULT = 1024 * 1024

local PARSE, INVALID, NO_METHOD, BAD_PARAMS, INTERNAL = -32700, -32600, -32601, -32602, -32603

local encode, array, object, null = klaviyo.encode, klaviyo.array, klaviyo.object, cjson.null

local function failure(id, code, message)
  return { jsonrpc = "2.0", id = id, error = { code = code, message = message } }
end

local function is_object(v)
  if type(v) ~= "table" then return false end
  return v[1] == nil
end

-- JSON text of v, or nil and why: the encoder answers nil, err for what JSON cannot hold
-- (a number that is not finite, a string that is not UTF-8, nesting past its depth).
local function to_json(v, opts)
  local ok, json, err = pcall(encode, v, opts)
  if not ok then return nil, tostring(json) end
  if json == nil then return nil, tostring(err) end
  return json
end

-- A result is written as deep as the library's decoder reads an answer (cjson's 1000 levels).
local DEEP = { max_depth = 1000 }

-- A tool's result: its value as JSON text, or the text of what to change. An answer over
-- MAX_RESULT is a failure of a read; a write it follows did happen, so it is no failure there
-- (an agent repeats a failed call).
local function tool_result(value, text, reads)
  if value == nil then
    return { content = array { { type = "text", text = text } }, isError = true }
  end
  local json, err = to_json(tools.plain(value), DEEP)
  if not json then return tool_result(nil, "the result could not be encoded: " .. err) end
  if #json > _M.MAX_RESULT then
    json = format("the answer is %d bytes of JSON, more than the %d bytes this server shows, " ..
      "and is not shown%s. Ask for less: page[size], fields[TYPE], a filter or a smaller limit.",
      #json, _M.MAX_RESULT, reads and "" or " (the call succeeded: do not repeat it)")
    return { content = array { { type = "text", text = json } }, isError = reads == true }
  end
  return { content = array { { type = "text", text = json } }, isError = false }
end

local READ_CALL = "Call any read operation of the Klaviyo API (GET and query_*) by id with " ..
  "its params; describe_operation gives their schema. This server is read-only."

local function listing(state)
  local out = array()
  for _, t in ipairs(tools.list) do
    if not state.read_only or t.read then
      out[#out + 1] = { name = t.name, description = t.description, inputSchema = t.inputSchema,
                        annotations = t.annotations }
    elseif t.any_operation then
      out[#out + 1] = { name = t.name, description = READ_CALL, inputSchema = t.inputSchema,
                        annotations = { readOnlyHint = true, destructiveHint = false,
                                        idempotentHint = true, openWorldHint = true } }
    end
  end
  return { tools = out }
end

local function refused_read_only(name)
  return format("refused: this server is read-only; %s changes data and is not available", name)
end

local function need_confirm(what)
  return format("refused: %s is destructive; call it again with \"confirm\": true once that " ..
    "is what you mean", what)
end

-- tools/call: a result (isError for a tool failure), or nil, code, message.
local function call_tool(state, p)
  if type(p.name) ~= "string" then return nil, BAD_PARAMS, "params.name must be a string" end
  local t = tools.by_name[p.name]
  if t == nil then return nil, BAD_PARAMS, "Unknown tool: " .. p.name end
  local args = p.arguments
  if args == nil or args == null then args = {} end
  if not is_object(args) then return nil, BAD_PARAMS, "params.arguments must be an object" end
  if state.read_only and not t.read and not t.any_operation then
    return tool_result(nil, refused_read_only(t.name))
  end
  local msg = schema.check(t.inputSchema, args)
  if msg then return tool_result(nil, format("invalid arguments for %s: %s", t.name, msg)) end
  local destructive, what, reads = t.destructive, t.name, t.read
  if t.any_operation then
    local op, why = tools.operation_of(args)
    if op == nil then return tool_result(nil, why) end
    reads = tools.op_reads(args.operation, op)
    if state.read_only and not reads then
      return tool_result(nil, refused_read_only(args.operation))
    end
    destructive, what = tools.op_destroys(args.operation, op), args.operation
  end
  if destructive and args.confirm ~= true then return tool_result(nil, need_confirm(what)) end
  local a = {}
  for k, v in pairs(args) do if k ~= "confirm" then a[k] = v end end
  local ok, value, text = pcall(t.run, state.client, a)
  if not ok then return tool_result(nil, tools.why(value)) end
  return tool_result(value, text, reads)
end

local METHODS = {}

function METHODS.initialize(state, p)
  if type(p.protocolVersion) ~= "string" then
    return nil, BAD_PARAMS, "params.protocolVersion must be a string"
  end
  local version = _M.PROTOCOL_VERSIONS[1]
  for _, v in ipairs(_M.PROTOCOL_VERSIONS) do
    if v == p.protocolVersion then version = v end
  end
  state.version = version
  return {
    protocolVersion = version,
    capabilities = { tools = { listChanged = false } },
    serverInfo = { name = "lua-klaviyo", version = klaviyo._VERSION },
    instructions = "Klaviyo through lua-klaviyo: events get a unique_id (resend with it), " ..
      "SMS needs an opt-in record, destructive calls need confirm: true.",
  }
end

function METHODS.ping() return object() end
METHODS["tools/list"] = function(state) return listing(state) end
METHODS["tools/call"] = call_tool

-- Notifications the server acts on (none needs an answer).
local NOTIFY = {
  ["notifications/initialized"] = function(state) state.initialized = true end,
}

-- One decoded message: the reply table, or nil for none.
local function dispatch(state, msg)
  if not is_object(msg) then
    return failure(null, INVALID, "Invalid Request: a message must be a JSON object")
  end
  local id, method = msg.id, msg.method
  if method == nil and id ~= nil and (msg.result ~= nil or msg.error ~= nil) then
    -- a response is never answered: to a request this server never sends, or (id null) a
    -- peer's error about a line it could not read; answering it could start an echo
    state.log:write("klaviyo mcp: ignored a response\n")
    return nil
  end
  local has_id = id ~= nil
  if has_id and type(id) ~= "string" and type(id) ~= "number" then
    return failure(null, INVALID, "Invalid Request: id must be a string or a number")
  end
  if msg.jsonrpc ~= "2.0" then
    return failure(has_id and id or null, INVALID, 'Invalid Request: jsonrpc must be "2.0"')
  end
  if type(method) ~= "string" then
    return failure(has_id and id or null, INVALID, "Invalid Request: method must be a string")
  end
  if not has_id then
    local fn = NOTIFY[method]
    if fn then fn(state, msg.params) end
    return nil
  end
  local fn = METHODS[method]
  if fn == nil then return failure(id, NO_METHOD, "Method not found: " .. method) end
  local p = msg.params
  if p == nil or p == null then p = {} end
  if not is_object(p) then return failure(id, BAD_PARAMS, "params must be an object") end
  local ok, result, code, message = pcall(fn, state, p)
  if not ok then
    state.log:write("klaviyo mcp: ", method, ": ", tostring(result), "\n")
    return failure(id, INTERNAL, "Internal error")
  end
  if result == nil then return failure(id, code, message) end
  return { jsonrpc = "2.0", id = id, result = result }
end

-- One line of input: the reply's JSON text, or nil for none.
local function handle(state, line)
  line = line:gsub("\r$", "")
  if not line:find("%S") then return nil end
  local ok, msg = pcall(cjson.decode, line)
  if not ok then
    state.log:write("klaviyo mcp: parse error: ", tostring(msg):sub(1, 200), "\n")
    return encode(failure(null, PARSE, "Parse error: " .. tostring(msg):sub(1, 200)))
  end
  local reply = dispatch(state, msg)
  if reply == nil then return nil end
  local json, err = to_json(reply)
  if json then return json end
  state.log:write("klaviyo mcp: the answer could not be encoded: ", err, "\n")
  -- the id itself may be what JSON cannot hold (1e400 decodes as infinity)
  return to_json(failure(reply.id, INTERNAL, "Internal error: the answer could not be encoded"))
    or encode(failure(null, INVALID, "Invalid Request: the id cannot be written back"))
end
_M.handle = handle

local OPTIONS = { client = "table", read_only = "boolean", input = "userdata", output = "userdata",
                  log = "userdata" }

-- serve{client =, read_only =, input =, output =, log =}: answers messages until input ends
-- (true) or output fails (nil, err).
function _M.serve(opts)
  if type(opts) ~= "table" then error("klaviyo.mcp.serve: expected a table of options", 2) end
  V.options(opts, OPTIONS, "klaviyo.mcp.serve", "option", 2)
  if opts.client == nil then error("klaviyo.mcp.serve: option client is required", 2) end
  local state = { client = opts.client, read_only = opts.read_only == true,
                  log = opts.log or io.stderr }
  local input, output = opts.input or io.stdin, opts.output or io.stdout
  while true do
    local line, len = read_line(input, _M.MAX_LINE)
    if line == nil then
      if len then state.log:write("klaviyo mcp: reading input: ", tostring(len), "\n") end
      break
    end
    local reply
    if line == false then
      state.log:write(format("klaviyo mcp: refused a line of %d bytes\n", len))
      reply = encode(failure(null, INVALID,
        format("Invalid Request: a message line is limited to %d bytes", _M.MAX_LINE)))
    else
      reply = handle(state, line)
    end
    if reply then
      local ok, err = output:write(reply, "\n")
      if ok then ok, err = output:flush() end
      if not ok then
        state.log:write("klaviyo mcp: writing output: ", tostring(err), "\n")
        return nil, err
      end
    end
  end
  return true
end

return _M
