-- A small HTTP proxy on loopback for spec/net/proxy_spec.lua, run as a child process: plain-http
-- requests in absolute form are forwarded (one per connection), CONNECT is tunnelled. Each
-- request line is appended to LOG ("ready" first, once listening).
-- usage: proxy_server.lua PORT LOG
local socket = require "socket"
local port, logfile = tonumber(arg[1]), arg[2]

local function log(line)
  local f = assert(io.open(logfile, "ab"))
  f:write(line, "\n")
  f:close()
end

-- copies bytes both ways until one side closes
local function relay(a, b)
  a:settimeout(0)
  b:settimeout(0)
  while true do
    local ready = socket.select({ a, b }, nil, 10)
    if #ready == 0 then return end
    for _, s in ipairs(ready) do
      local data, err, part = s:receive(65536)
      data = data or part
      if data and #data > 0 then (s == a and b or a):send(data) end
      if err == "closed" then return end
    end
  end
end

local function serve(c)
  c:settimeout(10)
  local line = c:receive("*l")
  if not line then return end
  log(line)
  local headers, len = {}, 0
  while true do
    local h = c:receive("*l")
    if not h or h == "" then break end
    local n, v = h:match("^([^:]+):%s*(.*)$")
    if n and n:lower() == "content-length" then len = tonumber(v) end
    if n and n:lower() ~= "proxy-connection" and n:lower() ~= "connection" then headers[#headers + 1] = h end
  end
  local method, target = line:match("^(%S+) (%S+)")
  if method == "CONNECT" then
    local host, p = target:match("^(.-):(%d+)$")
    local up = socket.connect(host, tonumber(p))
    if not up then c:send("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n") return end
    c:send("HTTP/1.1 200 Connection established\r\n\r\n")
    relay(c, up)
    up:close()
    return
  end
  local host, p, path = target:match("^http://([^:/]+):?(%d*)(/.*)$")
  local up = host and socket.connect(host, tonumber(p) or 80)
  if not up then c:send("HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n") return end
  local body = len > 0 and c:receive(len) or ""
  up:send(method .. " " .. path .. " HTTP/1.1\r\n" .. table.concat(headers, "\r\n") ..
    "\r\nConnection: close\r\n\r\n" .. body)
  up:settimeout(10)
  local answer, _, part = up:receive("*a")
  c:send(answer or part)
  up:close()
end

local server = assert(socket.bind("127.0.0.1", port))
log("ready")
while true do
  local c = server:accept()
  if c then
    serve(c)
    c:close()
  end
end
