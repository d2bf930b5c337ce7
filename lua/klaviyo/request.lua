-- klaviyo.request: turns `client:call(operation_id, params)` arguments into the request table
-- the C core sends (klaviyo.core's c:request{...}), checking them against the operation table
-- generated from Klaviyo's spec. Everything here is a function of its inputs (and, for a
-- multipart upload, of the file it reads), so it is unit-tested without a network; the checks
-- run before anything is sent.
--
-- params: path parameters by name (`id = "..."`), query parameters by their spec names
-- (`["page[size]"] = 50`, `["fields[profile]"] = {"email", "id"}` or "email,id",
-- `filter = "..."` or a klaviyo.filter expression), spec headers by name
-- (`["X-Klaviyo-API-Filters"] = "..."`), `body` (a Lua table, which the core encodes to JSON
-- in C memory, or a string taken as already-encoded JSON) and the per-call option `revision`.
-- A multipart/form-data operation (upload_image_from_file) takes its form fields by the spec's
-- names instead of `body` (`file`, `name`, `hidden`): klaviyo.multipart builds the bytes.
-- Any mistake (unknown operation or parameter, a missing required one, a wrong type, an integer
-- outside the spec's bounds, a string holding a NUL byte) raises an error naming the operation and
-- the parameter. A value Klaviyo would answer 400 for its content (a filter on a field or with an
-- operator the operation does not allow, a filter that does not parse, a `sort`, `include` or
-- `fields[...]` value outside the spec's enum: klaviyo.query_check) is refused instead, as an
-- error table of kind "refused", unless the caller turned the checks off.
local type, pairs, ipairs, next, tostring = type, pairs, ipairs, next, tostring
local format, find, floor, huge = string.format, string.find, math.floor, math.huge
local math_type = math.type   -- nil before Lua 5.3

local operations = require "klaviyo.operations"
local filter = require "klaviyo.filter"
local multipart = require "klaviyo.multipart"
local query_check = require "klaviyo.query_check"
local errors = require "klaviyo.errors"

local _M = {}

-- Names params may carry besides the operation's own parameters.
local OPTIONS = { body = true, revision = true }

-- The request body types this client builds.
local JSON_API, FORM = "application/vnd.api+json", "multipart/form-data"

-- Per operation, the lookups call needs, built once on first use.
local compiled = {}

local function compile(op_id)
  local op = operations[op_id]
  if op == nil then return nil end
  local names = {}
  for _, name in ipairs(op.path_params) do names[name] = "path" end
  local query = {}
  for _, q in ipairs(op.query) do
    -- On /client/* operations company_id is the client's public key: the core adds it.
    if not (op.auth == "public" and q.name == "company_id") then
      query[#query + 1] = q
      names[q.name] = q
    end
  end
  local headers = {}
  for _, h in ipairs(op.headers or {}) do
    headers[#headers + 1] = h
    names[h.name] = "header"
  end
  local form = op.content_type == FORM and multipart.field_names(op_id)
  if form then
    for name in pairs(form) do names[name] = "form" end
  end
  -- Precomputed so that a call of an operation with only a body (create_event...) runs
  -- through build with no loop over empty parameter lists and one test for its body.
  local c = { op = op, id = op_id, names = names, query = query, headers = headers,
              path_params = op.path_params, checked = query_check.rules(op_id) ~= false,
              plain = #op.path_params == 0 and #query == 0 and #headers == 0, form = form,
              body_ok = op.body ~= nil and op.content_type == JSON_API }
  compiled[op_id] = c
  return c
end

function _M.compiled(op_id) return compiled[op_id] or compile(op_id) end

local function fail(op_id, name, msg, ...)
  if name then
    return format("klaviyo: %s: parameter %s: " .. msg, op_id, name, ...)
  end
  return format("klaviyo: %s: " .. msg, op_id, ...)
end

-- The digits of a number used as a path or query value: any Lua integer, or a float with an
-- integral value in the 64-bit range (what "%d" writes exactly on every interpreter); else nil
-- and why (want: what the parameter takes). The operation table has no number-typed parameter,
-- so a fraction is refused too.
local function integer_text(v, want)
  if v ~= v or v == huge or v == -huge then return nil, "is NaN or infinite" end
  if v ~= floor(v) then return nil, format("expected %s, got %s", want, tostring(v)) end
  if not (math_type and math_type(v) == "integer") and not (v >= -2 ^ 63 and v < 2 ^ 63) then
    return nil, "is outside the 64-bit integer range"
  end
  return format("%d", v)
end

-- Does s hold a NUL byte? The core reads a string up to its first NUL, so such a value would
-- be cut short without a word; every string value is refused for it here, by name.
local function has_nul(s) return find(s, "\0", 1, true) ~= nil end

-- A path parameter: a non-empty string or an integer number.
local function path_value(op_id, name, v)
  local tv = type(v)
  if tv == "string" then
    if v == "" then return nil, fail(op_id, name, "must not be empty") end
    if has_nul(v) then return nil, fail(op_id, name, "holds a NUL byte") end
    return v
  end
  if tv == "number" then
    local text, why = integer_text(v, "a string or an integer")
    if text == nil then return nil, fail(op_id, name, "%s", why) end
    return text
  end
  if v == nil then return nil, fail(op_id, name, "is required (path parameter)") end
  return nil, fail(op_id, name, "expected a string, got %s", tv)
end

local function integer_value(op_id, q, v)
  if type(v) ~= "number" then
    return nil, fail(op_id, q.name, "expected an integer, got %s", type(v))
  end
  local text, why = integer_text(v, "an integer")
  if text == nil then return nil, fail(op_id, q.name, "%s", why) end
  if q.min and v < q.min then
    return nil, fail(op_id, q.name, "%s is below the minimum %d", text, q.min)
  end
  if q.max and v > q.max then
    return nil, fail(op_id, q.name, "%s is above the maximum %d", text, q.max)
  end
  return text
end

-- An array parameter: a list of strings (numbers are written as integers) or one string the
-- caller already joined with commas. The core joins lists with commas.
local function array_value(op_id, q, v)
  local tv = type(v)
  if tv == "string" then
    if v == "" then return nil, fail(op_id, q.name, "must not be empty") end
    if has_nul(v) then return nil, fail(op_id, q.name, "holds a NUL byte") end
    return v
  end
  if tv ~= "table" then
    return nil, fail(op_id, q.name, "expected a list of strings or a string, got %s", tv)
  end
  local n = #v
  if n == 0 then return nil, fail(op_id, q.name, "the list is empty") end
  local out = v
  for i = 1, n do
    local e = v[i]
    local te = type(e)
    if te ~= "string" then
      if te ~= "number" then return nil, fail(op_id, q.name, "item %d: expected a string, got %s", i, te) end
      local text, why = integer_text(e, "a string or an integer")
      if text == nil then return nil, fail(op_id, q.name, "item %d: %s", i, why) end
      if out == v then out = {} for j = 1, i - 1 do out[j] = v[j] end end
      e = text
    elseif e == "" then
      return nil, fail(op_id, q.name, "item %d is empty", i)
    elseif has_nul(e) then
      return nil, fail(op_id, q.name, "item %d holds a NUL byte", i)
    end
    if out ~= v then out[i] = e end
  end
  return out
end

local function string_value(op_id, q, v)
  local tv = type(v)
  if q.name == "filter" then
    if tv == "string" or filter.is_expr(v) then
      local text = filter.text(v)
      if text == "" then return nil, fail(op_id, q.name, "must not be empty") end
      if has_nul(text) then return nil, fail(op_id, q.name, "holds a NUL byte") end
      return text
    end
    return nil, fail(op_id, q.name, "expected a string or a klaviyo.filter expression, got %s", tv)
  end
  if tv == "string" then
    if has_nul(v) then return nil, fail(op_id, q.name, "holds a NUL byte") end
    return v
  end
  if tv == "number" then
    local text, why = integer_text(v, "a string or an integer")
    if text == nil then return nil, fail(op_id, q.name, "%s", why) end
    return text
  end
  return nil, fail(op_id, q.name, "expected a string, got %s", tv)
end

local function query_value(op_id, q, v)
  if q.integer then return integer_value(op_id, q, v) end
  if q.array then return array_value(op_id, q, v) end
  return string_value(op_id, q, v)
end

local function header_value(op_id, h, v)
  if type(v) ~= "string" then return nil, fail(op_id, h.name, "expected a string, got %s", type(v)) end
  if has_nul(v) then return nil, fail(op_id, h.name, "holds a NUL byte") end
  return v
end

-- The values params give for a list of query or header specs, as {name, value} pairs (nil
-- when none), or nil, msg.
local function given(op_id, specs, params, value_of, required)
  local out
  for i = 1, #specs do
    local spec = specs[i]
    local v = params[spec.name]
    if v == nil then
      if spec.required then return nil, fail(op_id, spec.name, required) end
    else
      local value, err = value_of(op_id, spec, v)
      if value == nil then return nil, err end
      out = out or {}
      out[#out + 1] = { spec.name, value }
    end
  end
  return out
end

-- Path parameters, query and spec headers of a call: path_params, query, headers (each nil
-- when there is none), or nil, nil, nil, msg.
local function parameters(c, op_id, params)
  local pp = c.path_params
  local path_params
  if #pp > 0 then
    path_params = {}
    for i = 1, #pp do
      local v, err = path_value(op_id, pp[i], params[pp[i]])
      if v == nil then return nil, nil, nil, err end
      path_params[i] = v
    end
  end
  local query, qerr = given(op_id, c.query, params, query_value, "is required")
  if qerr then return nil, nil, nil, qerr end
  local headers, herr = given(op_id, c.headers, params, header_value, "is required (header)")
  if herr then return nil, nil, nil, herr end
  return path_params, query, headers
end

-- Why the body of a call is refused, or nil.
local function body_error(c, op_id, body)
  local op = c.op
  if body == nil then
    if op.body == "required" then return fail(op_id, "body", "is required") end
  elseif op.body == nil then
    return fail(op_id, "body", "this operation takes no body")
  elseif op.content_type == FORM then
    return fail(op_id, "body", "needs a %s body: give its fields (file, name, hidden) as parameters",
      op.content_type)
  elseif op.content_type ~= JSON_API then
    return fail(op_id, "body", "needs a %s body, which this client does not build", op.content_type)
  else
    local tb = type(body)
    if tb ~= "table" and tb ~= "string" then
      return fail(op_id, "body", "expected a table (or JSON text), got %s", tb)
    end
  end
end

-- The refusal of the first query value klaviyo.query_check finds outside the spec's lists.
local function query_refusal(op_id, query)
  for i = 1, #query do
    local p = query_check.check(op_id, query[i][1], query[i][2])
    if p then
      return errors.new("refused", op_id, p.detail,
        { parameter = p.parameter, given = p.given, allowed = p.allowed })
    end
  end
end

-- Builds the core request for one call. A table body stays a table: the core encodes it (and
-- reports a bad value by its path, kind "encode"). A multipart body is built here, as bytes
-- with its own Content-Type header. Returns req, or nil, msg for a programmer error (the caller
-- raises it at its own caller's level), or nil, nil, err for a value refused before sending: a
-- file klaviyo.multipart refuses, or a query value klaviyo.query_check refuses (skipped when
-- `validate` is false). The caller returns err: nothing is sent.
function _M.build(op_id, params, validate)
  local c = compiled[op_id]
  if c == nil then
    if type(op_id) ~= "string" then
      return nil, "klaviyo: operation id must be a string, got " .. type(op_id)
    end
    c = compile(op_id)
    if c == nil then return nil, format("klaviyo: unknown operation %q", op_id) end
  end
  if params == nil then params = {} end
  if type(params) ~= "table" then
    return nil, fail(op_id, nil, "params must be a table, got %s", type(params))
  end
  local names = c.names
  for k in next, params do   -- raw: params are checked as they are, not as __pairs shows them
    if names[k] == nil and OPTIONS[k] == nil then
      if type(k) ~= "string" then
        return nil, fail(op_id, nil, "parameter names must be strings, got %s", type(k))
      end
      if k == "company_id" and c.op.auth == "public" then
        return nil, fail(op_id, k, "comes from the client's public_key (klaviyo.new{public_key=})")
      end
      return nil, fail(op_id, k, "unknown parameter")
    end
  end

  local path_params, query, headers
  if not c.plain then
    local err
    path_params, query, headers, err = parameters(c, op_id, params)
    if err then return nil, err end
    if query and c.checked and validate ~= false then
      local refusal = query_refusal(op_id, query)
      if refusal then return nil, nil, refusal end
    end
  end

  local body = params.body
  -- the usual case in one test: a table body where one is taken; a form builds its own
  if not (c.body_ok and type(body) == "table") and not (c.form and body == nil) then
    local err = body_error(c, op_id, body)
    if err then return nil, err end
  end

  local revision = params.revision
  if revision ~= nil and type(revision) ~= "string" then
    return nil, fail(op_id, "revision", "expected a string, got %s", type(revision))
  end
  if c.form then
    local ctype, refusal
    body, ctype, refusal = multipart.form(op_id, params)
    if body == nil then return nil, ctype, refusal end
    headers = headers or {}
    headers[#headers + 1] = { "Content-Type", ctype }
  end
  -- One constructor naming every field, also those the client sets afterwards (unique_ids,
  -- safe, limits, retry_*): the table is sized once instead of growing as fields are added.
  local op = c.op
  return { operation = op_id, method = op.method, path = op.path, auth = op.auth,
           path_params = path_params, query = query, headers = headers, body = body,
           revision = revision, unique_ids = nil, safe = nil, limits = nil,
           retry_attempts = nil, retry_max_time = nil }
end

return _M
