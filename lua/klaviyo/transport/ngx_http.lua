-- klaviyo.transport.ngx_http: one HTTP/1.1 exchange over an nginx cosocket for the ngx
-- transport (klaviyo.transport.ngx, which drives the core's request steps): connect, send
-- the request the core built, read the answer, and name a failure as the libcurl transport
-- names it.
--
-- HTTP/1.1 with keepalive pools: the pool name holds scheme, host, port, SNI name and the TLS
-- verification setting, so verified and unverified connections never share a pool. A
-- connection is pooled only after a complete response that allows it; one that failed
-- anywhere is closed. TLS always verifies the peer (lua_ssl_trusted_certificate must name the
-- CA bundle) and sends SNI. Bodies: Content-Length, chunked, or up to the close; none is
-- decoded (only the identity encoding is asked for).
--
-- The libcurl transport's limits hold here too: `timeout` bounds the whole request (connect,
-- send and every read take the time left, so an answer dripped byte by byte cannot outlast
-- it), a body over the core's cap (core.MAX_BODY) and headers over libcurl's sizes fail with
-- response_too_large, and each failure gets the code libcurl's would.
local ngx = ngx
local type, tostring, tonumber = type, tostring, tonumber
local ipairs = ipairs
local concat, ceil, min = table.concat, math.ceil, math.min
local format, lower, find, match = string.format, string.lower, string.find, string.match
local gmatch = string.gmatch
local sub, byte = string.sub, string.byte
local co_status = coroutine.status

local errors = require "klaviyo.errors"
local core = require "klaviyo.core"

local _M = {}

-- The error table the core gives for a transport failure (kind, code, title, detail, sent).
local function fail(op_id, code, sent, fmt, ...)
  local detail = format(fmt, ...)
  return nil, errors.new("transport", op_id, detail, {
    code = code, title = "Transport failure", sent = sent,
    message = op_id .. ": " .. detail,
  })
end

-- "https://host:port/path?q" -> scheme, host, port, target ("/path?q"), Host header value.
local function parse_url(url)
  local scheme, authority, target = match(url, "^(https?)://([^/?#]+)(.*)$")
  if not scheme then return nil end
  local host, port = match(authority, "^%[([%x:.]+)%]:?(%d*)$")   -- IPv6 literal
  if not host then host, port = match(authority, "^([^:]+):?(%d*)$") end
  if not host then return nil end
  local default = scheme == "https" and 443 or 80
  port = port ~= "" and tonumber(port) or default
  if target == "" then target = "/" end
  local hosthdr = (port == default) and authority:gsub(":%d+$", "") or authority
  return scheme, host, port, target, hosthdr
end

-- Limits of an answer, the libcurl transport's: the body cap is the core's (core.MAX_BODY); a
-- header line over 100 KB, or status and header lines over 300 KB in all (interim answers
-- included), are refused as libcurl refuses them.
local MAX_BODY = core.MAX_BODY
local MAX_LINE = 100 * 1024
local MAX_HEADERS = 300 * 1024
local READ_SIZE = 65536

local function clock()
  ngx.update_time()
  return ngx.now()
end

-- Every wait on the socket (connect, send, each read) gets the time left before the
-- request's deadline, so a server that drips its answer cannot stretch the request past
-- `timeout`. Returns false when the deadline has passed.
local function arm(sock, deadline, connect_ms)
  local left = ceil((deadline - clock()) * 1000)
  if left <= 0 then return false end
  sock:settimeouts(connect_ms and min(connect_ms, left) or left, left, left)
  return true
end

-- The answer is read with receiveany into r.buf (from r.pos on), never with a pattern or a
-- size the server can stretch: r = {sock =, deadline =, buf =, pos =, head =}; r.head counts
-- the bytes of every status and header line read (interim answers too), as libcurl counts
-- them against its cap.
local function fill(r)
  if not arm(r.sock, r.deadline) then return nil, "timeout" end
  local data, err = r.sock:receiveany(READ_SIZE)
  if not data then return nil, err end
  if r.pos > #r.buf then r.buf = data else r.buf = sub(r.buf, r.pos) .. data end
  r.pos = 1
  return true
