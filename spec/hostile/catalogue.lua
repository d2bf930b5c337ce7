-- The catalogue of hostile inputs: what a hostile server answers and what a careless caller
-- passes, each with the result the client must give. spec/hostile/curl_spec.lua runs every
-- case through the libcurl transport (klaviyo.new in the busted process), and
-- spec/hostile/ngx_spec.lua through the cosocket transport inside nginx; spec/hostile/server.lua
-- plays the server side. Data only, so the server, both runners and nginx read one list.
--
-- A case: {
--   name,                 unique; also what the server is told to play
--   server = {steps},     the answer (spec/hostile/server.lua lists the steps); absent: a
--                         plain 200 JSON answer
--   call = {op, params},  what the client calls (default get_profiles, no parameters)
--   opts = {...},         extra klaviyo.new options (defaults: the server as base_url, a
--                         private key, timeout = 2, retry = {attempts = 1})
--   pages = true,         iterate client:pages and check the first failing page
--   twice = true,         call twice on one client and check the second call
--   expect = "ok" | {kind =, code =, status =, ...: fields the error must have} |
--            {error = true: any nil, err} | {raise = text: a programmer error raised with it},
--   curl = {...}, ngx = {...}   the expectation for one transport where it differs ({ok = true}:
--                         success), with `why`
--   within = s,           the call must return in less than s seconds
--   requests = n,         how many requests the server must receive (libcurl; caller cases: 0)
--   isolate = true,       libcurl runs it in a child process: the defect it covers hangs or
--                         corrupts the process until fixed
--   ngx_skip = why,       not run inside nginx (the value cannot travel as JSON to the test bed)
-- }
local M = {}

local CRLF = "\r\n"
local JSONAPI = "Content-Type: application/vnd.api+json"
local OK_BODY = '{"data":[]}'

local function answer(status, headers, body)
  return { { respond = status, headers = headers or { JSONAPI }, body = body or OK_BODY } }
end
local function raw(...) local t = {} for i, s in ipairs { ... } do t[i] = { send = s } end return t end
local function json_error(status, code, detail, extra)
  local body = string.format('{"errors":[{"status":"%d","code":"%s","title":"t","detail":"%s"%s}]}',
    status, code, detail, extra or "")
  return answer(string.format("HTTP/1.1 %d X", status), { JSONAPI }, body)
end
local function rep(s, n) return string.rep(s, n) end
local function nested(n)
  return rep('{"a":', n) .. "1" .. rep("}", n)
end
local function chunked(body_chunks)
  return { { respond = "HTTP/1.1 200 OK", headers = { JSONAPI, "Transfer-Encoding: chunked" },
             body = body_chunks } }
