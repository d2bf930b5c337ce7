-- Turns the request body schemas of Klaviyo's OpenAPI spec into Lua checks: one file per
-- operation with a JSON body, lua/klaviyo/bodies/<operation_id>.lua, returning {check =
-- function(body) -> nil | pointer, expected, given (klaviyo.body_check runs it), requires =
-- the required members of the body, data and data.attributes, shape = the body's members as
-- indented lines} (`klaviyo describe` prints the last two). Each schema the body reaches
-- becomes a straight-line Lua function (no schema walk at run time): required members,
-- types, nullable, enums, the formats Klaviyo enforces (date-time, date, time, uri; E.164
-- where the spec describes a phone number so), additionalProperties false, array and property
-- bounds; allOf checks every branch, oneOf/anyOf accepts a value any branch accepts (the
-- spec's branches are open objects that overlap, as the contract check reads them too).
-- Usage: lua5.4 tools/gen-bodies.lua SPEC.json OUTDIR   writes OUTDIR/<op>.lua
local cjson = require "cjson"

local spec_path, outdir = arg[1], arg[2]
assert(spec_path and outdir, "usage: gen-bodies.lua SPEC.json OUTDIR")
local f = assert(io.open(spec_path, "rb"))
local spec = cjson.decode(f:read("a"))
f:close()
local null = cjson.null
local schemas = spec.components.schemas

local format, concat, sort = string.format, table.concat, table.sort

local METHODS = { "get", "post", "patch", "put", "delete" }
local JSON_API = "application/vnd.api+json"

local function component(ref)
  local name = ref:match("^#/components/schemas/(.+)$")
  return assert(name and schemas[name], "unresolved $ref " .. ref) and name
end

local function sorted_keys(t)
  local ks = {}
  for k in pairs(t) do ks[#ks + 1] = k end
  sort(ks)
  return ks
end

local function lit(v)
  if type(v) == "string" then return format("%q", v):gsub("\\\n", "\\n") end
  if math.type(v) == "integer" then return format("%d", v) end
  if type(v) == "number" then return format("%.17g", v) end
  return tostring(v)
end

-- How an expected value reads in an error: `one of "a", "b"` (at most 6 named).
local function enum_text(values)
  local parts = {}
  for i = 1, math.min(#values, 6) do
    local v = values[i]
    parts[i] = type(v) == "string" and format('"%s"', v) or tostring(v)
  end
  local s = (#values == 1 and "" or "one of ") .. concat(parts, ", ")
  if #values > 6 then s = s .. format(" (or %d more)", #values - 6) end
  return s
end

local ARTICLE = { string = "a string", integer = "an integer", number = "a number",
                  boolean = "a boolean", object = "an object", array = "an array" }
local TEST = { string = 'type(%s) ~= "string"', integer = "not int(%s)", number = "not num(%s)",
               boolean = 'type(%s) ~= "boolean"', object = "not obj(%s)", array = "not arr(%s)" }
local FORMAT = {
  ["date-time"] = { "dt", "a date-time (RFC 3339 with a zone, e.g. 2026-01-01T00:00:00Z)" },
  date = { "date", "a date (YYYY-MM-DD)" },
  time = { "tm", "a time (HH:MM:SS)" },
  uri = { "uri", "a URI (scheme:..., e.g. https://example.com/a.png)" },
}

-- The body's shape as indented lines, for `klaviyo describe`: each member with its type,
-- whether it is required, its values or format; a schema met again inside itself is named.
local function shape(node, ind, lines, seen, depth)
  local name
  while node["$ref"] and not node.properties and not node.allOf and not node.oneOf do
    name = component(node["$ref"])
    node = schemas[name]
  end
  if name and seen[name] then
    lines[#lines] = lines[#lines] .. " (" .. name .. ", as above)"
    return
  elseif depth > 8 then
    lines[#lines] = lines[#lines] .. " (" .. (name or "nested") .. ", not expanded)"
    return
  end
  if name then seen[name] = true end
  local props = {}
  local function collect(n)
    while n["$ref"] do n = schemas[component(n["$ref"])] end
    for k, v in pairs(n.properties or {}) do props[k] = v end
    for _, r in ipairs(n.required or {}) do props[r] = props[r] or {} end
    for _, sub in ipairs(n.allOf or {}) do collect(sub) end
    return n
  end
  collect(node)
  local required = {}
  local function collect_req(n)
    while n["$ref"] do n = schemas[component(n["$ref"])] end
    for _, r in ipairs(n.required or {}) do required[r] = true end
    for _, sub in ipairs(n.allOf or {}) do collect_req(sub) end
  end
  collect_req(node)
  for _, k in ipairs(sorted_keys(props)) do
    local sub = props[k]
    local s = sub
    while s["$ref"] and not s.properties and not s.allOf and not s.oneOf do
      s = schemas[component(s["$ref"])]
    end
    local desc = s.type or ((s.properties or s.allOf) and "object") or (s.oneOf or s.anyOf) and "one of"
      or "any"
    if s.type == "array" and s.items then
      local it = s.items
      while it["$ref"] and not it.properties and not it.allOf and not it.oneOf do
        it = schemas[component(it["$ref"])]
      end
      desc = "array of " .. (it.type or (it.oneOf and "one of") or "object")
      if it.enum then desc = desc .. " " .. enum_text(it.enum) end
    end
    if s.enum then
      local vals = {}
      for _, v in ipairs(s.enum) do if v ~= null then vals[#vals + 1] = v end end
      desc = enum_text(vals)
    end
    if FORMAT[s.format] then desc = s.format end
    if k:find("phone") and type(sub.description) == "string" and sub.description:find("E.164", 1, true) then
      desc = "string, E.164"
    end
    if sub.nullable or s.nullable then desc = desc .. " or null" end
    if required[k] then desc = desc .. " (required)" end
    lines[#lines + 1] = ind .. k .. ": " .. desc
    local inner = s
    if s.type == "array" and s.items then inner = s.items end
    local r = inner
    while r["$ref"] and not r.properties and not r.allOf and not r.oneOf do
      r = schemas[component(r["$ref"])]
    end
    local prim = r.oneOf or r.anyOf
    for _, b in ipairs(prim or {}) do
      while b["$ref"] and not b.properties and not b.allOf and not b.oneOf do
        b = schemas[component(b["$ref"])]
      end
      if not (b.type and b.type ~= "object" and b.type ~= "array" and not b.oneOf) then prim = nil end
    end
    if prim then
      local tys = {}
      for i, b in ipairs(prim) do
        while b["$ref"] do b = schemas[component(b["$ref"])] end
        tys[i] = b.enum and enum_text(b.enum) or b.type
      end
      lines[#lines] = lines[#lines]:gsub("one of", concat(tys, " or "), 1)
    elseif r.oneOf or r.anyOf then
      for i, b in ipairs(r.oneOf or r.anyOf) do
        lines[#lines + 1] = ind .. "  - variant " .. i .. ":"
        shape(b, ind .. "    ", lines, seen, depth + 1)
      end
    elseif r.properties or r.allOf then
      shape(inner, ind .. "  ", lines, seen, depth + 1)
    end
  end
  if name then seen[name] = nil end
end

-- The required members of the body, of data and of data.attributes, in the spec's order, as
-- lines ("data.attributes requires: properties, metric, profile").
local function requires(root)
  local lines = {}
  local function deref(n)
    while type(n) == "table" and n["$ref"] do n = schemas[component(n["$ref"])] end
    return n
  end
  local function req_of(n)
    local out = {}
    for _, r in ipairs(n.required or {}) do out[#out + 1] = r end
    for _, s in ipairs(n.allOf or {}) do
      for _, r in ipairs(req_of(deref(s))) do out[#out + 1] = r end
    end
    return out
  end
  local function prop(n, k)
    if n.properties and n.properties[k] then return deref(n.properties[k]) end
    for _, s in ipairs(n.allOf or {}) do
      local p = prop(deref(s), k)
      if p then return p end
    end
  end
  local node = deref(root)
  for _, label in ipairs({ "required", "data requires", "data.attributes requires" }) do
    if type(node) ~= "table" then break end
    local req = req_of(node)
    if #req > 0 then lines[#lines + 1] = format("%s: %s", label, concat(req, ", ")) end
    node = prop(node, label == "required" and "data" or "attributes")
  end
  return lines
end

-- One generated file: the functions of the schemas one operation's body reaches.
local function generate(op_id, root)
  local funcs, by_node, by_name = {}, {}, {}
  local enums, enum_of = {}, {}
  local fn_of

  local function enum_id(values)
    local key = cjson.encode(values)
    if not enum_of[key] then
      enums[#enums + 1] = values
      enum_of[key] = #enums
    end
    return enum_of[key]
  end

  -- Lines checking local x (present) against node; a failure returns with ptr (a Lua
  -- expression) prefixed to what the check found.
  local function check_lines(node, x, ptr, out, ind, e164, brk)
    -- how a failure leaves: return with the pointer, or (inside a oneOf branch) break
    local function fail_call()
      return brk and "if p then break end" or format("if p then return %s .. p, e, g end", ptr)
    end
    local function fail_with(expected, given)
      if brk then return format("p, e, g = %s, %q, %s break", ptr, expected, given) end
      return format("return %s, %q, %s", ptr, expected, given)
    end
    local nullable = node.nullable == true
    if node["$ref"] and not node.allOf and not node.oneOf and not node.anyOf
        and not node.properties and not node.type then
      -- a $ref whose siblings are annotations (and nullable, which applies in OpenAPI 3.0)
      local target = schemas[component(node["$ref"])]
      if target.nullable == true then nullable = true end
      local tt = target.type
      if (tt == "string" or tt == "integer" or tt == "number" or tt == "boolean")
          and not target.allOf and not target.oneOf and not target.anyOf and not target["$ref"] then
        -- a component holding one value (an enum such as a resource type): checked in place
        local inline = {}
        for k, v in pairs(target) do inline[k] = v end
        inline.nullable = nullable or nil
        return check_lines(inline, x, ptr, out, ind, e164, brk)
      end
      local id = fn_of(target, component(node["$ref"]))
      if nullable then
        out[#out + 1] = ind .. format("if not isnull(%s) then", x)
        ind = ind .. "  "
      end
      out[#out + 1] = ind .. format("p, e, g = F[%d](%s)", id, x)
      out[#out + 1] = ind .. fail_call()
      if nullable then out[#out + 1] = ind:sub(3) .. "end" end
      return
    end
    local ty = node.type
    local simple = (ty == "string" or ty == "integer" or ty == "number" or ty == "boolean")
      and not node.allOf and not node.oneOf and not node.anyOf and not node["$ref"]
    if not simple and (node.properties or node.items or node.allOf or node.oneOf or node.anyOf
        or node["$ref"] or ty == "object" or ty == "array") then
      local id = fn_of(node)
      if nullable then
        out[#out + 1] = ind .. format("if not isnull(%s) then", x)
        ind = ind .. "  "
      end
      out[#out + 1] = ind .. format("p, e, g = F[%d](%s)", id, x)
      out[#out + 1] = ind .. fail_call()
      if nullable then out[#out + 1] = ind:sub(3) .. "end" end
      return
    end
    if not ty then return end   -- any value
    assert(TEST[ty], "unknown type " .. tostring(ty))
    local cond = format(TEST[ty], x)
    if nullable then cond = format("%s and not isnull(%s)", cond, x) end
    out[#out + 1] = ind .. format("if %s then %s end", cond,
      fail_with(nullable and ARTICLE[ty] .. " or null" or ARTICLE[ty], format("given(%s)", x)))
    local extra = {}
    if node.enum then
      local vals = {}
      for _, v in ipairs(node.enum) do if v ~= null then vals[#vals + 1] = v end end
      local test
      if #vals == 1 then
        test = format("%s ~= %s", x, lit(vals[1]))
      else
        test = format("not E[%d][%s]", enum_id(vals), x)
      end
      extra[#extra + 1] = format("if %s then %s end", test, fail_with(enum_text(vals),
        format("given(%s)", x)))
    end
    if ty == "string" and FORMAT[node.format] then
      local fm = FORMAT[node.format]
      extra[#extra + 1] = format("if not %s(%s) then %s end", fm[1], x,
        fail_with(fm[2], format("given(%s)", x)))
    end
    if ty == "string" and e164 then
      extra[#extra + 1] = format("if not e164(%s) then %s end", x,
        fail_with("a phone number in E.164 (e.g. +15005550006)", format("given(%s)", x)))
    end
    if #extra > 0 then
      if nullable then
        out[#out + 1] = ind .. format("if not isnull(%s) then", x)
        for _, l in ipairs(extra) do out[#out + 1] = ind .. "  " .. l end
        out[#out + 1] = ind .. "end"
      else
        for _, l in ipairs(extra) do out[#out + 1] = ind .. l end
      end
    end
  end

  -- The function for a composite node (object, array, allOf, oneOf/anyOf); returns its index.
  fn_of = function(node, name)
    if name and by_name[name] then return by_name[name] end
    if by_node[node] then return by_node[node] end
    local id = #funcs + 1
    funcs[id] = false
    by_node[node] = id
    if name then by_name[name] = id end
    local out = { format("F[%d] = function(v)%s", id, name and "   -- " .. name or "") }
    out[#out + 1] = "  local p, e, g"
    if node["$ref"] then
      local target = component(node["$ref"])
      out[#out + 1] = format("  p, e, g = F[%d](v)", fn_of(schemas[target], target))
      out[#out + 1] = "  if p then return p, e, g end"
    end
    local ty = node.type
    if ty == nil and node.properties then ty = "object" end
    if ty == "object" then
      -- the usual object (no metatable) without a call; marked tables through obj()
      out[#out + 1] = '  local m = getmetatable(v)'
      out[#out + 1] = '  if type(v) ~= "table" or m == nil and v[1] ~= nil or m ~= nil and not obj(v) then'
      out[#out + 1] = '    return "", "an object", given(v)'
      out[#out + 1] = '  end'
      local req = {}
      for _, r in ipairs(node.required or {}) do
        req[r] = true
        out[#out + 1] = format('  if v[%s] == nil then return %q, %q, "nothing" end', lit(r),
          "/" .. r:gsub("~", "~0"):gsub("/", "~1"), format('a member "%s" (required)', r))
      end
      local props = node.properties or {}
      for _, k in ipairs(sorted_keys(props)) do
        local sub = props[k]
        local e164 = k:find("phone") and type(sub.description) == "string"
          and sub.description:find("E.164", 1, true) ~= nil
        local lines = {}
        check_lines(sub, "x", format("%q", "/" .. k:gsub("~", "~0"):gsub("/", "~1")), lines,
          req[k] and "  " or "    ", e164)
        if #lines > 0 then
          out[#out + 1] = format("  x = v[%s]", lit(k))
          if req[k] then
            for _, l in ipairs(lines) do out[#out + 1] = l end
          else
            out[#out + 1] = "  if x ~= nil then"
            for _, l in ipairs(lines) do out[#out + 1] = l end
            out[#out + 1] = "  end"
          end
        end
      end
      if node.additionalProperties == false then
        local known = {}
        for _, k in ipairs(sorted_keys(props)) do known[#known + 1] = format("[%s] = true", lit(k)) end
        out[#out + 1] = format("  p = closed(v, { %s })", concat(known, ", "))
        out[#out + 1] = format('  if p then return "/" .. p, %q, "a member not in the schema" end',
          "no other members")
      end
      if node.maxProperties then
        out[#out + 1] = format('  if count(v) > %d then return "", %q, count(v) .. " members" end',
          node.maxProperties, format("at most %d members", node.maxProperties))
      end
      if node.minProperties then
        out[#out + 1] = format('  if count(v) < %d then return "", %q, count(v) .. " members" end',
          node.minProperties, format("at least %d members", node.minProperties))
      end
    elseif ty == "array" then
      out[#out + 1] = '  if not arr(v) then return "", "an array", given(v) end'
      out[#out + 1] = "  local n = #v"
      if node.minItems then
        out[#out + 1] = format('  if n < %d then return "", %q, n .. " items" end', node.minItems,
          format("at least %d items", node.minItems))
      end
      if node.maxItems then
        out[#out + 1] = format('  if n > %d then return "", %q, n .. " items" end', node.maxItems,
          format("at most %d items", node.maxItems))
      end
      if node.items then
        local lines = {}
        check_lines(node.items, "x", '"/" .. (i - 1)', lines, "    ")
        if #lines > 0 then
          out[#out + 1] = "  for i = 1, n do"
          out[#out + 1] = "    local x = v[i]"
          for _, l in ipairs(lines) do out[#out + 1] = l end
          out[#out + 1] = "  end"
        end
      end
    elseif ty then
      local lines = {}
      local plain = {}
      for k, val in pairs(node) do
        if k ~= "allOf" and k ~= "oneOf" and k ~= "anyOf" and k ~= "nullable" then plain[k] = val end
      end
      check_lines(plain, "v", '""', lines, "  ")
      for _, l in ipairs(lines) do out[#out + 1] = l end
    end
    for _, sub in ipairs(node.allOf or {}) do
      local lines = {}
      check_lines(sub, "v", '""', lines, "  ")
      for _, l in ipairs(lines) do out[#out + 1] = l end
    end
    local branches = node.oneOf or node.anyOf
    if branches then
      -- accepted when a branch accepts; else the failure of the branch the value came closest
      -- to (klaviyo.body_check's closer)
      out[#out + 1] = "  local bp, be, bg"
      for _, sub in ipairs(branches) do
        local lines = {}
        check_lines(sub, "v", '""', lines, "    ", false, true)
        out[#out + 1] = "  repeat"
        for _, l in ipairs(lines) do out[#out + 1] = l end
        out[#out + 1] = "    return nil"
        out[#out + 1] = "  until true"
        out[#out + 1] = "  if not bp or closer(p, g, bp, bg) then bp, be, bg = p, e, g end"
      end
      out[#out + 1] = "  return bp, be, bg"
    end
    out[#out + 1] = "end"
    -- x is only needed by objects' members; declare it where used
    if ty == "object" then table.insert(out, 3, "  local x") end
    funcs[id] = concat(out, "\n")
    return id
  end

  local top
  if root["$ref"] and not root.nullable then   -- the body is one component: its function
    top = fn_of(schemas[component(root["$ref"])], component(root["$ref"]))
  else
    top = fn_of(root)
  end
  local head = {
    "-- Generated by tools/gen-bodies.lua from Klaviyo's OpenAPI spec: do not edit.",
    format("-- The request body check of %s, run by klaviyo.body_check.", op_id),
    'local H = require "klaviyo.body_check"',
    "local type, getmetatable = type, getmetatable",
    "local obj, arr, int, num, isnull, given = H.obj, H.arr, H.int, H.num, H.isnull, H.given",
    "local dt, date, tm, e164, closed, count = H.dt, H.date, H.tm, H.e164, H.closed, H.count",
    "local closer, uri = H.closer, H.uri",
    "local F, E = {}, {}",
  }
  for i, values in ipairs(enums) do
    local items = {}
    for j, v in ipairs(values) do items[j] = format("[%s] = true", lit(v)) end
    head[#head + 1] = format("E[%d] = { %s }", i, concat(items, ", "))
  end
  local body = { concat(head, "\n") }
  for i = 1, #funcs do body[#body + 1] = funcs[i] end
  local lines = {}
  shape(root, "", lines, {}, 0)
  local req = requires(root)
  for i, l in ipairs(req) do req[i] = lit(l) end
  body[#body + 1] = format("return { check = F[%d], requires = { %s }, shape = [==[\n%s\n]==] }\n",
    top, concat(req, ", "), concat(lines, "\n"))
  local text = concat(body, "\n")
  -- the unused helper locals are fine for Lua, not for luacheck
  return "-- luacheck: ignore\n" .. text
end

-- Operations with a JSON body, sorted.
local ops = {}
for _, path in ipairs(sorted_keys(spec.paths)) do
  local item = spec.paths[path]
  for _, m in ipairs(METHODS) do
    local op = item[m]
    local content = op and op.requestBody and op.requestBody.content
    if content and content[JSON_API] and content[JSON_API].schema then
      ops[#ops + 1] = { id = op.operationId, schema = content[JSON_API].schema }
    end
  end
end
sort(ops, function(a, b) return a.id < b.id end)

for _, op in ipairs(ops) do
  local out = assert(io.open(outdir .. "/" .. op.id .. ".lua", "wb"))
  out:write(generate(op.id, op.schema))
  out:close()
end
