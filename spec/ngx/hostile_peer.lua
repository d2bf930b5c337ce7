-- A hostile peer for spec/ngx/hostile_peer_spec.lua, run as its own process (nginx's worker
-- talks to it while the spec waits on nginx):
--   lua hostile_peer.lua PORTFILE WATCHED_PID
-- It binds a free loopback port, writes it to PORTFILE and serves one connection at a time
-- until the watched process is gone. Each connection is closed after its one scripted answer.
--
-- A connection whose first byte is '*' speaks RESP, as a Redis limiter store: SCRIPT LOAD
-- answers a SHA1, EVALSHA/EVAL answer the bytes hex-encoded in the key ("...r=<hex>:{...}",
-- from the store's prefix) or, for "...d=<n>:{...}", arrays of one item nested n deep; anything
-- else +OK. With "...w=<hex>:{...}" the answer is the bytes <hex> encodes and the connection
-- is then held open until the client closes it (up to 5 s): the client cannot wait for more.
-- An answer's <hex> is pieces joined by ".", each "<hex>" or "<hex>x<n>" (its bytes n times),
-- so a long answer fits in a short key.
-- A connection that starts a TLS handshake gets no answer at all (held up to 5 s).
-- Any other connection is HTTP: a request for /<hex>/... is answered with the bytes <hex>
-- encodes, as they are, and the connection closed 0.2 s later.

local socket = require "socket"

package.path = arg[0]:gsub("[^/]*/[^/]*$", "") .. "?.lua;" .. package.path
local portfile, watch = arg[1], arg[2]
local server = require("helpers.portfile").listen(portfile)

local function unhex(h)
  return (h:gsub("%x%x", function(x) return string.char(tonumber(x, 16)) end))
end

-- "<hex>[x<n>].<hex>[x<n>]...": the bytes of each piece, repeated n times.
local function answer(spec)
  local out = {}
  for piece in spec:gmatch("[^.]+") do
    local h, n = piece:match("^(%x*)x(%d+)$")
    out[#out + 1] = h and unhex(h):rep(tonumber(n)) or unhex(piece)
  end
  return table.concat(out)
end

local function alive()
  local r = os.execute("kill -0 " .. watch .. " 2>/dev/null")
  return r == true or r == 0
end

-- One RESP command (an array of bulk strings) whose first line is `line`: its arguments.
local function read_command(c, line)
  local n = tonumber(line and line:match("^%*(%d+)$"))
  if not n then return nil end
  local args = {}
  for i = 1, n do
    local len = tonumber((c:receive("*l") or ""):match("^%$(%d+)$"))
    local data = len and c:receive(len + 2)
    if not data then return nil end
    args[i] = data:sub(1, len)
  end
  return args
end

local function serve_resp(c, line)
  while true do
    local args = read_command(c, line)
    if not args then return end
    local cmd = args[1]:upper()
    if cmd == "SCRIPT" then
      c:send("$40\r\n" .. ("ab"):rep(20) .. "\r\n")
    elseif cmd == "EVALSHA" or cmd == "EVAL" then
      local key = args[4] or ""
      local depth, held = tonumber(key:match("d=(%d+):")), key:match("w=([%x.x]*):")
      c:send(depth and ("*1\r\n"):rep(depth) .. ":1\r\n" or answer(held or key:match("r=([%x.x]*):") or ""))
      if held then c:receive("*a") end
      return
    else
      c:send("+OK\r\n")
    end
    line = c:receive("*l")
  end
end

local function serve_http(c, line)
  local len = 0
  repeat
    local h = c:receive("*l")
    len = tonumber(h and h:lower():match("^content%-length:%s*(%d+)")) or len
  until not h or h == ""
  if len > 0 then c:receive(len) end   -- the request's body, dropped
  c:send(unhex(line:match("^%u+ /(%x*)/") or ""))
  socket.sleep(0.2)   -- the close comes after the client has read the answer
end

server:settimeout(0.5)
while alive() do
  local c = server:accept()
  if c then
    c:settimeout(5)
    local first = c:receive(1)
    if first == "\22" then   -- a TLS handshake: never answered; held until the client gives up
      c:receive("*a")
    elseif first then
      local line = c:receive("*l")
      line = line and first .. line
      if first == "*" then serve_resp(c, line)
      elseif line then serve_http(c, line) end
    end
    c:close()
  end
end
