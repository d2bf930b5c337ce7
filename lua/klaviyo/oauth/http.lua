-- One form-encoded POST to an OAuth endpoint (/oauth/token, /oauth/revoke) and its JSON
-- answer. The core's request path only builds Klaviyo API requests (JSON:API headers, its own
-- Authorization), so these few exchanges go over a plain socket: nginx cosockets inside nginx,
-- LuaSocket (and LuaSec for https) elsewhere.
local cjson = require("cjson").new()
local errors = require "klaviyo.errors"

local ngx = rawget(_G, "ngx")
local tonumber, pcall, concat = tonumber, pcall, table.concat

local M = {}

local function in_cosocket()
  if not (ngx and ngx.socket and ngx.get_phase) then return false end
  local phase = ngx.get_phase()
  return phase ~= "init" and phase ~= "init_worker" and phase ~= "set" and phase ~= "header_filter"
    and phase ~= "body_filter" and phase ~= "log"
end

local function connect(scheme, host, port, timeout)
  local sock, err
  if in_cosocket() then
    sock = ngx.socket.tcp()
    sock:settimeout(timeout * 1000)
    local ok
    ok, err = sock:connect(host, port)
    if not ok then return nil, err end
    if scheme == "https" then
      ok, err = sock:sslhandshake(nil, host, true)
      if not ok then return nil, err end
    end
    return sock
  end
  local socket = require "socket"
  sock, err = socket.tcp()
  if not sock then return nil, err end
  sock:settimeout(timeout)
  local ok
  ok, err = sock:connect(host, port)
  if not ok then return nil, err end
  if scheme == "https" then
    local okreq, ssl = pcall(require, "ssl")
    if not okreq then return nil, "https needs LuaSec outside nginx" end
    sock, err = ssl.wrap(sock, { mode = "client", protocol = "any", verify = "peer",
                                 options = "all", cafile = "/etc/ssl/certs/ca-certificates.crt" })
    if not sock then return nil, err end
    sock:sni(host)
    ok, err = sock:dohandshake()
    if not ok then return nil, err end
  end
  return sock
end

local function read_body(sock, headers)
  local len = tonumber(headers["content-length"])
  if len then return sock:receive(len) end
  if (headers["transfer-encoding"] or ""):lower():find("chunked", 1, true) then
    local parts = {}
    while true do
      local line, err = sock:receive("*l")
      if not line then return nil, err end
      local n = tonumber(line:match("^%x+"), 16)
      if not n then return nil, "bad chunk" end
      if n == 0 then return concat(parts) end
      local data
      data, err = sock:receive(n)
      if not data then return nil, err end
      parts[#parts + 1] = data
      sock:receive("*l")
    end
  end
  return sock:receive("*a")
end

-- post(base_url, path, authorization, form, timeout) -> status, doc (decoded JSON or {}) |
-- nil, err (kind "network" or "decode"; no credential in it).
function M.post(base_url, path, authorization, form, timeout, operation)
  local scheme, host, port = base_url:match("^(https?)://([^/:]+):?(%d*)")
  if not scheme then return nil, errors.new("refused", operation, "base_url is not http(s)") end
  port = tonumber(port) or (scheme == "https" and 443 or 80)
  local sock, err = connect(scheme, host, port, timeout or 10)
  if not sock then
    return nil, errors.new("network", operation, "cannot reach " .. host .. ": " .. tostring(err))
  end
  local prefix = base_url:match("^https?://[^/]+(/.-)/?$") or ""
  local req = concat({
    "POST " .. prefix .. path .. " HTTP/1.1", "Host: " .. host .. ":" .. port,
    "Authorization: " .. authorization, "Content-Type: application/x-www-form-urlencoded",
    "Accept: application/json", "Content-Length: " .. #form, "Connection: close", "", form }, "\r\n")
  local ok
  ok, err = sock:send(req)
  local status, headers, body
  if ok then
    local line
    line, err = sock:receive("*l")
    status = line and tonumber(line:match("^HTTP/%d%.%d (%d%d%d)"))
    headers = {}
    while status do
      local h
      h, err = sock:receive("*l")
      if not h then status = nil; break end
      if h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.-)%s*$")
      if k then headers[k:lower()] = v end
    end
    if status then body, err = read_body(sock, headers) end
  end
  sock:close()
  if not body then
    return nil, errors.new("network", operation, "no answer from " .. host .. ": " .. tostring(err))
  end
  if body == "" then return status, {} end
  local dok, doc = pcall(cjson.decode, body)
  if not dok or type(doc) ~= "table" then
    return nil, errors.new("decode", operation, "the OAuth endpoint did not answer JSON", { status = status })
  end
  return status, doc
end

return M
