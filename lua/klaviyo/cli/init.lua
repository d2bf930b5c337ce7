-- klaviyo.cli: the `klaviyo` command (bin/klaviyo). main(argv) reads the command line, runs
-- one verb and returns the exit code. `--help`, `ops` and `describe` load no client (they
-- start fast); the other verbs make one client (klaviyo.cli.client) and go through the
-- library, so the command sends exactly what a Lua program would and refuses what it would.
local args = require "klaviyo.cli.args"
local out = require "klaviyo.cli.output"

local _M = {}

local SENDING = { call = true, pages = true, track = true, profile = true, subscribe = true,
                  unsubscribe = true, list = true, flow = true }

-- The MCP server, when its module is installed.
local function mcp(cmd)
  local ok, m = pcall(require, "klaviyo.mcp")
  if not ok then
    if tostring(m):find("module 'klaviyo.mcp' not found", 1, true) then
      return nil, out.usage("mcp: the MCP server (module klaviyo.mcp) is not installed with this library")
    end
    error(m, 0)
  end
  local client = require "klaviyo.cli.client"
  local c, err = client.new(cmd.opts)
  if not c then return nil, err end
  m.serve{ client = c, read_only = cmd.opts["read-only"] == true, input = io.stdin, output = io.stdout }
  return true
end

local function run(cmd)
  local verb = cmd.words[1]
  if cmd.opts.help or verb == nil or verb == "help" then
    io.stdout:write(require "klaviyo.cli.help")
    return true
  end
  if verb == "ops" then
    require("klaviyo.cli.describe").ops(cmd.words[2])
    return true
  end
  if verb == "describe" then
    local op_id = cmd.words[2]
    if not op_id then return nil, out.usage("describe needs an OPERATION (klaviyo ops lists them)") end
    if not require("klaviyo.cli.describe").describe(op_id) then
      return nil, out.usage(string.format("unknown operation %q (klaviyo ops)", op_id))
    end
    return true
  end
  if verb == "mcp" then return mcp(cmd) end
  if not SENDING[verb] then return nil, out.usage(string.format("unknown verb %q (klaviyo --help)", verb)) end
  local client = require "klaviyo.cli.client"
  local c, err = client.new(cmd.opts)
  if not c then return nil, err end
  if cmd.opts["dry-run"] then c = client.dry(c) end
  return require("klaviyo.cli.verbs")[verb](c, cmd)
end

function _M.main(argv)
  local cmd, msg = args.parse(argv or {})
  if not cmd then return out.fail(out.usage(msg)) end
  local ok, done, err = pcall(run, cmd)
  if not ok then
    if done == require("klaviyo.cli.client").STOP then return 0 end
    -- the library raised: a programmer error, here a command line it cannot build
    return out.fail(out.usage(done))
  end
  if not done then return out.fail(err) end
  io.stdout:flush()
  return 0
end

return _M
