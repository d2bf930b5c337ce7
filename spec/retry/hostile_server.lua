-- A hostile server for spec/retry/durations_spec.lua, run as its own process (the client
-- under test blocks, so the server cannot live in the spec's process):
--   lua hostile_server.lua PORTFILE LIFETIME
-- It binds a free loopback port, writes it to PORTFILE, and serves one connection at a
-- time until LIFETIME seconds have passed. Not a spec itself.
--
-- A connection whose first byte is '*' speaks RESP, as a Redis limiter store would: SCRIPT
-- LOAD answers a SHA1, EVALSHA/EVAL answer the acquire command with the wait named in the
-- key ("...w=<us>:{...}" from the store's prefix; "w=go" says go) and block/observe with an
-- ordinary answer, anything else +OK.
--
-- Any other connection is HTTP: the path starts with /<mode>/<hex>/, <hex> the value the
-- mode needs, hex-encoded so that any bytes fit a base_url:
--   /ra/<v>/...     429 with Retry-After: <v>
--   /detail/<v>/... 429 with errors[0].detail = <v> and no Retry-After
--   /slow/<s>/...   sleeps <s> seconds, then 503
--   /echo/<v>/...   400 echoing the request's Authorization credential (and <v>) in the
--                   title, detail, meta, a header and the body
local socket = require "socket"

package.path = arg[0]:gsub("[^/]*/[^/]*$", "") .. "?.lua;" .. package.path
local portfile, lifetime = arg[1], tonumber(arg[2] or "120")
local server = require("helpers.portfile").listen(portfile)
local deadline = socket.gettime() + lifetime

local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(ch) return string.format("\\u%04x", ch:byte()) end) .. '"'
end

-- ---- RESP ------------------------------------------------------------------------------

local function read_command(c, first)
  local line = first
  if not line then return nil end
  local n = tonumber(line:match("^%*(%d+)"))
  if not n then return nil end
  local args = {}
  for i = 1, n do
    local len = c:receive("*l")
    len = len and tonumber(len:match("^%$(%d+)"))
    if not len then return nil end
    local data = c:receive(len + 2)
    if not data then return nil end
    args[i] = data:sub(1, len)
  end
  return args
end

local function serve_resp(c, first)
  local line = first
  while true do
    local args = read_command(c, line)
    if not args then return end
    local cmd = args[1]:upper()
    local now = string.format("%.0f", socket.gettime() * 1e6)
    if cmd == "SCRIPT" then
      c:send("$40\r\n" .. ("ab"):rep(20) .. "\r\n")
    elseif cmd == "EVALSHA" or cmd == "EVAL" then
      local key, what = args[4] or "", args[6]
      local w = key:match("w=([%-%w]+):")
      if what == "acquire" and w and w ~= "go" then
        c:send("*3\r\n:0\r\n:" .. w .. "\r\n:" .. now .. "\r\n")
      else
        c:send("*3\r\n:1\r\n:0\r\n:" .. now .. "\r\n")
      end
    elseif cmd == "PING" then
      c:send("+PONG\r\n")
    else
      c:send("+OK\r\n")
    end
    c:settimeout(1)   -- an idle kept connection (a pool) is closed soon: others wait behind it
    line = c:receive("*l")
    if not line then return end
  end
end

-- ---- HTTP -------------------------------------------------------------------------------

local function reply(c, status, headers, body)
  local out = { ("HTTP/1.1 %d Hostile\r\n"):format(status) }
  headers["Content-Type"] = headers["Content-Type"] or "application/vnd.api+json"
  headers["Content-Length"] = #body
  headers["Connection"] = "close"
  for k, v in pairs(headers) do out[#out + 1] = k .. ": " .. v .. "\r\n" end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body
  c:send(table.concat(out))
end

local THROTTLED = '{"errors":[{"id":"x","status":429,"code":"throttled","title":"Request was throttled.",' ..
  '"detail":%s}]}'

local function serve_http(c, first)
  local path = first:match("^%u+ (%S+) HTTP/1%.%d$")
  local h = {}
  while true do
    local line = c:receive("*l")
    if not line or line == "" then break end
    local k, v = line:match("^([^:]+):%s*(.-)%s*$")
    if k then h[k:lower()] = v end
  end
  local n = tonumber(h["content-length"] or "0")
  if n and n > 0 then c:receive(n) end
  local mode, hex = (path or ""):match("^/(%w+)/(%x*)/")
  local v = hex and unhex(hex) or ""
  if mode == "ra" then
    reply(c, 429, { ["Retry-After"] = v }, THROTTLED:format('"Request was throttled."'))
  elseif mode == "detail" then
    reply(c, 429, {}, THROTTLED:format(json_string(v)))
  elseif mode == "slow" then
    socket.sleep(tonumber(v) or 1)
    reply(c, 503, {}, '{"errors":[{"status":503,"code":"service_unavailable","detail":"later"}]}')
  elseif mode == "echo" then
    local cred = (h.authorization or ""):match("^%S+%s+(.*)$") or ""
    local s = json_string(cred .. v)
    reply(c, 400, { ["X-Echo"] = cred },
      ('{"errors":[{"status":400,"code":"invalid","title":"bad key %s","detail":"your key is %s",' ..
       '"source":{"parameter":%s},"meta":{"key":%s,"deep":{"k":[%s]}}}]}'):format(
        cred, cred, s, s, s))
  else
    reply(c, 404, {}, '{"errors":[{"status":404,"code":"not_found","detail":"no such mode"}]}')
  end
end

server:settimeout(0.5)
while socket.gettime() < deadline do
  local c = server:accept()
  if c then
    c:settimeout(10)
    local first = c:receive("*l")
    if first and first:sub(1, 1) == "*" then serve_resp(c, first)
    elseif first then serve_http(c, first) end
    c:close()
  end
end
