-- The hostile HTTP server of spec/hostile: a LuaSocket loopback server run as a child
-- process, one connection at a time, that answers every request with the steps of the case
-- named last (spec/hostile/catalogue.lua) and counts the requests it received.
--   lua server.lua <port file> <pid to watch> <root of the checkout>
-- It binds a free loopback port and writes it to the port file. Admin requests:
--   POST /__hostile/case   body: a case name -> resets the count; "ok"
--   GET  /__hostile/count  -> "<requests since the case was named>\n<first request line>"
--   POST /__hostile/quit
-- Steps (each a table): {respond = status line, headers = {lines}, body = bytes} (adds
-- Content-Length unless the headers name a length or chunking; "@PORT@" in headers and body
-- is this server's port), {send = bytes}, {sleep = s}, {drip = bytes, every = s} (one byte at
-- a time), {fill = bytes, times = n} (bytes sent n times), {gzip = n, head = status and headers}
-- (head, Content-Length and n zero bytes gzipped), {reset = true} (RST: SO_LINGER 0), {hold = s}
-- (waits up to s for the client to close). After the last step the connection is closed.
-- Sends stop at the first failure: a client that gave up ends the case at once.
local socket = require "socket"

local portfile, watch, root = arg[1], arg[2], arg[3]
package.path = root .. "/spec/?.lua;" .. package.path
local catalogue = require "hostile.catalogue"

local by_name = {}
for _, c in ipairs(catalogue.cases) do by_name[c.name] = c end

local gzip_cache = {}

local function gzip_zeros(n)
  if not gzip_cache[n] then
    local p = assert(io.popen("head -c " .. n .. " /dev/zero | gzip -c -1"))
    gzip_cache[n] = p:read("*a")
    p:close()
  end
  return gzip_cache[n]
end

-- gzip bombs are made before the port is published: a case must not wait for them
for _, c in ipairs(catalogue.cases) do
  for _, step in ipairs(c.server or {}) do
    if step.gzip then gzip_zeros(step.gzip) end
  end
end

local server, port = require("helpers.portfile").listen(portfile)

local current, count, first = nil, 0, ""

local function alive()
  if not watch then return true end
  local r = os.execute("kill -0 " .. watch .. " 2>/dev/null")
  return r == true or r == 0
end

-- Reads one request: request line, headers, and a Content-Length body. nil when the
-- client closed first.
local function read_request(sock)
  sock:settimeout(3)
  local line = sock:receive("*l")
  if not line then return nil end
  local len = 0
  while true do
    local h = sock:receive("*l")
    if not h then return nil end
    if h == "" then break end
    local n = h:lower():match("^content%-length:%s*(%d+)")
    if n then len = tonumber(n) end
  end
  local body = ""
  if len > 0 then body = sock:receive(len) or "" end
  return line, body
end

local function send_all(sock, data)
  local i = 1
  while i <= #data do
    local last, err, partial = sock:send(data, i)
    if not last then
      if err ~= "timeout" then return false end
      i = partial + 1
    else
      i = last + 1
    end
  end
  return true
end

local function play(sock, steps)
  sock:settimeout(5)
  for _, s in ipairs(steps) do
    if s.respond then
      local head = { s.respond }
      local body = (s.body or ""):gsub("@PORT@", port)
      local framed = false
      for _, h in ipairs(s.headers or {}) do
        head[#head + 1] = (h:gsub("@PORT@", port))
        framed = framed or h:lower():match("^content%-length:") or h:lower():match("^transfer%-encoding:")
      end
      if not framed then head[#head + 1] = "Content-Length: " .. #body end
      if not send_all(sock, table.concat(head, "\r\n") .. "\r\n\r\n" .. body) then return end
    elseif s.send then
      if not send_all(sock, s.send) then return end
    elseif s.sleep then
      socket.sleep(s.sleep)
    elseif s.drip then
      for i = 1, #s.drip do
        if not send_all(sock, s.drip:sub(i, i)) then return end
        socket.sleep(s.every or 0.1)
      end
    elseif s.fill then
      for _ = 1, s.times do
        if not send_all(sock, s.fill) then return end
      end
    elseif s.gzip then
      local z = gzip_zeros(s.gzip)
      if not send_all(sock, s.head .. "Content-Length: " .. #z .. "\r\n\r\n" .. z) then return end
    elseif s.reset then
      sock:setoption("linger", { on = true, timeout = 0 })
      return
    elseif s.hold then
      sock:settimeout(s.hold)
      sock:receive("*a")
      return
    end
  end
end

local function admin(sock, line, body)
  if line:match("^POST /__hostile/quit ") then
    send_all(sock, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    return "quit"
  elseif line:match("^POST /__hostile/case ") then
    current, count, first = by_name[body], 0, ""
    local msg = current and "ok" or ("no case named " .. body)
    send_all(sock, (current and "HTTP/1.1 200 OK" or "HTTP/1.1 404 Not Found") ..
      "\r\nConnection: close\r\nContent-Length: " .. #msg .. "\r\n\r\n" .. msg)
  else
    local msg = count .. "\n" .. first
    send_all(sock, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: " .. #msg .. "\r\n\r\n" .. msg)
  end
end

local DEFAULT = { { send = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" ..
                    "Content-Length: 11\r\nConnection: close\r\n\r\n{\"data\":[]}" } }

server:settimeout(1)
local idle = 0
while true do
  local sock = server:accept()
  if sock then
    idle = 0
    local line, body = read_request(sock)
    if line and line:match("^%u+ /__hostile/") then
      if admin(sock, line, body) == "quit" then sock:close(); break end
    elseif line then
      count = count + 1
      if count == 1 then first = line end
      play(sock, current and current.server or DEFAULT)
    end
    sock:close()
  else
    idle = idle + 1
    if idle % 5 == 0 and not alive() then break end
  end
end
