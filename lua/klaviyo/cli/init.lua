-- klaviyo.cli: the `klaviyo` command (bin/klaviyo). main(argv) reads the command line, runs
-- one verb and returns the exit code. `--help`, `ops` and `describe` load no client (they
-- start fast); the other verbs make one client (klaviyo.cli.client) and go through the
-- library, so the command sends exactly what a Lua program would and refuses what it would.
local args = require "klaviyo.cli.args"
local out = require "klaviyo.cli.output"

local _M = {}

-- What each verb takes besides the options every verb takes (--key-file, --base-url,
-- --limiter, --revision, --no-validate, --help): its words after the verb (`words`, the most;
-- nil for any number), whether it takes name=value parameters, and its own options. The
-- verbs with `sends` go through a client. An option, word or parameter a verb would not use
-- is a usage error, so nothing on the command line is silently left out (`--read-only` on
-- call, `--dry-run` on mcp).
local DRY = "dry-run"
local VERBS = {
  call = { sends = true, words = 1, usage = "OPERATION", params = true, opts = { body = true } },
  pages = { sends = true, words = 1, usage = "OPERATION", params = true, opts = { body = true } },
  track = { sends = true, words = 1, usage = "METRIC", params = true, opts = { properties = true,
            ["unique-id"] = true, value = true, ["value-currency"] = true, time = true, backfill = true } },
  profile = { sends = true, words = 1, usage = "get|upsert", params = true, opts = { properties = true } },
  subscribe = { sends = true, words = 0, params = true, opts = { ["consented-at"] = true, source = true,
                historical = true, transactional = true, list = true } },
  unsubscribe = { sends = true, words = 0, params = true, opts = { list = true } },
  list = { sends = true },
  flow = { sends = true, words = 3, usage = "status FLOW_ID [STATUS]" },
  ops = { words = 1, usage = "[WORD]" },
  describe = { words = 1, usage = "OPERATION" },
  mcp = { words = 0, opts = { ["read-only"] = true } },
}
local COMMON = { ["key-file"] = true, ["base-url"] = true, limiter = true, revision = true,
                 ["no-validate"] = true, help = true }

-- nil when the command line holds only what its verb takes, else a usage error.
local function unused(cmd, verb)
  local v = VERBS[verb]
  for name in pairs(cmd.opts) do
    if not COMMON[name] and not (v.opts and v.opts[name]) and not (name == DRY and v.sends) then
      return out.usage(string.format("%s takes no option --%s", verb, name))
    end
  end
  if v.words and #cmd.words - 1 > v.words then
    return out.usage(string.format("%s takes %s; word %d is one too many", verb,
      v.words == 0 and "no words" or v.usage, v.words + 2))
  end
  if not v.params and cmd.pairs[1] then
    return out.usage(string.format("%s takes no name=value parameters (got %s=)", verb, cmd.pairs[1][1]))
  end
  return nil
end

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
  local served, serr = m.serve{ client = c, read_only = cmd.opts["read-only"] == true, input = io.stdin,
                           output = io.stdout }
  if not served then return nil, out.output(serr) end
  return true
end

local function run(cmd)
  local verb = cmd.words[1]
  if cmd.opts.help or verb == nil or verb == "help" then
    out.write(require "klaviyo.cli.help")
    return true
  end
  if VERBS[verb] == nil then
    return nil, out.usage(string.format("unknown verb %q (klaviyo --help)", verb))
  end
  local bad = unused(cmd, verb)
  if bad then return nil, bad end
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
    -- the library raised: a programmer error, here a command line it cannot build
    if done ~= require("klaviyo.cli.client").STOP then return out.fail(out.usage(done)) end
  elseif not done then
    return out.fail(err)
  end
  local lost = out.finish()
  if lost then return out.fail(lost) end
  return 0
end

return _M
