-- Starts the MCP server for the specs: a client from the environment (KLAVIYO_API_KEY) and
-- the command line (--base-url URL, --read-only, --max-time SECONDS: how long a call may
-- last, waits for the rate limiter included; --max-result BYTES: mcp.MAX_RESULT), then
-- klaviyo.mcp.serve on stdio.
local klaviyo = require "klaviyo"
local mcp = require "klaviyo.mcp"

local base_url, read_only, max_time
local i = 1
while arg[i] do
  if arg[i] == "--base-url" then base_url = arg[i + 1]; i = i + 1
  elseif arg[i] == "--read-only" then read_only = true
  elseif arg[i] == "--max-time" then max_time = tonumber(arg[i + 1]); i = i + 1
  elseif arg[i] == "--max-result" then mcp.MAX_RESULT = tonumber(arg[i + 1]); i = i + 1
  else io.stderr:write("server.lua: unknown argument ", arg[i], "\n"); os.exit(2) end
  i = i + 1
end
local client = assert(klaviyo.new { api_key = os.getenv("KLAVIYO_API_KEY") or "pk_unset",
                                    base_url = base_url,
                                    retry = max_time and { max_time = max_time } or nil })
mcp.serve { client = client, read_only = read_only == true }