end
local function ratelimit(headers)
  local h = { JSONAPI }
  for _, x in ipairs(headers) do h[#h + 1] = x end
  return answer("HTTP/1.1 200 OK", h)
end
local function too_many(retry_after)
  local h = { JSONAPI, "Retry-After: " .. retry_after }
  return { { respond = "HTTP/1.1 429 Too Many Requests", headers = h,
             body = '{"errors":[{"status":"429","code":"throttled","title":"t","detail":"slow down"}]}' } }
end
local function page(next_link)
  return answer("HTTP/1.1 200 OK", nil,
    '{"data":[{"type":"profile","id":"p1"}],"links":{"next":' .. next_link .. '}}')
end

local OK = "ok"
local function tr(code) return { kind = "transport", code = code } end
local function http(status) return { kind = "http", status = status } end
local DECODE = { kind = "decode" }
local REFUSED = { kind = "refused" }
-- A links.next the client must refuse to follow: the first page's request is the only one.
local function refused_next(name, next_link)
  return { name = name, pages = true, server = page(next_link), expect = REFUSED, requests = 1 }
end
local MB = 1024 * 1024
-- retries allowed, for the Retry-After cases: a wait longer than max_time must fail at once
local RETRY3 = { retry = { attempts = 3, max_time = 2 } }
local T429 = { kind = "http", status = 429 }
-- libcurl's answers where they differ from the cosocket transport's (the curl transport is not
-- changed here: these record what it does)
local NOT_HTTP_CURL = { kind = "transport", code = "unsupported_protocol",
                        why = "libcurl's code for an answer that is not HTTP/1.x or 2" }
local GZIP_HEAD = "HTTP/1.1 200 OK" .. CRLF .. "Content-Type: application/vnd.api+json" .. CRLF ..
  "Content-Encoding: gzip" .. CRLF

M.cases = {
  -- status line ------------------------------------------------------------------------------
  { name = "empty reply", server = {}, expect = tr "empty_reply" },
  { name = "reset before any answer", server = { { reset = true } }, expect = tr "connection_reset" },
  { name = "not HTTP at all", server = raw("hello there" .. CRLF .. CRLF), expect = tr "bad_reply",
    curl = NOT_HTTP_CURL },
  { name = "status code not a number", server = raw("HTTP/1.1 abc OK" .. CRLF .. CRLF),
    expect = tr "bad_reply", curl = NOT_HTTP_CURL },
  { name = "status code of two digits", server = raw("HTTP/1.1 99 Odd" .. CRLF .. CRLF),
    expect = tr "bad_reply", curl = NOT_HTTP_CURL },
  { name = "status code of four digits", server = answer("HTTP/1.1 2000 OK"), expect = tr "bad_reply",
    curl = NOT_HTTP_CURL },
  { name = "status 600", server = answer("HTTP/1.1 600 Beyond"), expect = http(600) },
  { name = "status 999 with HTML", server = answer("HTTP/1.1 999 X", { "Content-Type: text/html" },
    "<html>no</html>"), expect = http(999) },
  { name = "HTTP/9.9 version", server = answer("HTTP/9.9 200 OK"), expect = tr "bad_reply",
    curl = NOT_HTTP_CURL },
  { name = "status without a reason", server = answer("HTTP/1.1 200"), expect = OK },
  { name = "status line then close", server = raw("HTTP/1.1 200 OK" .. CRLF), expect = tr "truncated" },
  { name = "half a status line then close", server = raw("HTTP/1.1 20"), expect = tr "empty_reply" },
  { name = "NUL in the status line", server = answer("HTTP/1.1 200 O\0K"), expect = tr "bad_reply" },
  { name = "status line of 200 KB", server = answer("HTTP/1.1 200 " .. rep("K", 200 * 1024)),
    expect = { kind = "transport" }, isolate = true },
  { name = "LF-only line endings", server = raw("HTTP/1.1 200 OK\nContent-Type: application/json\n" ..
    "Content-Length: 11\n\n" .. OK_BODY), expect = OK },
  { name = "HTTP/1.0 answer delimited by the close",
    server = raw("HTTP/1.0 200 OK" .. CRLF .. JSONAPI .. CRLF .. CRLF .. OK_BODY), expect = OK },
  { name = "headers never end", server = raw("HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF),
    expect = tr "truncated" },

  -- interim and bodiless answers -------------------------------------------------------------
  { name = "100 Continue before the answer",
    server = { { send = "HTTP/1.1 100 Continue" .. CRLF .. CRLF },
               { respond = "HTTP/1.1 200 OK", headers = { JSONAPI }, body = OK_BODY } }, expect = OK },
  { name = "fifty 102 Processing before the answer",
    server = { { fill = "HTTP/1.1 102 Processing" .. CRLF .. CRLF, times = 50 },
               { respond = "HTTP/1.1 200 OK", headers = { JSONAPI }, body = OK_BODY } }, expect = OK },
  { name = "1xx then close", server = raw("HTTP/1.1 100 Continue" .. CRLF .. CRLF),
    expect = tr "empty_reply" },
  { name = "204 with a body", server = raw("HTTP/1.1 204 No Content" .. CRLF .. "Content-Length: 11" ..
    CRLF .. CRLF .. OK_BODY), expect = OK },
  { name = "304 Not Modified", server = answer("HTTP/1.1 304 Not Modified", {}, ""), expect = http(304) },
  { name = "200 with Content-Length 0", server = answer("HTTP/1.1 200 OK", { JSONAPI }, ""), expect = OK },

  -- headers ---------------------------------------------------------------------------------
  { name = "header line of 200 KB", server = answer("HTTP/1.1 200 OK", { JSONAPI, "X-Big: " ..
    rep("b", 200 * 1024) }), expect = { kind = "transport" }, isolate = true },
  { name = "a thousand headers", server = (function()
      local h = { JSONAPI }
      for i = 1, 1000 do h[#h + 1] = "X-H" .. i .. ": v" end
      return answer("HTTP/1.1 200 OK", h)
    end)(), expect = OK },
  { name = "header block of 1 MB in 10 KB lines", server = (function()
      local h = { JSONAPI }
      for i = 1, 100 do h[#h + 1] = "X-H" .. i .. ": " .. rep("v", 10 * 1024) end
      return answer("HTTP/1.1 200 OK", h)
    end)(), expect = { kind = "transport" } },
  { name = "header line without a colon", server = answer("HTTP/1.1 200 OK", { JSONAPI, "NoColonHere" }),
    expect = tr "bad_reply" },
  { name = "NUL in a header value", server = answer("HTTP/1.1 200 OK", { JSONAPI, "X-Nul: a\0b" }),
    expect = tr "bad_reply" },
  { name = "header name with spaces", server = answer("HTTP/1.1 200 OK", { JSONAPI, "X Bad Name: v" }),
    expect = OK },
  { name = "duplicate Content-Type", server = answer("HTTP/1.1 200 OK", { JSONAPI,
    "Content-Type: text/html" }),
    expect = OK },
  { name = "duplicate equal Content-Length", server = answer("HTTP/1.1 200 OK",
    { JSONAPI, "Content-Length: 11", "Content-Length: 11" }), expect = OK },
  { name = "duplicate different Content-Length", server = answer("HTTP/1.1 200 OK",
    { JSONAPI, "Content-Length: 11", "Content-Length: 5" }), expect = tr "bad_reply",
    curl = { kind = "decode", why = "libcurl takes the last Content-Length" } },
  { name = "negative Content-Length", server = answer("HTTP/1.1 200 OK", { JSONAPI, "Content-Length: -1" }),
    expect = tr "bad_reply" },
  { name = "Content-Length not a number", server = answer("HTTP/1.1 200 OK",
    { JSONAPI, "Content-Length: eleven" }), expect = tr "bad_reply" },
  { name = "Content-Length beyond 64 bits", server = answer("HTTP/1.1 200 OK",
    { JSONAPI, "Content-Length: 99999999999999999999999" }), expect = tr "bad_reply",
    curl = { ok = true, why = "libcurl ignores a length it cannot read and reads to the close" } },
  { name = "Content-Length shorter than the body", server = raw("HTTP/1.1 200 OK" .. CRLF ..
    JSONAPI .. CRLF .. "Content-Length: 11" .. CRLF .. CRLF .. OK_BODY .. "garbage after"), expect = OK },
  { name = "Content-Length longer than the body", server = raw("HTTP/1.1 200 OK" .. CRLF ..
    JSONAPI .. CRLF .. "Content-Length: 500" .. CRLF .. CRLF .. OK_BODY), expect = tr "truncated" },
  { name = "Content-Length over the cap, little sent", server = raw("HTTP/1.1 200 OK" .. CRLF ..
    JSONAPI .. CRLF .. "Content-Length: 314572800" .. CRLF .. CRLF .. OK_BODY), expect = tr "truncated" },
  { name = "many Set-Cookie headers", server = (function()
      local h = { JSONAPI }
      for i = 1, 50 do h[#h + 1] = "Set-Cookie: c" .. i .. "=v" end
      return answer("HTTP/1.1 200 OK", h)
    end)(), expect = OK },
  { name = "folded header line", server = answer("HTTP/1.1 200 OK", { JSONAPI, "X-Fold: a", " b" }),
    expect = OK },
  { name = "Connection: close on a 200", server = answer("HTTP/1.1 200 OK", { JSONAPI, "Connection: close" }),
    expect = OK },
  { name = "Connection: keep-alive then close", server = answer("HTTP/1.1 200 OK",
    { JSONAPI, "Connection: keep-alive" }), expect = OK },

  -- bodies over the cap and encodings ------------------------------------------------------
  { name = "body over the cap with Content-Length", within = 20,
    server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF .. "Content-Length: " ..
      (80 * MB) .. CRLF .. CRLF }, { fill = rep("x", MB), times = 80 } },
    expect = tr "response_too_large" },
  { name = "body over the cap delimited by the close", within = 20,
    server = { { send = "HTTP/1.0 200 OK" .. CRLF .. JSONAPI .. CRLF .. CRLF },
               { fill = rep("x", MB), times = 80 } },
    expect = tr "response_too_large" },
  { name = "body over the cap in chunks", within = 20,
    server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF .. "Transfer-Encoding: chunked" ..
      CRLF .. CRLF }, { fill = "100000" .. CRLF .. rep("x", MB) .. CRLF, times = 80 } },
    expect = tr "response_too_large" },
  { name = "body of 300 MB", within = 20,
    server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF .. "Content-Length: " ..
      (300 * MB) .. CRLF .. CRLF }, { fill = rep("x", MB), times = 300 } },
    expect = tr "response_too_large" },
  { name = "body just under the cap", within = 20,
    server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF .. "Content-Length: " ..
      (60 * MB + 2) .. CRLF .. CRLF .. '"' }, { fill = rep("x", MB), times = 60 }, { send = '"' } },
    expect = OK },
  { name = "gzip bomb (200 MB of zeros)", server = { { gzip = 200 * MB, head = GZIP_HEAD } }, within = 20,
    expect = tr "response_too_large",
    ngx = { kind = "transport", code = "bad_encoding",
            why = "the cosocket transport asks for no encoding and decodes none" } },
  { name = "gzip that is not gzip", server = answer("HTTP/1.1 200 OK", { JSONAPI, "Content-Encoding: gzip" }),
    expect = tr "bad_encoding" },
  { name = "unknown content encoding", server = answer("HTTP/1.1 200 OK",
    { JSONAPI, "Content-Encoding: x-hostile" }), expect = tr "bad_encoding" },
  { name = "identity content encoding", server = answer("HTTP/1.1 200 OK",
    { JSONAPI, "Content-Encoding: identity" }), expect = OK },

  -- chunked encoding ---------------------------------------------------------------------------
  { name = "valid chunked body", server = chunked("5\r\n{\"dat\r\n6\r\na\":[]}\r\n0\r\n\r\n"), expect = OK },
  { name = "chunk size not hex", server = chunked("zz\r\n" .. OK_BODY .. "\r\n0\r\n\r\n"),
    expect = tr "truncated" },
  { name = "chunk size beyond 64 bits", server = chunked("fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
    expect = tr "truncated" },
  { name = "negative chunk size", server = chunked("-5\r\nabcde\r\n0\r\n\r\n"), expect = tr "truncated" },
  { name = "chunk shorter than its size", server = chunked("ff\r\n" .. OK_BODY), expect = tr "truncated" },
  { name = "no last chunk", server = chunked("b\r\n" .. OK_BODY .. "\r\n"), expect = tr "truncated" },
  { name = "chunk without its CRLF", server = chunked("b\r\n" .. OK_BODY .. "XX0\r\n\r\n"),
    expect = tr "truncated" },
  { name = "chunk extensions", server = chunked("b;name=value\r\n" .. OK_BODY .. "\r\n0\r\n\r\n"),
    expect = OK },
  { name = "chunked trailers", server = chunked("b\r\n" .. OK_BODY .. "\r\n0\r\nX-Trailer: t\r\n\r\n"),
    expect = OK },
  { name = "chunked and Content-Length", server = { { respond = "HTTP/1.1 200 OK",
    headers = { JSONAPI, "Transfer-Encoding: chunked", "Content-Length: 3" },
    body = "b\r\n" .. OK_BODY .. "\r\n0\r\n\r\n" } }, expect = OK },
  { name = "chunk size line of 200 KB", server = chunked(rep("0", 200 * 1024) .. "b\r\n" .. OK_BODY ..
    "\r\n0\r\n\r\n"), expect = { kind = "transport" } },
  { name = "a million one-byte chunks", within = 20, server = { { send = "HTTP/1.1 200 OK" .. CRLF ..
    JSONAPI .. CRLF .. "Transfer-Encoding: chunked" .. CRLF .. CRLF .. '1\r\n"\r\n' },
    { fill = rep("1\r\nx\r\n", 1000), times = 1000 }, { send = '1\r\n"\r\n0\r\n\r\n' } }, expect = OK,
    opts = { timeout = 15 } },

  -- timing: every wait counts against one deadline -----------------------------------------
  { name = "no answer", server = { { hold = 6 } }, opts = { timeout = 1 }, within = 3,
    expect = tr "timeout" },
  { name = "status line dripped past the timeout", opts = { timeout = 1 }, within = 3,
    server = { { drip = "HTTP/1.1 200 OK" .. CRLF .. CRLF, every = 0.2 } }, expect = tr "timeout" },
  { name = "headers dripped past the timeout", opts = { timeout = 1 }, within = 3,
    server = { { send = "HTTP/1.1 200 OK" .. CRLF }, { drip = JSONAPI .. CRLF .. CRLF, every = 0.2 } },
    expect = tr "timeout" },
  { name = "body dripped past the timeout", opts = { timeout = 1 }, within = 3,
    server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF .. "Content-Length: 40" .. CRLF ..
                 CRLF },
               { drip = '{"data":[],"x":"' .. rep("y", 22) .. '"}', every = 0.2 } },
    expect = tr "timeout" },
  { name = "chunked body dripped past the timeout", opts = { timeout = 1 }, within = 3,
    server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF .. "Transfer-Encoding: chunked" ..
      CRLF .. CRLF }, { drip = "b\r\n" .. OK_BODY .. "\r\n0\r\n\r\n", every = 0.2 } },
    expect = tr "timeout" },
  { name = "close-delimited body dripped past the timeout", opts = { timeout = 1 }, within = 3,
    server = { { send = "HTTP/1.0 200 OK" .. CRLF .. JSONAPI .. CRLF .. CRLF },
               { drip = OK_BODY .. rep(" ", 20), every = 0.2 } },
    expect = tr "timeout" },
  { name = "drip within the timeout", opts = { timeout = 3 }, within = 3,
    server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF .. "Content-Length: 11" .. CRLF ..
                 CRLF },
               { drip = OK_BODY, every = 0.05 } }, expect = OK },
  { name = "pause before a prompt answer", opts = { timeout = 3 }, within = 3,
    server = { { sleep = 0.5 }, { respond = "HTTP/1.1 200 OK", headers = { JSONAPI }, body = OK_BODY } },
    expect = OK },
  { name = "answer after the timeout", opts = { timeout = 1 }, within = 3,
    server = { { sleep = 1.6 }, { respond = "HTTP/1.1 200 OK", headers = { JSONAPI }, body = OK_BODY } },
    expect = tr "timeout" },

  -- connections cut short --------------------------------------------------------------------
  { name = "reset after the headers", server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF ..
    "Content-Length: 11" .. CRLF .. CRLF }, { sleep = 0.05 }, { reset = true } }, expect = tr "truncated" },
  { name = "reset mid-body", server = { { send = "HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF ..
    "Content-Length: 11" .. CRLF .. CRLF .. '{"da' }, { sleep = 0.05 }, { reset = true } },
    expect = tr "truncated" },
  { name = "reset mid-headers", server = { { send = "HTTP/1.1 200 OK" .. CRLF .. "X-A: b" },
    { sleep = 0.05 }, { reset = true } }, expect = tr "truncated" },
  { name = "close mid-body", server = raw("HTTP/1.1 200 OK" .. CRLF .. JSONAPI .. CRLF ..
    "Content-Length: 11" .. CRLF .. CRLF .. '{"da'), expect = tr "truncated" },
  { name = "close mid-headers", server = raw("HTTP/1.1 200 OK" .. CRLF .. "X-A: b"),
    expect = tr "truncated" },
  { name = "reset on a POST", call = { "create_event", { body = { data = { type = "event", attributes = {
      metric = { data = { type = "metric", attributes = { name = "M" } } },
      profile = { data = { type = "profile", attributes = { email = "a@example.com" } } },
      properties = {} } } } } },
    server = { { reset = true } }, expect = { kind = "transport", code = "connection_reset", sent = true } },

  -- 2xx bodies --------------------------------------------------------------------------------
  { name = "200 plain text", server = answer("HTTP/1.1 200 OK", { "Content-Type: text/plain" }, "hello"),
    expect = DECODE },
  { name = "200 HTML page", server = answer("HTTP/1.1 200 OK", { "Content-Type: text/html" },
    "<html><body>maintenance</body></html>"), expect = DECODE },
  { name = "200 empty JSON object", server = answer("HTTP/1.1 200 OK", nil, "{}"), expect = OK },
  { name = "200 JSON with an escaped NUL", server = answer("HTTP/1.1 200 OK", nil,
    '{"data":[],"x":"a\\u0000b"}'), expect = OK },
  { name = "200 with raw NUL bytes", server = answer("HTTP/1.1 200 OK", nil, '{"data":[\0\0]}'),
    expect = DECODE },
  { name = "200 JSON with invalid UTF-8", server = answer("HTTP/1.1 200 OK", nil,
    '{"data":[],"x":"\255\254\192\128"}'), expect = OK },
  { name = "200 JSON nested 100000 deep", server = answer("HTTP/1.1 200 OK", nil, rep("[", 100000) ..
    rep("]", 100000)), expect = DECODE },
  { name = "200 JSON nested 500 deep", server = answer("HTTP/1.1 200 OK", nil, nested(500)), expect = OK },
  { name = "200 JSON number 1e999", server = answer("HTTP/1.1 200 OK", nil, '{"data":[],"n":1e999}'),
    expect = OK, ngx_skip = "the test bed cannot send an infinite number back as JSON" },
  { name = "200 JSON duplicate keys", server = answer("HTTP/1.1 200 OK", nil, '{"data":[],"data":[]}'),
    expect = OK },
  { name = "200 JSON scalar document", server = answer("HTTP/1.1 200 OK", nil, '"just a string"'),
    expect = OK },
  { name = "200 JSON cut short", server = answer("HTTP/1.1 200 OK", nil, '{"data":[{"id":'),
    expect = DECODE },
  { name = "200 JSON with a byte order mark", server = answer("HTTP/1.1 200 OK", nil,
    "\239\187\191" .. OK_BODY),
    expect = DECODE },
  { name = "200 JSON string of 8 MB", server = answer("HTTP/1.1 200 OK", nil,
    '{"data":[],"x":"' .. rep("s", 8 * MB) .. '"}'), expect = OK },
  { name = "201 JSON with trailing garbage", server = answer("HTTP/1.1 201 Created", nil, OK_BODY .. "]]]"),
    expect = DECODE },

  -- error answers ----------------------------------------------------------------------------
  { name = "400 not JSON", server = answer("HTTP/1.1 400 Bad Request", { "Content-Type: text/plain" },
    "bad"), expect = http(400) },
  { name = "500 not JSON", server = answer("HTTP/1.1 500 Oops", { "Content-Type: text/plain" }, "oops"),
    expect = http(500) },
  { name = "403 HTML page", server = answer("HTTP/1.1 403 Forbidden", { "Content-Type: text/html" },
    "<html><h1>403 Forbidden</h1></html>"), expect = http(403) },
  { name = "520 Cloudflare page", server = answer("HTTP/1.1 520 Origin Error", { "Content-Type: text/html" },
    "<!DOCTYPE html><html><title>Web server is returning an unknown error</title></html>"),
    expect = http(520) },
  { name = "502 empty body", server = answer("HTTP/1.1 502 Bad Gateway", {}, ""), expect = http(502) },
  { name = "503 JSON:API error", server = json_error(503, "unavailable", "down"),
    expect = { kind = "http", status = 503, code = "unavailable" } },
  { name = "400 errors is a string", server = answer("HTTP/1.1 400 X", nil, '{"errors":"nope"}'),
    expect = http(400) },
  { name = "400 errors is empty", server = answer("HTTP/1.1 400 X", nil, '{"errors":[]}'),
    expect = http(400) },
  { name = "400 errors[1] is a number", server = answer("HTTP/1.1 400 X", nil, '{"errors":[5]}'),
    expect = http(400) },
  { name = "400 fields of the wrong types", server = answer("HTTP/1.1 400 X", nil,
    '{"errors":[{"code":5,"title":[],"detail":{},"source":"x","meta":7}]}'), expect = http(400) },
  { name = "400 detail of 100 KB", server = json_error(400, "invalid", rep("d", 100 * 1024)),
    expect = { kind = "http", status = 400, code = "invalid" } },
  { name = "400 meta nested 60 deep", server = json_error(400, "invalid", "deep", ',"meta":' .. nested(60)),
    expect = { kind = "http", status = 400, code = "invalid" }, isolate = true },
  { name = "400 meta nested 900 deep", server = json_error(400, "invalid", "deep", ',"meta":' .. nested(900)),
    expect = { kind = "http", status = 400 }, isolate = true },
  { name = "401 JSON:API error", server = json_error(401, "not_authenticated", "who"),
    expect = { kind = "http", status = 401, code = "not_authenticated" } },
  { name = "404 not JSON", server = answer("HTTP/1.1 404 Not Found", { "Content-Type: text/plain" }, "nf"),
    expect = http(404) },
  { name = "400 NUL in detail", server = json_error(400, "invalid", "a\\u0000b"),
    expect = { kind = "http", status = 400, code = "invalid" } },
  { name = "400 invalid UTF-8 in detail", server = json_error(400, "invalid", "\255\254"),
    expect = { kind = "http", status = 400, code = "invalid" } },
  { name = "500 with a 10 MB body", server = answer("HTTP/1.1 500 X", { "Content-Type: text/plain" },
    rep("e", 10 * MB)), expect = http(500) },
  { name = "418 teapot JSON", server = json_error(418, "teapot", "short and stout"),
    expect = { kind = "http", status = 418 } },

  -- Retry-After and RateLimit-* ------------------------------------------------------------
  { name = "429 Retry-After 5", server = too_many("5"), expect = { kind = "http", status = 429,
    retry_after = 5 } },
  { name = "429 Retry-After 1e12", server = too_many("1e12"), opts = RETRY3, within = 1, isolate = true,
    expect = { kind = "throttled" } },
  { name = "429 Retry-After 1e999", server = too_many("1e999"), opts = RETRY3, within = 1, isolate = true,
    expect = { kind = "throttled" } },
  { name = "429 Retry-After -1", server = too_many("-1"), within = 1, expect = T429 },
  { name = "429 Retry-After NaN", server = too_many("NaN"), within = 1, expect = T429 },
  { name = "429 Retry-After far-future date", server = too_many("Fri, 31 Dec 9999 23:59:59 GMT"),
    opts = RETRY3, within = 1, isolate = true, expect = { kind = "throttled" } },
  { name = "429 Retry-After past date", server = too_many("Thu, 01 Jan 1970 00:00:00 GMT"), within = 1,
    expect = T429 },
  { name = "429 Retry-After empty", server = too_many(""), within = 1, expect = T429 },
  { name = "429 Retry-After hex", server = too_many("0x10"), within = 1, expect = T429 },
  { name = "429 Retry-After of 300 digits", server = too_many(rep("9", 300)), opts = RETRY3, within = 1,
    isolate = true, expect = { kind = "throttled" } },
  { name = "429 two Retry-After headers", within = 1,
    server = { { respond = "HTTP/1.1 429 X", headers = { JSONAPI, "Retry-After: 1", "Retry-After: 99999" },
                 body = '{"errors":[{"status":"429","code":"throttled","title":"t","detail":"d"}]}' } },
    expect = T429 },
  { name = "429 Retry-After 1e12, then a second call", server = too_many("1e12"), twice = true,
    within = 1, isolate = true, expect = { kind = "throttled" } },
  { name = "RateLimit-Remaining garbage", server = ratelimit { "RateLimit-Limit: x", "RateLimit-Remaining: y",
    "RateLimit-Reset: z" }, expect = OK },
  { name = "RateLimit-Reset 1e999", server = ratelimit { "RateLimit-Limit: 10", "RateLimit-Remaining: 0",
    "RateLimit-Reset: 1e999" }, expect = OK },
  { name = "RateLimit-Limit negative", server = ratelimit { "RateLimit-Limit: -5", "RateLimit-Remaining: -9",
    "RateLimit-Reset: -1" }, expect = OK },
  { name = "RateLimit-* NaN", server = ratelimit { "RateLimit-Limit: NaN", "RateLimit-Remaining: NaN",
    "RateLimit-Reset: NaN" }, expect = OK },
  { name = "RateLimit-Reset far-future", server = ratelimit { "RateLimit-Limit: 10",
    "RateLimit-Remaining: 0", "RateLimit-Reset: 99999999999999" }, expect = OK },
  { name = "RateLimit-* of 300 digits", server = ratelimit { "RateLimit-Limit: " .. rep("9", 300),
    "RateLimit-Remaining: " .. rep("9", 300), "RateLimit-Reset: " .. rep("9", 300) }, expect = OK },

  -- redirects (never followed) ---------------------------------------------------------------
  { name = "302 to another host", server = answer("HTTP/1.1 302 Found",
    { "Location: http://evil.example/steal", "Content-Type: text/html" }, ""), expect = http(302),
    requests = 1 },
  { name = "301 to a scheme-relative host", server = answer("HTTP/1.1 301 Moved",
    { "Location: //evil.example/", "Content-Type: text/html" }, ""), expect = http(301), requests = 1 },
  { name = "307 to javascript:", server = answer("HTTP/1.1 307 Temporary",
    { "Location: javascript:alert(1)", "Content-Type: text/html" }, ""), expect = http(307), requests = 1 },
  { name = "308 to this server's other path", server = answer("HTTP/1.1 308 Permanent",
    { "Location: /client/profiles/", "Content-Type: text/html" }, ""), expect = http(308), requests = 1 },

  -- links.next from the server ---------------------------------------------------------------
  refused_next("links.next to another host", '"http://evil.example/api/profiles/"'),
  refused_next("links.next to another port", '"http://127.0.0.1:1/api/profiles/"'),
  refused_next("links.next to /client/", '"http://127.0.0.1:@PORT@/client/profiles/"'),
  refused_next("links.next to //client/", '"http://127.0.0.1:@PORT@//client/profiles/"'),
  refused_next("links.next to /api/../client/", '"http://127.0.0.1:@PORT@/api/../client/profiles/"'),
  refused_next("links.next with CR/LF", '"http://127.0.0.1:@PORT@/api/profiles/\\r\\nX-Evil: 1"'),
  refused_next("links.next with NUL", '"http://127.0.0.1:@PORT@/api/profiles/\\u0000evil"'),
  refused_next("links.next https downgrade to http host", '"ftp://127.0.0.1:@PORT@/api/profiles/"'),
  { name = "links.next a number", pages = true, server = page("42"), expect = OK, requests = 1 },

  -- hostile callers: nothing may be sent -----------------------------------------------------
  { name = "NUL in a path value", call = { "get_profile", { id = "abc\0def" } },
    expect = { raise = "parameter id" }, requests = 0 },
  { name = "NUL in a filter", call = { "get_profiles", { filter = 'equals(email,"a\0b")' } },
    expect = { raise = "parameter filter" }, requests = 0 },
  { name = "NUL in a list item", call = { "get_profiles", { ["fields[profile]"] = { "email", "x\0y" } } },
    expect = { raise = "parameter fields[profile]" }, requests = 0 },
  { name = "NUL in the api key", opts = { api_key = "pk_abc\0def" }, expect = REFUSED, requests = 0 },
  { name = "NUL in the revision", opts = { revision = "2026-07-15\0x" }, expect = REFUSED, requests = 0 },
  { name = "NUL in the user agent", opts = { user_agent = "ua\0x" }, expect = REFUSED, requests = 0 },
  { name = "CR/LF in a path value (escaped)", call = { "get_profile", { id = "abc\r\nX-Evil: 1" } },
    expect = OK, requests = 1 },
  { name = "CR/LF in the revision", opts = { revision = "2026-07-15\r\nX-Evil: 1" }, expect = REFUSED,
    requests = 0 },
  { name = "CR/LF in the user agent", opts = { user_agent = "ua\r\nX-Evil: 1" }, expect = REFUSED,
    requests = 0 },
  { name = "CR/LF in the api key", opts = { api_key = "pk_abc\r\nX-Evil: 1" }, expect = REFUSED,
    requests = 0 },
  { name = "path value 1e300", call = { "get_profile", { id = 1e300 } },
    expect = { raise = "parameter id" }, requests = 0 },
  { name = "path value -1e19", call = { "get_profile", { id = -1e19 } },
    expect = { raise = "parameter id" }, requests = 0 },
  { name = "path value 2^63", call = { "get_profile", { id = 2 ^ 63 } },
    expect = { raise = "parameter id" }, requests = 0 },
  { name = "path value 1.5", call = { "get_profile", { id = 1.5 } }, expect = { raise = "parameter id" },
    requests = 0 },
  { name = "path value NaN", call = { "get_profile", { id = 0 / 0 } }, expect = { raise = "parameter id" },
    requests = 0, ngx_skip = "NaN cannot travel as JSON" },
  { name = "path value infinity", call = { "get_profile", { id = math.huge } },
    expect = { raise = "parameter id" }, requests = 0, ngx_skip = "infinity cannot travel as JSON" },
  { name = "query value 1e300", call = { "get_profiles", { ["page[size]"] = 1e300 } },
    expect = { raise = "page[size]" },
    requests = 0 },
  { name = "path value a boolean", call = { "get_profile", { id = true } },
    expect = { raise = "parameter id" }, requests = 0 },
  { name = "path value a table", call = { "get_profile", { id = {} } },
    expect = { raise = "parameter id" }, requests = 0 },
  { name = "missing path value", call = { "get_profile", {} }, expect = { raise = "id" }, requests = 0 },
  { name = "unknown operation", call = { "get_everything", {} }, expect = { raise = "get_everything" },
    requests = 0 },
  { name = "unknown parameter", call = { "get_profiles", { nope = 1 } }, expect = { raise = "nope" },
    requests = 0 },
  { name = "body with a cycle", call = { "create_profile", (function()
      local t = { data = { type = "profile", attributes = { email = "a@example.com" } } }
      t.data.attributes.self = t
      return { body = t }
    end)() }, expect = { raise = "body" }, requests = 0, ngx_skip = "a cycle cannot travel as JSON" },
  { name = "body with NaN", call = { "create_profile", { body = { data = { type = "profile",
    attributes = { email = "a@example.com", properties = { n = 0 / 0 } } } } } },
    expect = { raise = "body" }, requests = 0, ngx_skip = "NaN cannot travel as JSON" },
  { name = "body with a function", call = { "create_profile", { body = { data = { type = "profile",
    attributes = { email = "a@example.com", properties = { f = print } } } } } },
    expect = { raise = "body" }, requests = 0, ngx_skip = "a function cannot travel as JSON" },
  { name = "malformed revision", opts = { revision = "2026-13-45" }, expect = REFUSED, requests = 0 },
  { name = "revision not a date", opts = { revision = "latest" }, expect = REFUSED, requests = 0 },
  { name = "revision a number", opts = { revision = 20260715 }, expect = { raise = "revision" },
    requests = 0 },
  { name = "timeout negative", opts = { timeout = -1 }, expect = { raise = "timeout" }, requests = 0 },
  { name = "timeout NaN", opts = { timeout = 0 / 0 }, expect = { raise = "timeout" }, requests = 0,
    ngx_skip = "NaN cannot travel as JSON" },
  { name = "base_url plain http to another host", opts = { base_url = "http://evil.example" },
    expect = REFUSED, requests = 0 },
  { name = "base_url with a NUL", opts = { base_url = "http://127.0.0.1:@PORT@\0.evil.example" },
    expect = REFUSED, requests = 0 },
  { name = "base_url with a query", opts = { base_url = "http://127.0.0.1:@PORT@/?x=1" },
    expect = REFUSED, requests = 0 },
  { name = "base_url not a URL", opts = { base_url = "not a url" }, expect = REFUSED, requests = 0 },
  { name = "page size negative", call = { "get_profiles", { ["page[size]"] = -1 } },
    expect = { raise = "page[size]" },
    requests = 0 },
  { name = "path value of 900 KB", call = { "get_profile", { id = rep("a", 900 * 1024) } }, expect = OK,
    requests = 1 },
  { name = "path value of 2 MB", call = { "get_profile", { id = rep("a", 2 * MB) } },
    expect = { error = true },
    ngx_skip = "over the test bed's request size" },
  { name = "params not a table", call = { "get_profiles", "all of them" }, expect = { raise = "params" },
    requests = 0 },
}

return M
