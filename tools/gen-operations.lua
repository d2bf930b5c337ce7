-- Turns Klaviyo's OpenAPI spec into lua/klaviyo/operations.lua: one data table of facts
-- (ids, methods, paths, parameters, scopes, rate limits, auth, and what the query parameters
-- allow: enum values and, for `filter`, the fields and operators the parameter's description
-- lists). No prose is copied.
-- Usage: lua5.4 tools/gen-operations.lua SPEC.json > lua/klaviyo/operations.lua
--        lua5.4 tools/gen-operations.lua SPEC.json --checks-doc > docs/query-checks.md
--          (the same facts as a markdown table, operation by operation)
local cjson = require "cjson"

local spec_path = assert(arg[1], "usage: gen-operations.lua SPEC.json [--checks-doc]")
local mode = arg[2]
assert(mode == nil or mode == "--checks-doc", "usage: gen-operations.lua SPEC.json [--checks-doc]")
local f = assert(io.open(spec_path, "rb"))
local spec = cjson.decode(f:read("a"))
f:close()

local METHODS = { "get", "post", "patch", "put", "delete" }

-- "350/s" -> 350
local function per_window(s)
  if s == nil then return nil end
  local n = s:match("^(%d+)/[smd]$")
  return assert(tonumber(n), "unreadable rate limit " .. tostring(s))
end

local function resolve(node)
  while node and node["$ref"] do
    local name = node["$ref"]:match("^#/components/schemas/(.+)$")
    node = spec.components.schemas[name]
  end
  return node
end

-- The JSON:API resource type a request body carries (data.type enum), when the spec says.
local function body_type(op)
  local rb = op.requestBody
  if not rb then return nil end
  local content = rb.content["application/vnd.api+json"]
  if not content then return nil end
  local doc = resolve(content.schema)
  local data = doc and doc.properties and resolve(doc.properties.data)
  if not data then return nil end
  if data.type == "array" then data = resolve(data.items) end
  local t = data and data.properties and resolve(data.properties.type)
  if t and t.enum and #t.enum == 1 then return t.enum[1] end
  return nil
end

