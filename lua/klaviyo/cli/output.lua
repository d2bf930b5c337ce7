-- klaviyo.cli.output: what the command writes. Results go to stdout as JSON (one document,
-- or one JSON value a line); an error goes to stderr as one JSON object with kind, status,
-- code, detail, pointer and retry_after (null when absent), plus operation and message (the
-- library's one-line text); the exit code says which kind it was. Every line written passes
-- through the redaction of the secrets the command holds.
local type, tostring, ipairs = type, tostring, ipairs
local find, sub, gsub = string.find, string.sub, string.gsub

local cjson = require("cjson").new()

local _M = {}

-- Exit codes by error kind (documented in `klaviyo --help`).
_M.EXIT = { ok = 0, usage = 2, refused = 3, http = 4, server = 5, throttled = 6 }

local secrets = {}

-- Registers a secret: it never appears in anything written.
function _M.secret(s)
  if type(s) == "string" and #s >= 4 then secrets[#secrets + 1] = s end
end

local function redact(text)
  for _, s in ipairs(secrets) do
    local at = find(text, s, 1, true)
    while at do
      text = sub(text, 1, at - 1) .. "[redacted]" .. sub(text, at + #s)
      at = find(text, s, at + 10, true)
    end
  end
  return text
end

-- JSON text of v, or nil and why: the core's encoder, which writes every number with the
-- digits it takes to read it back unchanged (cjson rounds to 14) and "/" as it is, as deep
-- as the library's decoder reads (cjson's 1000 levels).
local ENCODE = { max_depth = 1000 }
local function encode(v)
  return require("klaviyo.core").encode(v, ENCODE)
end

function _M.decode(text)
  local ok, v = pcall(cjson.decode, text)
  if ok then return v end
  return nil, tostring(v)
end

_M.null = cjson.null

local lost   -- why the first write to stdout failed

-- Writes text on stdout; a failure is kept for finish (writing goes on, harmlessly).
function _M.write(...)
  local ok, err = io.stdout:write(...)
  if not ok and lost == nil then lost = tostring(err) end
end

-- Writes one JSON value as a line on stdout (and flushes it with `flush`, so a failure shows
-- at once); a value JSON cannot hold (a string that is not UTF-8) is kept as a failure for
-- finish. Returns false once anything was lost.
function _M.json(v, flush)
  local text, err = encode(v)
  if not text then
    if lost == nil then lost = "the answer could not be written as JSON: " .. tostring(err) end
    return false
  end
  _M.write(redact(text), "\n")
  if flush and lost == nil then
    local ok, ferr = io.stdout:flush()
    if not ok then lost = tostring(ferr) end
  end
  return lost == nil
end

-- The exit code for an error table of the library (or the command's own usage errors).
function _M.code_of(err)
  local kind, status = err.kind, tonumber(err.status)
  if kind == "usage" or kind == "encode" then return _M.EXIT.usage end
  if kind == "refused" then return _M.EXIT.refused end
  if kind == "throttled" or status == 429 then return _M.EXIT.throttled end
  if status and status >= 400 and status < 500 then return _M.EXIT.http end
  if kind == "not_found" then return _M.EXIT.http end
  return _M.EXIT.server
end

local function field(v)
  if v == nil then return cjson.null end
  if type(v) == "number" and (v ~= v or v == math.huge or v == -math.huge) then return tostring(v) end
  if type(v) ~= "string" and type(v) ~= "number" and type(v) ~= "boolean" then return tostring(v) end
  return v
end

-- Writes the error object on stderr; returns the exit code.
function _M.fail(err)
  local status = err.status
  if status == 0 then status = nil end
  local obj = {
    kind = field(err.kind), status = field(status), code = field(err.code),
    detail = field(err.detail or err.message), pointer = field(err.pointer or err.parameter),
    retry_after = field(err.retry_after), operation = field(err.operation),
    message = tostring(err),
  }
  local text, eerr = encode(obj)
  if not text then
    text = encode({ kind = obj.kind, message = "the error could not be written as JSON: " .. eerr })
  end
  io.stderr:write(redact(text), "\n")
  return _M.code_of(err)
end

local usage_mt = { __tostring = function(e) return "klaviyo: usage: " .. e.detail end }
local output_mt = { __tostring = function(e) return "klaviyo: output: " .. e.detail end }

-- An output error: stdout could not take what was written (a result the caller never saw,
-- so never a success).
function _M.output(why)
  return setmetatable({ kind = "output", detail = "stdout: " .. tostring(why) }, output_mt)
end

-- Flushes stdout: nil when everything written reached it, else an output error.
function _M.finish()
  local ok, err = io.stdout:flush()
  if not ok and lost == nil then lost = tostring(err) end
  if lost then return _M.output(lost) end
  return nil
end

-- A usage error (the command line, or a call the library raised on): an error table.
function _M.usage(msg)
  msg = gsub(tostring(msg), "^[^\n]-%.lua:%d+: ", "")
  return setmetatable({ kind = "usage", detail = msg }, usage_mt)
end

return _M
