-- A hostile HTTP server on loopback, run as a child process by spec/client/loopback.lua (the
-- client under test blocks in libcurl, so the server cannot live in the spec's process).
-- usage: loopback_server.lua MODE PORT LOG [BODY_FILE]
-- It writes "ready" to LOG once it listens, then every request it reads (head and body, by
-- Content-Length) as "request <n bytes>\n<bytes>\n", and answers by MODE:
--   close    closes the connection after reading the request
--   garbage  answers "garbage\r\n\r\n" (not HTTP), then closes
--   proxy    answers 502, as a proxy that refuses to pass anything on
--   page     answers 200 with the JSON document in BODY_FILE (a links.next to follow)
-- It quits after 60 s, or when the spec kills it.
local socket = require "socket"

local mode, port, log_path, body_file = arg[1], tonumber(arg[2]), arg[3], arg[4]
local log = assert(io.open(log_path, "ab"))
log:setvbuf("no")
local server = assert(socket.bind("127.0.0.1", port))
server:settimeout(0.2)
log:write("ready\n")

local page = ""
if body_file then
  local f = assert(io.open(body_file, "rb"))
  page = f:read("*a")
  f:close()
end

local ANSWERS = {
  garbage = "garbage\r\n\r\n",
  proxy = "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
  page = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.api+json\r\nConnection: close\r\n" ..
         "Content-Length: " .. #page .. "\r\n\r\n" .. page,
}

-- The request's bytes, or nil when the peer sent nothing.
local function read_request(c)
  local lines, len = {}, 0
  while true do
    local line = c:receive("*l")
    if not line then break end
    lines[#lines + 1] = line .. "\r\n"
    if line == "" then break end
    local n = line:lower():match("^content%-length:%s*(%d+)")
    if n then len = tonumber(n) end
  end
  if #lines == 0 then return nil end
  local body = len > 0 and c:receive(len) or ""
  return table.concat(lines) .. (body or "")
end

local deadline = socket.gettime() + 60
while socket.gettime() < deadline do
  local c = server:accept()
  if c then
    c:settimeout(5)
    local req = read_request(c)
    if req then
      log:write("request ", #req, "\n", req, "\n")
      if ANSWERS[mode] then c:send(ANSWERS[mode]) end
    end
    c:close()
  end
end