end

-- One line (CRLF or LF) of at most MAX_LINE bytes: line | nil, err, partial (bytes of an
-- unfinished line had arrived).
local function read_line(r)
  local seen = 0   -- bytes of the line already searched
  while true do
    local buf, pos = r.buf, r.pos
    local e = find(buf, "\n", pos + seen, true)
    if e then
      if e - pos > MAX_LINE then return nil, "line too long" end
      r.pos = e + 1
      if e > pos and byte(buf, e - 1) == 13 then e = e - 1 end
      return sub(buf, pos, e - 1)
    end
    seen = #buf - pos + 1
    if seen > MAX_LINE then return nil, "line too long" end
    local ok, err = fill(r)
    if not ok then return nil, err, seen > 0 end
  end
end

-- The next n bytes, appended to `parts` (or dropped when parts is false): true | nil, err.
local function read_bytes(r, n, parts)
  while n > 0 do
    local buf, pos = r.buf, r.pos
    local have = #buf - pos + 1
    if have <= 0 then
      local ok, err = fill(r)
      if not ok then return nil, err end
    else
      local take = have < n and have or n
      if parts then parts[#parts + 1] = sub(buf, pos, pos + take - 1) end
      r.pos = pos + take
      n = n - take
    end
  end
  return true
end

-- Counts a status or header line (with its line end) in r.head: false once over MAX_HEADERS.
local function count_head(r, line)
  r.head = r.head + #line + 2
  return r.head <= MAX_HEADERS
end

-- Reads a header block (after the status line): lowercase name -> value, or a list of
-- values for a repeated name. Returns headers or nil, err. A NUL byte or a line without a
-- colon makes the answer invalid; a line starting with white space continues the previous one.
local function read_headers(r)
  local h, last = {}, nil
  while true do
    local line, err = read_line(r)
    if not line then return nil, err end
    if line == "" then return h end
    if not count_head(r, line) then return nil, "headers too long" end
    if find(line, "\0", 1, true) then return nil, "NUL byte in a header" end
    local name, value = match(line, "^([^:]+):%s*(.-)%s*$")
    if last and find(line, "^[ \t]") then
      name, value = last, match(line, "^%s*(.-)%s*$")
      local old = h[name]
      if type(old) == "table" then old[#old] = old[#old] .. " " .. value
      else h[name] = old .. " " .. value end
    elseif not name or find(name, "^%s") then
      return nil, "header line without a colon"
    else
      name = lower(match(name, "^(.-)%s*$"))
      last = name
      local old = h[name]
      if old == nil then h[name] = value
      elseif type(old) == "table" then old[#old + 1] = value
      else h[name] = { old, value } end
    end
  end
end

-- A header HTTP defines as a comma-separated list (Connection, Transfer-Encoding,
-- Content-Encoding), lowercase, every copy of it joined: a repeated one says what all its
-- copies say, not what its last says. nil when absent.
local function list_header(h, name)
  local v = h[name]
  if type(v) == "table" then v = concat(v, ", ") end
  return v and lower(v)
end

-- The codings a Content-Encoding or Transfer-Encoding list names, in order and joined by
-- commas, leaving out identity (no coding) and empty items: "" when it names none.
local function codings(list)
  local out = {}
  for coding in gmatch(list or "", "[^,]+") do
    coding = match(coding, "^%s*(.-)%s*$")
    if coding ~= "" and coding ~= "identity" then out[#out + 1] = coding end
  end
  return concat(out, ",")
end

-- Content-Length: a count of at most 18 digits, the same in every copy of the header;
-- n | nil (absent) | false (invalid).
local function content_length(h)
  local v = h["content-length"]
  if v == nil then return nil end
  if type(v) == "table" then
    for i = 2, #v do if v[i] ~= v[1] then return false end end
    v = v[1]
  end
  if not match(v, "^%d+$") or #v > 18 then return false end
  return tonumber(v)
end

-- Reads a body of n bytes; over MAX_BODY, reads past the cap (dropping the bytes) and fails
-- as the libcurl transport fails: when a byte over the cap arrives. body | nil, err.
local function read_sized(r, n)
  if n > MAX_BODY then
    local ok, err = read_bytes(r, MAX_BODY + 1, false)
    return nil, ok and "too large" or err
  end
  local parts = {}
  local ok, err = read_bytes(r, n, parts)
  if not ok then return nil, err end
  return concat(parts)
end

-- Reads a chunked body; returns body or nil, err.
local function read_chunked(r)
  local parts, total = {}, 0
  while true do
    local line, err = read_line(r)
    if not line then return nil, err end
    local hex, rest = match(line, "^(%x+)(.*)$")
    if not hex or not (rest == "" or find(rest, "^[ \t]*;") or find(rest, "^[ \t]*$"))
       or #(match(hex, "^0*(.*)$")) > 15 then
      return nil, "bad chunk size line"
    end
    local size = tonumber(hex, 16)
    if size == 0 then
      local _, terr = read_headers(r)   -- trailers, then the final empty line
      if terr then return nil, terr end
      return concat(parts)
    end
    if total + size > MAX_BODY then
      local ok, rerr = read_bytes(r, MAX_BODY - total + 1, false)
      return nil, ok and "too large" or rerr
    end
    total = total + size
    local ok, derr = read_bytes(r, size, parts)
    if not ok then return nil, derr end
    local crlf, cerr = read_line(r)
    if crlf ~= "" then return nil, cerr or "bad chunk terminator" end
  end
end

-- Reads a body delimited by the close of the connection; body | nil, err.
local function read_to_close(r)
  local parts, total = {}, 0
  while true do
    local have = #r.buf - r.pos + 1
    if have > 0 then
      total = total + have
      if total > MAX_BODY then return nil, "too large" end
      parts[#parts + 1] = r.pos == 1 and r.buf or sub(r.buf, r.pos)
      r.buf, r.pos = "", 1
    end
    local ok, err = fill(r)
    if not ok then
      if err == "closed" then return concat(parts) end
      return nil, err
    end
  end
end

-- Sends `b` (from c:build) on a connected socket and reads the answer before `deadline`.
-- Returns status, headers, body, reusable | nil, stage ("send", "status", "body"), err, got
-- (got: some of the response arrived).
local function exchange(sock, b, target, hosthdr, deadline)
  local req = { b.method, " ", target, " HTTP/1.1\r\nHost: ", hosthdr, "\r\n" }
  for _, h in ipairs(b.headers) do
    req[#req + 1] = h[1]; req[#req + 1] = ": "; req[#req + 1] = h[2]; req[#req + 1] = "\r\n"
  end
  local body = b.body
  if body ~= nil or b.method == "POST" or b.method == "PUT" or b.method == "PATCH" then
    req[#req + 1] = "Content-Length: " .. #(body or "") .. "\r\n"
  end
  req[#req + 1] = "\r\n"
  if body then req[#req + 1] = body end
  if not arm(sock, deadline) then return nil, "send", "timeout", false end
  local ok, err = sock:send(req)
  if not ok then return nil, "send", err, false end

  local r = { sock = sock, deadline = deadline, buf = "", pos = 1, head = 0 }
  local line, status, version, partial
  repeat   -- skips 1xx interim answers
    line, err, partial = read_line(r)
    if not line then
      -- a cut status line, or interim answers only, count as no answer (as with libcurl)
      if partial and err == "closed" then return nil, "status", "closed", false end
      return nil, "status", err, partial
    end
    if not count_head(r, line) then return nil, "status", "headers too long", true end
    if find(line, "\0", 1, true) then return nil, "status", "bad status line", true end
    local rest
    version, status, rest = match(line, "^HTTP/(1%.[01]) ([1-9]%d%d)(.*)$")
    if not status or (rest ~= "" and byte(rest) ~= 32) then return nil, "status", "bad status line", true end
    status = tonumber(status)
    local headers, herr = read_headers(r)
    if not headers then return nil, "body", herr, true end
    if status >= 200 or status == 101 then
      local reusable = version == "1.1"
      local conn = list_header(headers, "connection")
      if conn then
        if find(conn, "close", 1, true) then reusable = false
        elseif find(conn, "keep-alive", 1, true) then reusable = true end
      end
      local te, cl = codings(list_header(headers, "transfer-encoding")), content_length(headers)
      local rbody
      if b.method == "HEAD" or status == 204 or status == 304 then
        rbody = ""
        -- a body a 204 carries anyway would be read as the next answer
        if status == 204 and (te ~= "" or (cl and cl > 0)) then reusable = false end
      elseif codings(list_header(headers, "content-encoding")) ~= "" or (te ~= "" and te ~= "chunked") then
        -- nothing was asked for but the identity encoding, and nothing but chunking is undone
        -- here: a transfer coding overrides Content-Length, so the body cannot be framed by it
        return nil, "body", "bad encoding", true
      elseif te == "chunked" then
        rbody, err = read_chunked(r)
      elseif cl == false then
        return nil, "body", "bad Content-Length", true
      elseif cl then
        rbody, err = read_sized(r, cl)
      else
        rbody, err = read_to_close(r)
        reusable = false
      end
      if not rbody then return nil, "body", err, true end
      if r.pos <= #r.buf then reusable = false end   -- bytes past the answer
      return status, headers, rbody, reusable
    end
  until false
end

-- sock:connect(host, port, opts) given up after `seconds`: ok | nil, err ("timeout"). nginx
-- resolves a host name with its resolver, within the resolver_timeout of nginx.conf (30 s by
-- default) and not the caller's, so a connect by name runs in a light thread that is killed
-- when the time is up. An IP address is not resolved, and a pooled connection is taken at
-- once: neither waits in the thread. The Redis limiter store connects with it too.
local function connect_within(sock, host, port, opts, seconds)
  if match(host, "^[%d.]+$") or find(host, ":", 1, true) then return sock:connect(host, port, opts) end
  local spawn = ngx.thread.spawn
  local th = spawn(function() return sock:connect(host, port, opts) end)
  local timer = co_status(th) ~= "dead" and spawn(function()
    ngx.sleep(seconds > 0.001 and seconds or 0.001)   -- the time left may have just run out
    return nil, "timeout"
  end)
  local done, ok, err
  if timer then
    done, ok, err = ngx.thread.wait(th, timer)
    ngx.thread.kill(timer)
    ngx.thread.kill(th)
  else
    done, ok, err = ngx.thread.wait(th)
  end
  if not done then return nil, tostring(ok) end   -- the connect raised
  return ok, err
end

-- Connects (or takes a pooled connection) and runs the TLS handshake on a new one, each
-- within the connect timeout (connect_ms) and before `deadline`: sock | nil, err, stage.
local function connect(connect_ms, scheme, host, port, deadline)
  local sock, err = ngx.socket.tcp()
  if not sock then return nil, err end
  if not arm(sock, deadline, connect_ms) then return nil, "timeout", "connect" end
  local tls = scheme == "https"
  -- verified and unverified connections never share a pool: TLS always verifies here, and
  -- the name says so for whoever shares the worker's pools.
  local pool = format("klaviyo:%s:%s:%d:%s", scheme, host, port, tls and "verify:" .. host or "plain")
  local ok
  ok, err = connect_within(sock, host, port, { pool = pool }, min(connect_ms / 1000, deadline - clock()))
  if not ok then
    sock:close()
    return nil, err, "connect"
  end
  if tls and sock:getreusedtimes() == 0 then
    if not arm(sock, deadline, connect_ms) then sock:close(); return nil, "timeout", "connect" end
    ok, err = sock:sslhandshake(nil, host, true)
    if not ok then sock:close(); return nil, err, "tls" end
  end
  return sock
end

-- A failure to connect (stage "connect" or "tls"), as the libcurl transport names it: running
-- out of time is connect_timeout at any stage, as libcurl's connect timeout covers the handshake.
local function connect_error(op_id, stage, err, host, port)
  err = tostring(err)
  if err == "timeout" then
    return fail(op_id, "connect_timeout", false,
      "timed out before the request was sent (%s %s:%d)", stage == "tls" and "TLS handshake with" or
      "connect to", host, port)
  end
  if stage == "tls" then
    return fail(op_id, "tls_failed", false,
      "TLS handshake or certificate verification failed (%s; is lua_ssl_trusted_certificate set?)", err)
  end
  if find(err, "resolve", 1, true) or find(err, "resolver", 1, true) then
    return fail(op_id, "dns_failed", false,
      "could not resolve host (%s; nginx needs a resolver directive for host names)", err)
  end
  return fail(op_id, "connect_failed", false, "could not connect (%s:%d: %s)", host, port, err)
end

-- What failed after the connection was made, as the libcurl transport names it.
local function exchange_error(op_id, stage, err, got)
  if err == "timeout" then
    return fail(op_id, "timeout", true, got and "timed out reading the response (%s)"
      or "timed out waiting for the response (%s)", err)
  end
  if err == "too large" then
    return fail(op_id, "response_too_large", true, "the response body is over %d MB", MAX_BODY / 1048576)
  end
  if err == "line too long" or err == "headers too long" then
    return fail(op_id, "response_too_large", true,
      "the response's headers are too long (a line over %d KB or all over %d KB)", MAX_LINE / 1024,
      MAX_HEADERS / 1024)
  end
  if err == "bad encoding" then
    return fail(op_id, "bad_encoding", true,
      "the response's content encoding could not be decoded (only identity was asked for)")
  end
  if stage == "send" then
    return fail(op_id, "connection_reset", true, "connection lost while sending the request (%s)", err)
  end
  if stage == "status" and not got then
    if err == "closed" then
      return fail(op_id, "empty_reply", true, "the server closed the connection without answering (%s)", err)
    end
    return fail(op_id, "connection_reset", true, "connection reset before a response (%s)", err)
  end
  if err == "bad status line" or err == "bad Content-Length" or err == "NUL byte in a header"
      or err == "header line without a colon" then
    return fail(op_id, "bad_reply", true, "the server's reply is not valid HTTP (%s)", err)
  end
  return fail(op_id, "truncated", true, "connection lost while reading the response (%s)", tostring(err))
end

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true, OPTIONS = true }

-- One HTTP exchange for built request `b` (c:begin's), within t.timeout from connect to the
-- last byte (t: the transport's settings: timeout, connect_ms, keepalive_ms, pool_size):
-- status, headers, body | nil, err (a transport failure as the core names it).
function _M.perform(t, b, op_id)
  local scheme, host, port, target, hosthdr = parse_url(b.url)
  if not scheme then
    return fail(op_id, "unsupported_protocol", false, "unsupported URL for the ngx transport: %s", b.url)
  end
  local deadline = clock() + t.timeout
  for attempt = 1, 2 do
    local sock, err, stage = connect(t.connect_ms, scheme, host, port, deadline)
    if not sock then return connect_error(op_id, stage, err, host, port) end
    local reused = sock:getreusedtimes() > 0
    local status, headers, body, reusable = exchange(sock, b, target, hosthdr, deadline)
    if status then
      if reusable then sock:setkeepalive(t.keepalive_ms, t.pool_size) else sock:close() end
      return status, headers, body
    end
    sock:close()   -- failed mid-exchange: never pooled
    local got
    stage, err, got = headers, body, reusable
    -- A pooled connection the server had already closed: nothing of an answer came back.
    -- Only a request that HTTP says may be repeated (GET, HEAD, PUT, DELETE) is tried once
    -- more on a fresh connection; a POST or PATCH may have been acted on, so its failure is
    -- reported (sent = true) and the core's retry rule decides.
    if not (reused and not got and IDEMPOTENT[b.method] and attempt == 1
            and (err == "closed" or err == "connection reset by peer")) then
      return exchange_error(op_id, stage, err, got)
    end
  end
end

-- nginx's clock, brought up to date (the driver times its hooks with it)
_M.clock = clock
_M.connect_within = connect_within

return _M
