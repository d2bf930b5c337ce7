--- klaviyo.webhooks: verifies Klaviyo's system webhook deliveries.
--   local payload, err = webhooks.verify(secret, headers, raw_body, {tolerance = 300, now = t})
--   local payload = webhooks.ngx_verify(secret, opts)   -- inside nginx: answers 400/401 itself
-- A delivery is genuine when Klaviyo-Signature is the hex HMAC-SHA256, keyed by the webhook's
-- secret, of the raw body bytes followed by the exact Klaviyo-Timestamp header text; it is
-- fresh when that timestamp (an IMF-fixdate) is within `tolerance` seconds of now, either way;
-- it is for this webhook when Klaviyo-Webhook-Id equals the body's meta.klaviyo_webhook_id.
-- The signature is checked over the bytes received (never a re-encoded body) and compared in
-- constant time. Errors name the check that failed and never hold the secret.
-- @module klaviyo.webhooks
local core = require "klaviyo.core"
local errors = require "klaviyo.errors"
local cjson = require("cjson.safe").new()
-- JSON as RFC 8259 writes it: cjson would otherwise also read NaN, Infinity and hex numbers.
cjson.decode_invalid_numbers(false)

local type, pairs, tostring, tonumber = type, pairs, tostring, tonumber
local format, lower, byte, floor = string.format, string.lower, string.byte, math.floor
local ngx = ngx -- luacheck: ignore (nil outside nginx)

local _M = { _VERSION = "1.0" }

_M.DEFAULT_TOLERANCE = 300
_M.DEFAULT_MAX_BODY = 5 * 1024 * 1024

-- The HTTP status a receiver answers for each failure code.
_M.STATUS = {
  missing_header = 400, duplicate_header = 400, malformed_timestamp = 400,
  bad_signature = 401, stale_timestamp = 401,
  malformed_body = 400, id_mismatch = 400, body_too_large = 413, body_unreadable = 400,
}

local H_ID, H_TS, H_SIG = "klaviyo-webhook-id", "klaviyo-timestamp", "klaviyo-signature"

local function fail(code, detail, header)
  return nil, errors.new("webhook", nil, detail, { code = code, header = header })
end

-- The one value of header `want` (lower case) in `headers`, names compared case-insensitively.
-- A header present under two spellings, or as a list (nginx gives a repeated header as a
-- table), is refused: which copy was signed cannot be told.
local function header(headers, want, canonical)
  local found
  for k, v in pairs(headers) do
    if type(k) == "string" and lower(k) == want then
      if found ~= nil or type(v) == "table" then
        return fail("duplicate_header", canonical .. " was given more than once", canonical)
      end
      found = v
    end
  end
  if found == nil or found == "" then return fail("missing_header", canonical .. " is missing", canonical) end
  if type(found) ~= "string" then
    return fail("missing_header", canonical .. " is not a string", canonical)
  end
  return found
end

local MONTHS = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
                 Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }
local WEEKDAYS = { "Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed" } -- 1970-01-01 was a Thursday
local MDAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

-- Days from 1970-01-01 to y-m-d, without the C library's time zone.
local days_from_civil = require("klaviyo.calendar").days_from_civil