-- The fields and operators a `filter` parameter allows, read from its description:
-- "Allowed field(s)/operator(s):<br>`email`: `any`, `equals`<br>`id`: `any`". Returns a list
-- of {field, {op, ...}} in the spec's order; a filter without that list stops the generator,
-- since then nothing could say what to check.
local function filter_fields(op_id, description)
  local list = (description or ""):match("Allowed field%(s%)/operator%(s%):<br>(.*)$")
  assert(list, op_id .. ": the filter parameter lists no allowed fields and operators")
  local out = {}
  for line in (list .. "<br>"):gmatch("(.-)<br>") do
    local field, ops_text = line:match("^`([^`]+)`: (.+)$")
    assert(field, op_id .. ": unreadable filter line " .. line)
    local ops = {}
    for name in ops_text:gmatch("`([%a%-]+)`") do ops[#ops + 1] = name end
    assert(#ops > 0 and ops_text:gsub("`[%a%-]+`,? ?", "") == "",
      op_id .. ": unreadable operators " .. ops_text)
    out[#out + 1] = { field, ops }
  end
  return out
end

local ops, ids = {}, {}
for path, item in pairs(spec.paths) do
  for _, m in ipairs(METHODS) do
    local op = item[m]
    if op then
      local o = {
        id = op.operationId, method = m:upper(), path = path, tag = op.tags[1],
        path_params = {}, query = {}, headers = {},
        scopes = op["x-klaviyo-scopes"] or {},
        auth = (op.security and #op.security == 0) and "public" or "private",
        pre_release = op["x-klaviyo-pre-release"] ~= nil and op["x-klaviyo-pre-release"] ~= "None"
          and op["x-klaviyo-pre-release"] or nil,
      }
      local rl = op["x-klaviyo-ratelimit"] or {}
      o.limits = { burst = per_window(rl.burst), steady = per_window(rl.steady),
                   daily = per_window(rl.daily) }
      for _, p in ipairs(op.parameters or {}) do
        if p["in"] == "path" then
          o.path_params[#o.path_params + 1] = p.name
        elseif p["in"] == "query" then
          local q = { name = p.name, required = p.required == true }
          local sch = p.schema or {}
          if sch.type == "array" then q.array = true end
          if sch.type == "integer" then
            q.integer = true
            q.min, q.max = sch.minimum, sch.maximum
          end
          local enum = sch.enum or (sch.items and sch.items.enum)
          if enum then q.enum = table.concat(enum, ",") end
          if p.name == "filter" then q.filter = filter_fields(op.operationId, p.description) end
          o.query[#o.query + 1] = q
        elseif p["in"] == "header" and p.name ~= "revision" then
          o.headers[#o.headers + 1] = { name = p.name, required = p.required == true }
        end
      end
      -- path parameters in the order they appear in the template
      table.sort(o.path_params, function(a, b)
        return path:find("{" .. a .. "}", 1, true) < path:find("{" .. b .. "}", 1, true)
      end)
      table.sort(o.query, function(a, b) return a.name < b.name end)
      if op.requestBody then
        local ct = next(op.requestBody.content)
        o.body = op.requestBody.required and "required" or "optional"
        o.content_type = ct
        o.body_type = body_type(op)
      end
      ops[o.id] = o
      ids[#ids + 1] = o.id
    end
  end
end
table.sort(ids)

local out = {}
local function w(s) out[#out + 1] = s end
local function q(s) return string.format("%q", s) end
local function list_of_strings(t)
  local parts = {}
  for i, v in ipairs(t) do parts[i] = q(v) end
  return "{" .. table.concat(parts, ", ") .. "}"
end

-- The operation-by-operation table of what the client and the emulator check in the query.
local function checks_doc()
  local function code(list)
    local parts = {}
    for i, v in ipairs(list) do parts[i] = "`" .. v .. "`" end
    return table.concat(parts, ", ")
  end
  w("<!-- Generated by tools/gen-operations.lua --checks-doc from Klaviyo's OpenAPI spec, revision " ..
    spec.info.version .. ". Do not edit: run `make operations`. -->\n")
  w("# Query parameters checked, operation by operation\n\n")
  w("`client:call` refuses a value outside these lists before anything is sent (error kind\n" ..
    "`refused`), and the emulator answers it 400. Filters combine leaves with `and(...)` or a\n" ..
    "top-level comma. A resource type's sparse fieldset (`fields[TYPE]`) allows the same\n" ..
    "names in every operation: they are listed once, at the end.\n")
  -- fields[TYPE] lists are the same wherever the type appears: written once, at the end
  local fieldsets, types = {}, {}
  local function values(enum)
    local vals = {}
    for v in enum:gmatch("[^,]+") do vals[#vals + 1] = v end
    return vals
  end
  for _, id in ipairs(ids) do
    local rows = {}
    for _, p in ipairs(ops[id].query) do
      local rtype = p.name:match("^fields%[(.+)%]$")
      if p.filter then
        for _, leaf in ipairs(p.filter) do
          rows[#rows + 1] = ("| `filter` | `%s`: %s |"):format(leaf[1], code(leaf[2]))
        end
      elseif p.enum and rtype then
        -- a type's list may differ between operations: each distinct list gets its own name
        local lists = fieldsets[rtype]
        if not lists then lists = {}; fieldsets[rtype] = lists; types[#types + 1] = rtype end
        local n = #lists + 1
        for i = 1, #lists do if lists[i] == p.enum then n = i end end
        lists[n] = p.enum
        rows[#rows + 1] = ("| `%s` | the fields of `%s%s` (below) |"):format(p.name, rtype,
          n > 1 and (" " .. n) or "")
      elseif p.enum then
        rows[#rows + 1] = ("| `%s` | %s |"):format(p.name, code(values(p.enum)))
      end
    end
    if #rows > 0 then
      w(("\n## %s\n\n| parameter | allowed |\n| --- | --- |\n"):format(id))
      w(table.concat(rows, "\n") .. "\n")
    end
  end
  table.sort(types)
  w("\n## Sparse fieldsets\n\n| resource type | fields |\n| --- | --- |\n")
  for _, t in ipairs(types) do
    for i, enum in ipairs(fieldsets[t]) do
      w(("| `%s%s` | %s |\n"):format(t, i > 1 and (" " .. i) or "", code(values(enum))))
    end
  end
end

if mode == "--checks-doc" then
  checks_doc()
  io.write(table.concat(out))
  return
end

-- Enum values shared by several operations (the same fields[profile] list appears in many)
-- are written once, in the local E, in the order they are first met.
local enums, enum_index = {}, {}
for _, id in ipairs(ids) do
  for _, p in ipairs(ops[id].query) do
    if p.enum and not enum_index[p.enum] then
      enums[#enums + 1] = p.enum
      enum_index[p.enum] = #enums
    end
  end
end

-- Serialize deterministically.

w("-- Generated by tools/gen-operations.lua from Klaviyo's OpenAPI spec, revision " ..
  spec.info.version .. ".\n-- Do not edit: run `make operations`.\n")
w("-- Each entry: method, path template, tag, path_params (in template order), query\n" ..
  "-- ({name, required, array, integer, min, max}), headers, body (\"required\"|\"optional\"|nil),\n" ..
  "-- content_type, body_type (JSON:API data.type), scopes, limits {burst/s, steady/min, daily/d},\n" ..
  "-- auth (\"private\" | \"public\"), pre_release.\n" ..
  "-- A query parameter with an enum has enum = the allowed values joined with commas (for an\n" ..
  "-- array, the values of its items); a filter has filter = {field = \"op,op\", ...}, the\n" ..
  "-- fields and operators the spec allows.\n")
w("local E = {\n")
for _, e in ipairs(enums) do w(("  %s,\n"):format(q(e))) end
w("}\n")
w("return {\n")
for _, id in ipairs(ids) do
  local o = ops[id]
  w(("  [%s] = {\n"):format(q(id)))
  w(("    method = %s, path = %s, tag = %s, auth = %s,\n"):format(
    q(o.method), q(o.path), q(o.tag), q(o.auth)))
  w(("    path_params = %s,\n"):format(list_of_strings(o.path_params)))
  w("    query = {")
  for i, p in ipairs(o.query) do
    local s = ("{name = %s, required = %s"):format(q(p.name), tostring(p.required))
    if p.array then s = s .. ", array = true" end
    if p.integer then s = s .. ", integer = true" end
    if p.min then s = s .. (", min = %d"):format(p.min) end
    if p.max then s = s .. (", max = %d"):format(p.max) end
    if p.enum then s = s .. (", enum = E[%d]"):format(enum_index[p.enum]) end
    if p.filter then
      local parts = {}
      for j, leaf in ipairs(p.filter) do
        parts[j] = ("[%s] = %s"):format(q(leaf[1]), q(table.concat(leaf[2], ",")))
      end
      s = s .. ", filter = {" .. table.concat(parts, ", ") .. "}"
    end
    w((i == 1 and "\n      " or "      ") .. s .. "},\n")
  end
  w((#o.query > 0 and "    " or "") .. "},\n")
  if #o.headers > 0 then
    w("    headers = {")
    for _, h in ipairs(o.headers) do
      w(("{name = %s, required = %s}, "):format(q(h.name), tostring(h.required)))
    end
    w("},\n")
  end
  if o.body then
    w(("    body = %s, content_type = %s,"):format(q(o.body), q(o.content_type)))
    if o.body_type then w((" body_type = %s,"):format(q(o.body_type))) end
    w("\n")
  end
  w(("    scopes = %s,\n"):format(list_of_strings(o.scopes)))
  local l = o.limits
  w(("    limits = {burst = %s, steady = %s%s},\n"):format(tostring(l.burst), tostring(l.steady),
    l.daily and (", daily = " .. l.daily) or ""))
  if o.pre_release then w(("    pre_release = %s,\n"):format(q(o.pre_release))) end
  w("  },\n")
end
w("}\n")
io.write(table.concat(out))