--- Seconds since the epoch of an IMF-fixdate ("Tue, 14 Apr 2026 03:50:12 GMT"), or nil when
-- the text is not exactly one (wrong form, impossible date, weekday not the date's).
---@param s string
---@return number? seconds
function _M.parse_imf_fixdate(s)
  if type(s) ~= "string" or #s ~= 29 then return nil end
  local wd, d, mon, y, h, mi, se =
    s:match("^(%u%l%l), (%d%d) (%u%l%l) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  if not wd then return nil end
  local m = MONTHS[mon]
  d, y, h, mi, se = tonumber(d), tonumber(y), tonumber(h), tonumber(mi), tonumber(se)
  if not m or d < 1 or d > MDAYS[m] or h > 23 or mi > 59 or se > 59 then return nil end
  local leap = (y % 4 == 0 and y % 100 ~= 0) or y % 400 == 0
  if m == 2 and d == 29 and not leap then return nil end
  local days = days_from_civil(y, m, d)
  if WEEKDAYS[days % 7 + 1] ~= wd then return nil end
  return days * 86400 + h * 3600 + mi * 60 + se
end

local HEX = {}
for i = 0, 255 do HEX[i] = format("%02x", i) end

local function hex(raw)
  local out = {}
  for i = 1, #raw do out[i] = HEX[byte(raw, i)] end
  return table.concat(out)
end

--- The Klaviyo-Signature value for `raw_body` sent with Klaviyo-Timestamp `timestamp`.
---@param secret string the webhook secret
---@param raw_body string
---@param timestamp string the Klaviyo-Timestamp text
---@return string signature
function _M.sign(secret, raw_body, timestamp)
  return hex(core.hmac_sha256(secret, raw_body .. timestamp))
end

local function check_args(secret, headers, raw_body, opts, level, in_nginx)
  if type(secret) ~= "string" or #secret < 16 then
    error("klaviyo.webhooks: the secret must be a string of at least 16 characters", level)
  end
  if type(headers) ~= "table" then error("klaviyo.webhooks: headers must be a table", level) end
  if type(raw_body) ~= "string" then error("klaviyo.webhooks: raw_body must be a string", level) end
  if opts ~= nil and type(opts) ~= "table" then error("klaviyo.webhooks: opts must be a table", level) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "tolerance" and k ~= "now" and not (in_nginx and k == "max_body") then
      error("klaviyo.webhooks: unknown option '" .. tostring(k) .. "'", level)
    end
  end
  local tol = opts.tolerance
  if tol ~= nil and (type(tol) ~= "number" or tol ~= tol or tol < 0 or tol == math.huge) then
    error("klaviyo.webhooks: tolerance must be a finite number of seconds >= 0", level)
  end
  local now = opts.now
  if now ~= nil and (type(now) ~= "number" or now ~= now or now == math.huge or now == -math.huge) then
    error("klaviyo.webhooks: now must be a finite number of seconds since the epoch", level)
  end
  local max = opts.max_body
  if max ~= nil and (type(max) ~= "number" or max < 0 or max ~= floor(max)) then
    error("klaviyo.webhooks: max_body must be a whole number of bytes >= 0", level)
  end
  return opts
end

local function verify(secret, headers, raw_body, opts)
  local id, err = header(headers, H_ID, "Klaviyo-Webhook-Id")
  if not id then return nil, err end
  local ts
  ts, err = header(headers, H_TS, "Klaviyo-Timestamp")
  if not ts then return nil, err end
  local sig
  sig, err = header(headers, H_SIG, "Klaviyo-Signature")
  if not sig then return nil, err end
  local sent = _M.parse_imf_fixdate(ts)
  if not sent then
    return fail("malformed_timestamp", "Klaviyo-Timestamp is not an IMF-fixdate", "Klaviyo-Timestamp")
  end
  -- Same length whatever was sent, so the comparison's time tells nothing.
  if not core.equal(lower(sig), _M.sign(secret, raw_body, ts)) then
    return fail("bad_signature", "Klaviyo-Signature does not match the body and timestamp",
      "Klaviyo-Signature")
  end
  local now = opts.now or (ngx and ngx.time() or os.time())
  local tol = opts.tolerance or _M.DEFAULT_TOLERANCE
  local skew = now - sent
  if skew > tol or -skew > tol then
    -- %.15g: whole seconds as digits, and any finite `now` or `tolerance` without raising
    return fail("stale_timestamp", format("Klaviyo-Timestamp is %.15g seconds %s now (tolerance %.15g)",
      floor(skew < 0 and -skew or skew), skew < 0 and "after" or "before", tol), "Klaviyo-Timestamp")
  end
  local doc, jerr = cjson.decode(raw_body)
  if doc == nil then return fail("malformed_body", "the body is not JSON: " .. tostring(jerr)) end
  if type(doc) ~= "table" or type(doc.meta) ~= "table" or type(doc.data) ~= "table" then
    return fail("malformed_body", "the body is not a JSON object with data and meta")
  end
  local meta_id = doc.meta.klaviyo_webhook_id
  if type(meta_id) ~= "string" or meta_id ~= id then
    return fail("id_mismatch", "Klaviyo-Webhook-Id does not match meta.klaviyo_webhook_id",
      "Klaviyo-Webhook-Id")
  end
  return doc
end

--- The decoded delivery, or nil, err (err.kind "webhook", err.code one of the keys of
-- _M.STATUS, err.header the header at fault). Raises on arguments of the wrong type.
---@param secret string the webhook secret
---@param headers table<string, string|string[]> request headers
---@param raw_body string
---@param opts {tolerance: number?, now: number?}?
---@return table? payload
---@return klaviyo.Error? err
function _M.verify(secret, headers, raw_body, opts)
  opts = check_args(secret, headers, raw_body, opts, 3)
  return verify(secret, headers, raw_body, opts)
end

local function too_large(max)
  return fail("body_too_large", format("the body is over %d bytes", max))
end

-- The request body nginx received: in memory, or from the file nginx buffered it to
-- (read whole, at most `max` bytes). nil, err when there is none or it is too large. A
-- Content-Length over `max` (nginx has checked it is one number) is refused before nginx
-- reads, or buffers to a file, a byte of the body.
local function ngx_body(max, length)
  length = tonumber(length)
  if length and length > max then return too_large(max) end
  ngx.req.read_body()
  local body = ngx.req.get_body_data()
  if body then
    if #body > max then return too_large(max) end
    return body
  end
  local path = ngx.req.get_body_file()
  if not path then return "" end
  local f = io.open(path, "rb")
  if not f then return fail("body_unreadable", "nginx's body file could not be opened") end
  local size = f:seek("end")
  if not size or size > max then
    f:close()
    return too_large(max)
  end
  f:seek("set", 0)
  body = f:read(size) or ""
  f:close()
  if #body ~= size then return fail("body_unreadable", "nginx's body file was cut short") end
  return body
end

--- Inside nginx (rewrite, access or content phase): reads the request's raw body, verifies
-- it, and on failure answers the client itself (400, 401 or 413 with a JSON
-- {"error": code, "detail": ...}) and ends the request. Returns the decoded delivery.
-- opts: tolerance, now, max_body (default 5 MB).
---@param secret string the webhook secret
---@param opts {tolerance: number?, now: number?, max_body: integer?}?
---@return table payload
function _M.ngx_verify(secret, opts)
  if not ngx then error("klaviyo.webhooks.ngx_verify runs inside nginx only", 2) end
  opts = check_args(secret, {}, "", opts, 3, true)
  -- Every header, not nginx's default first hundred: a Klaviyo header, or a second copy of
  -- one, after many others is still seen (nginx bounds the bytes of a request's headers).
  local headers = ngx.req.get_headers(0)
  local body, err = ngx_body(opts.max_body or _M.DEFAULT_MAX_BODY, headers["content-length"])
  local payload
  if body then payload, err = verify(secret, headers, body, opts) end
  if payload then return payload end
  local status = _M.STATUS[err.code] or 400
  local out = cjson.encode({ error = err.code, detail = err.detail })
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.header["Content-Length"] = #out + 1
  ngx.say(out)
  ngx.exit(status)
  return nil, err
end

return _M
