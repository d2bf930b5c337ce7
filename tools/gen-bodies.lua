-- Turns the request body schemas of Klaviyo's OpenAPI spec into Lua checks: one file per
-- operation with a JSON body, OUTDIR/<operation_id>.lua, returning {check = function(body) ->
-- nil | pointer, expected, given (klaviyo.body_check runs it), requires = the required members
-- of the body, data and data.attributes, shape = the body's members as indented lines}
-- (`klaviyo describe` prints the last two). Each schema the body reaches becomes a
-- straight-line Lua function (no schema walk at run time): required members, types, nullable,
-- enums, the formats Klaviyo enforces (date-time, date, time, uri; E.164 where the spec
-- describes a phone number so), additionalProperties false, array and property bounds; allOf
-- checks every branch, oneOf/anyOf accepts a value any branch accepts (the spec's branches are
-- open objects that overlap, as the contract check reads them too). An object's members are
-- one chain of klaviyo.body_check's member checks (H.need, H.ms, ...), a nested object one call.
-- Nothing is written twice: schemas with the same content (named or inline, in any operation)
-- have one function; content several operations reach is written once, in
-- OUTDIR/_shared_NN.lua (one module per set of operations sharing checks, loaded on the first
-- call of one of them; OUTDIR/_index.lua names the module of each), a function written the
-- same as another in its file is that one, and a shape text written the same as another is one
-- fragment of OUTDIR/_shapes.lua.
-- Usage: lua5.4 tools/gen-bodies.lua SPEC.json OUTDIR [PREFIX]   PREFIX: the module name of
-- OUTDIR (klaviyo.bodies)
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
-- whether it is required, its values or format. The members of each schema node are one
-- fragment of text written once for all operations (_shapes.lua): where a node's members go, a
-- shape holds the line "<indent>^<n>[ <component>]", which klaviyo.body_check.expand_shape
-- replaces by fragment n, or for a component met again inside itself or a node nested deeper
-- than 8, by naming it on the line above.
local fragments, number_of = {}, {}   -- fragment texts; a fragment's placeholder -> its number
local fragment_at, same_text, rendering, cyclic, placeholders = {}, {}, {}, {}, 0
local members

local function shape(node, ind, lines)
  local name
  while node["$ref"] and not node.properties and not node.allOf and not node.oneOf do
    name = component(node["$ref"])
    node = schemas[name]
  end
  local at = fragment_at[node]
  if at then
    if rendering[node] then cyclic[at] = true end
  else
    -- a placeholder until the text is known: a text written before is that fragment
    placeholders = placeholders + 1
    at = "\0" .. placeholders .. "\0"
    fragment_at[node], rendering[node] = at, true
    local sub = {}
    members(node, sub)
    rendering[node] = nil
    local text = concat(sub, "\n")
    if same_text[text] and not cyclic[at] then
      at = same_text[text]
      fragment_at[node] = at
    else
      assert(not text:find("]==]", 1, true), "a shape holds ]==]")
      fragments[#fragments + 1] = text
      number_of[at] = tostring(#fragments)
      same_text[text] = at
    end
  end
  lines[#lines + 1] = ind .. "^" .. at .. (name and " " .. name or "")
end

-- Shape text with its placeholders numbered.
local function numbered(text)
  return (text:gsub("%z%d+%z", function(at) return assert(number_of[at], "a fragment unwritten") end))
end

members = function(node, lines)
  local ind = ""
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
        shape(b, ind .. "    ", lines)
      end
    elseif r.properties or r.allOf then
      shape(inner, ind .. "  ", lines)
    end
  end
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

-- Where each check is written. Checks are placed by content key (below), whatever names the
-- schemas go by: a key reached by one operation is a function private to that operation's
-- file (F[n]). A key reached by several is written once, in a shared module holding the keys
-- reached by exactly the same operations (so all of a module an operation loads is reachable
-- from its body), and called through the registry H.components(PREFIX) (C.Name, named after
-- the first component met with that content, or C._n for content only inline schemas hold),
-- which requires that module on the first call of one of its checks; PREFIX/_index.lua says
-- which module holds which check.
local prefix = arg[3] or "klaviyo.bodies"
local KEYWORDS = {}
for w in ([[and break do else elseif end false for function goto if in local nil not or
  repeat return then true until while]]):gmatch("%a+") do KEYWORDS[w] = true end
local function member(k)
  if k:match("^[%a_][%w_]*$") and not KEYWORDS[k] then return "." .. k end
  return "[" .. lit(k) .. "]"
end
local function pointer(k) return lit("/" .. k:gsub("~", "~0"):gsub("/", "~1")) end

-- Components that reach themselves through their $refs (Tarjan's strongly connected
-- components over the $ref graph): such a component is known by its name in content keys.
local recursive = {}
do
  local refs = {}
  local function collect(n, out)
    if type(n) ~= "table" then return end
    if type(n["$ref"]) == "string" then out[component(n["$ref"])] = true end
    for _, v in pairs(n) do collect(v, out) end
  end
  for name, node in pairs(schemas) do
    refs[name] = {}
    collect(node, refs[name])
  end
  local index, low, on, stack, count = {}, {}, {}, {}, 0
  local function visit(v)
    count = count + 1
    index[v], low[v] = count, count
    stack[#stack + 1], on[v] = v, true
    for w in pairs(refs[v]) do
      if not index[w] then
        visit(w)
        low[v] = math.min(low[v], low[w])
      elseif on[w] then
        low[v] = math.min(low[v], index[w])
      end
    end
    if low[v] == index[v] then
      local scc = {}
      repeat
        local w = table.remove(stack)
        on[w] = nil
        scc[#scc + 1] = w
      until w == v
      if #scc > 1 or refs[v][v] then
        for _, w in ipairs(scc) do recursive[w] = true end
      end
    end
  end
  for _, name in ipairs(sorted_keys(schemas)) do
    if not index[name] then visit(name) end
  end
end

-- The content key of a schema node: a canonical text of what its check reads (the members
-- below, $refs resolved, a recursive component standing as its name, each nested node as the
-- number of its own text), so that two nodes with the same key are checked by the same
-- function, whatever their names and wherever they stand. A node's function does not read
-- its own nullable (its caller does), so the key leaves it out; value_key, what a parent's
-- check reads of a member, puts it in.
local key_number, keys = {}, 0
local body_of, value_of = {}, {}
local function intern(text)
  local k = key_number[text]
  if not k then
    keys = keys + 1
    k = tostring(keys)
    key_number[text] = k
  end
  return k
end
local content_key
-- What checks() reads of a node it is given: a $ref with annotations beside it is its target
-- (nullable when either is).
local function value_key(node)
  local k = value_of[node]
  if k then return k end
  local nullable = node.nullable == true
  if node["$ref"] and not node.allOf and not node.oneOf and not node.anyOf
      and not node.properties and not node.type then
    local name = component(node["$ref"])
    local target = schemas[name]
    nullable = nullable or target.nullable == true
    k = (nullable and "N" or "V") .. (recursive[name] and "@" .. name or content_key(target))
  elseif not node.type and not node.properties and not node.items and not node.allOf
      and not node.oneOf and not node.anyOf and not node["$ref"] then
    k = "any"   -- nothing is checked
  else
    k = (nullable and "N" or "V") .. content_key(node)
  end
  value_of[node] = k
  return k
end
local function list_key(list)
  local out = {}
  for i, v in ipairs(list) do
    out[i] = type(v) == "table" and value_key(v) or v == null and "null" or lit(v)
  end
  return "{" .. concat(out, ",") .. "}"
end
content_key = function(node)
  local k = body_of[node]
  if k then return k end
  local parts = { "t=" .. tostring(node.type) }
  if node["$ref"] then
    local name = component(node["$ref"])
    parts[#parts + 1] = "r=" .. (recursive[name] and "@" .. name or content_key(schemas[name]))
  end
  if node.properties then
    local ps = {}
    for _, pk in ipairs(sorted_keys(node.properties)) do
      local sub = node.properties[pk]
      local e164 = pk:find("phone") and type(sub.description) == "string"
        and sub.description:find("E.164", 1, true)
      local v = value_key(sub)
      if v ~= "any" then ps[#ps + 1] = lit(pk) .. ":" .. v .. (e164 and "!" or "") end
    end
    parts[#parts + 1] = "p={" .. concat(ps, ",") .. "}"
  end
  if node.items then parts[#parts + 1] = "i=" .. value_key(node.items) end
  for _, field in ipairs({ "required", "allOf", "oneOf", "anyOf", "enum" }) do
    if node[field] then parts[#parts + 1] = field .. "=" .. list_key(node[field]) end
  end
  if FORMAT[node.format] then parts[#parts + 1] = "f=" .. node.format end
  if node.additionalProperties == false then
    local names = {}
    for i, pk in ipairs(sorted_keys(node.properties or {})) do names[i] = lit(pk) end
    parts[#parts + 1] = "closed={" .. concat(names, ",") .. "}"
  end
  for _, field in ipairs({ "maxProperties", "minProperties", "maxItems", "minItems" }) do
    if node[field] then parts[#parts + 1] = field .. "=" .. lit(node[field]) end
  end
  k = intern(concat(parts, ";"))
  body_of[node] = k
  return k
end

-- The key a node's function is placed by: a recursive component's own name, else its content key.
local function place_key(node, name)
  if name and recursive[name] then return "@" .. name end
  return content_key(node)
end

local group_of = {}    -- shared key -> its module's name
local reach            -- while placing: key -> {operation = true}
local name_of = {}     -- key -> the name of the first component met with it
local current_op
local modules = {}     -- shared module name -> its file
local shared_fn = {}   -- shared key -> its expression, once written
local unnamed = 0      -- shared keys no component names, numbered as written

local function new_file(kind, title)
  return { kind = kind, title = title, funcs = {}, nf = 0, called = {}, same = {}, by_key = {},
           sets = {}, set_of = {} }
end

-- A set of values (an enum's values, a closed object's members), once per file: E[i]; an
-- enum's text beside it as T[i].
local function set_id(file, values, text)
  local key = cjson.encode(values)
  local id = file.set_of[key]
  if not id then
    local items = {}
    for j, v in ipairs(values) do items[j] = lit(v) end
    id = #file.sets + 1
    file.sets[id] = format("E[%d] = set{ %s }", id, concat(items, ", "))
      .. (text and format(" T[%d] = %s", id, lit(text)) or "")
    file.set_of[key] = id
  end
  return id
end

local fn_of

-- What checks local x (present) against node, as statements each guarded by conditions:
-- { conds = {...}, body = "return ..." }. A failure returns ptr (a Lua expression) prefixed
-- to what the check found, or (brk, inside a oneOf branch) breaks with it in p, e, g.
local function checks(file, node, x, ptr, e164, brk)
  local items = {}
  local function fail(expected, given)
    if brk then return format("p, e, g = %s, %s, %s break", ptr, expected, given) end
    return format("return %s, %s, %s", ptr, expected, given)
  end
  local function call(expr, nullable)
    items[#items + 1] = { conds = { nullable and format("not isnull(%s)", x) or nil },
      body = format("p, e, g = %s(%s) if p then %s end", expr, x,
        brk and "break" or format("return %s .. p, e, g", ptr)) }
    return items
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
      return checks(file, inline, x, ptr, e164, brk)
    end
    return call(fn_of(file, target, component(node["$ref"])), nullable)
  end
  local ty = node.type
  local simple = (ty == "string" or ty == "integer" or ty == "number" or ty == "boolean")
    and not node.allOf and not node.oneOf and not node.anyOf and not node["$ref"]
  if not simple and (node.properties or node.items or node.allOf or node.oneOf or node.anyOf
      or node["$ref"] or ty == "object" or ty == "array") then
    return call(fn_of(file, node), nullable)
  end
  if not ty then return items end   -- any value
  assert(TEST[ty], "unknown type " .. tostring(ty))
  local cond = format(TEST[ty], x)
  if nullable then cond = format("%s and not isnull(%s)", cond, x) end
  local given = format("given(%s)", x)
  local article = nullable and ARTICLE[ty] .. " or null" or ARTICLE[ty]
  items[1] = { conds = { cond }, body = fail(lit(article), given) }
  local guard = nullable and format("not isnull(%s)", x) or nil
  local function when(c) return guard and { guard, c } or { c } end
  local allowed = {}   -- as the arguments of a member check (H.ms and its kin)
  if node.enum then
    local vals = {}
    for _, v in ipairs(node.enum) do if v ~= null then vals[#vals + 1] = v end end
    if #vals == 1 then
      items[#items + 1] = { conds = when(format("%s ~= %s", x, lit(vals[1]))),
        body = fail(lit(enum_text(vals)), given) }
      allowed[#allowed + 1] = lit(vals[1]) .. ", " .. lit(enum_text(vals))
    else
      local id = set_id(file, vals, enum_text(vals))
      items[#items + 1] = { conds = when(format("not E[%d][%s]", id, x)),
        body = fail(format("T[%d]", id), given) }
      allowed[#allowed + 1] = format("E[%d], T[%d]", id, id)
    end
  end
  if ty == "string" and FORMAT[node.format] then
    local fm = FORMAT[node.format]
    items[#items + 1] = { conds = when(format("not %s(%s)", fm[1], x)), body = fail(lit(fm[2]), given) }
    allowed[#allowed + 1] = fm[1]
  end
  if ty == "string" and e164 then
    items[#items + 1] = { conds = when(format("not e164(%s)", x)),
      body = fail(lit("a phone number in E.164 (e.g. +15005550006)"), given) }
    allowed[#allowed + 1] = "e164"
  end
  if #allowed <= 1 then
    items.member = function(key)
      return format("m%s%s(v, %s%s)", ty:sub(1, 1), nullable and "0" or "", key,
        allowed[1] and ", " .. allowed[1] or "")
    end
  end
  return items
end

-- One statement per line; extra conditions (x ~= nil for an optional member) go first.
local function render(items, ind, out, first, extra)
  for i, it in ipairs(items) do
    local conds = { extra }
    for _, c in ipairs(it.conds) do conds[#conds + 1] = c end
    local s = #conds > 0 and format("if %s then %s end", concat(conds, " and "), it.body) or it.body
    out[#out + 1] = ind .. (i == 1 and first or "") .. s
  end
  return out
end

-- Writes the function of a composite node (object, array, allOf, oneOf/anyOf) as expr.
local function emit(file, node, name, expr)
  local slot = #file.funcs + 1   -- a function comes before those it calls
  file.funcs[slot] = false
  local out = { format("%s = function(v)%s", expr,
    name and expr:sub(1, 1) ~= "C" and "   -- " .. name or "") }
  local ty = node.type
  if ty == nil and node.properties then ty = "object" end
  out[2] = false   -- the locals the function uses, below
  if node["$ref"] then
    local target = component(node["$ref"])
    out[#out + 1] = format("  p, e, g = %s(v) if p then return p, e, g end",
      fn_of(file, schemas[target], target))
  end
  if ty == "object" then
    out[#out + 1] = '  if not obj(v) then return "", "an object", given(v) end'
    -- the members in one expression of checks returning the pointer of a failure (what was
    -- expected and given through why()); a member no such check covers is written out
    local req, chain = {}, {}
    local function flush()
      if #chain == 0 then return end
      out[#out + 1] = "  p = " .. concat(chain, "\n    or ")
      out[#out + 1] = "  if p then return p, why() end"
      chain = {}
    end
    for _, r in ipairs(node.required or {}) do
      req[r] = true
      chain[#chain + 1] = format("need(v, %s)", lit(r))
    end
    local props = node.properties or {}
    for _, k in ipairs(sorted_keys(props)) do
      local sub = props[k]
      local e164 = k:find("phone") and type(sub.description) == "string"
        and sub.description:find("E.164", 1, true) ~= nil
      local items = checks(file, sub, "x", pointer(k), e164)
      if #items == 0 then   -- luacheck: ignore 542 (any value)
      elseif items.member then
        chain[#chain + 1] = items.member(lit(k))
      else
        flush()
        render(items, "  ", out, format("x = v%s ", member(k)), not req[k] and "x ~= nil" or nil)
      end
    end
    flush()
    if node.additionalProperties == false then
      local id = set_id(file, sorted_keys(props))
      out[#out + 1] = format('  p = closed(v, E[%d]) if p then return "/" .. p, %s, %s end', id,
        lit("no other members"), lit("a member not in the schema"))
    end
    if node.maxProperties then
      out[#out + 1] = format('  if count(v) > %d then return "", %s, count(v) .. " members" end',
        node.maxProperties, lit(format("at most %d members", node.maxProperties)))
    end
    if node.minProperties then
      out[#out + 1] = format('  if count(v) < %d then return "", %s, count(v) .. " members" end',
        node.minProperties, lit(format("at least %d members", node.minProperties)))
    end
  elseif ty == "array" then
    out[#out + 1] = '  if not arr(v) then return "", "an array", given(v) end'
    out[#out + 1] = "  local n = #v"
    if node.minItems then
      out[#out + 1] = format('  if n < %d then return "", %s, n .. " items" end', node.minItems,
        lit(format("at least %d items", node.minItems)))
    end
    if node.maxItems then
      out[#out + 1] = format('  if n > %d then return "", %s, n .. " items" end', node.maxItems,
        lit(format("at most %d items", node.maxItems)))
    end
    if node.items then
      local items = checks(file, node.items, "x", '"/" .. (i - 1)')
      if #items == 1 then
        render(items, "  ", out, "for i = 1, n do local x = v[i] ")
        out[#out] = out[#out] .. " end"
      elseif #items > 1 then
        out[#out + 1] = "  for i = 1, n do local x = v[i]"
        render(items, "    ", out, "")
        out[#out + 1] = "  end"
      end
    end
  elseif ty then
    local plain = {}
    for k, val in pairs(node) do
      if k ~= "allOf" and k ~= "oneOf" and k ~= "anyOf" and k ~= "nullable" then plain[k] = val end
    end
    render(checks(file, plain, "v", '""'), "  ", out, "")
  end
  for _, sub in ipairs(node.allOf or {}) do
    render(checks(file, sub, "v", '""'), "  ", out, "")
  end
  local branches = node.oneOf or node.anyOf
  if branches then
    -- accepted when a branch accepts; else the failure of the branch the value came closest
    -- to (klaviyo.body_check's closer)
    out[#out + 1] = "  local bp, be, bg"
    for i, sub in ipairs(branches) do
      local items = checks(file, sub, "v", '""', false, true)
      local keep = i == 1 and "bp, be, bg = p, e, g" or "bp, be, bg = best(bp, be, bg, p, e, g)"
      if #items == 1 and #items[1].conds == 0 and items[1].body:find(" if p then break end$") then
        -- a branch that is one check: accepted when it passes
        local call = items[1].body:gsub(" if p then break end$", " if not p then return end ")
        out[#out + 1] = "  " .. call .. keep
      else
        out[#out + 1] = "  repeat " .. concat(render(items, "", {}, ""), " ")
          .. " return nil until true " .. keep
      end
    end
    out[#out + 1] = "  return bp, be, bg"
  end
  out[#out + 1] = "end"
  local used, body = {}, concat(out, "\n", 3)
  for _, l in ipairs({ "p", "e", "g", "x" }) do
    if body:find("%f[%w_]" .. l .. "%f[^%w_]") then used[#used + 1] = l end
  end
  if #used > 0 then out[2] = "  local " .. concat(used, ", ") else table.remove(out, 2) end
  -- a private function written the same as one before it in this file is that one (unless
  -- it was called from inside itself, which named it already)
  if expr:sub(1, 1) ~= "C" and not file.called[expr] then
    local key = concat(out, "\n", 2)
    if file.same[key] then
      file.funcs[slot] = false
      return file.same[key]
    end
    file.same[key] = expr
  end
  file.funcs[slot] = concat(out, "\n")
  return expr
end

-- The function checking a composite node, as a Lua expression (F[n] or C.Name): one per
-- content key in a file, and a key several operations reach is written once, in a shared
-- module.
fn_of = function(file, node, name)
  local key = place_key(node, name)
  if reach then
    reach[key] = reach[key] or {}
    reach[key][current_op] = true
    if name and not name_of[key] then name_of[key] = name end
  end
  if group_of[key] then
    if not shared_fn[key] then
      local cname = name_of[key]
      if not cname then
        unnamed = unnamed + 1
        cname = "_" .. unnamed
      end
      shared_fn[key] = "C" .. member(cname)
      emit(modules[group_of[key]], node, cname, shared_fn[key])
    end
    return shared_fn[key]
  end
  assert(file.kind ~= "shared", "a shared check reaches a private one: " .. tostring(name))
  local known = file.by_key[key]
  if known then
    file.called[known] = true
    return known
  end
  -- private functions are numbered when the file is written (some are dropped as duplicates)
  file.nf = file.nf + 1
  local expr = "\0" .. file.nf .. "\0"
  file.by_key[key] = expr
  local final = emit(file, node, name, expr)
  file.by_key[key] = final
  return final
end

-- The helpers of klaviyo.body_check the generated code calls, as locals of each file that does.
local HELPERS = { "obj", "arr", "int", "num", "isnull", "given", "need", "why", "ms", "ms0", "mi", "mi0",
  "mn", "mn0", "mb", "mb0", "dt", "date", "tm", "uri", "e164", "closed", "count", "closer", "best", "set" }

local function text_of(file, tail, shape_text)
  local funcs, number, n = {}, {}, 0
  for _, fn in ipairs(file.funcs) do
    if fn then
      funcs[#funcs + 1] = fn
      local id = fn:match("^%z(%d+)%z")
      if id then
        n = n + 1
        number[id] = format("F[%d]", n)
      end
    end
  end
  for i, fn in ipairs(funcs) do
    funcs[i] = fn:gsub("%z(%d+)%z", function(id)
      return assert(number[id], "a dropped function is called")
    end)
  end
  tail = tail:gsub("%z(%d+)%z", number)
  local code = concat(file.sets, "\n") .. "\n" .. concat(funcs, "\n") .. "\n" .. tail
  local function uses(name) return code:find("%f[%w_]" .. name .. "%f[^%w_]") ~= nil end
  local head = {
    "-- luacheck: ignore",
    "-- Generated by tools/gen-bodies.lua from Klaviyo's OpenAPI spec: do not edit.",
    file.title,
    'local H = require "klaviyo.body_check"',
  }
  local names, values = {}, {}
  local function add(name, value)
    if #names == 8 then
      head[#head + 1] = format("local %s = %s", concat(names, ", "), concat(values, ", "))
      names, values = {}, {}
    end
    names[#names + 1], values[#values + 1] = name, value
  end
  if uses("type") then add("type", "type") end
  for _, h in ipairs(HELPERS) do if uses(h) then add(h, "H." .. h) end end
  if code:find("C[.[]") then add("C", format("H.components(%s)", lit(prefix))) end
  for _, t in ipairs({ "F", "E", "T" }) do if code:find(t .. "[", 1, true) then add(t, "{}") end end
  if #names > 0 then head[#head + 1] = format("local %s = %s", concat(names, ", "), concat(values, ", ")) end
  local parts = { concat(head, "\n") }
  for _, s in ipairs(file.sets) do parts[#parts + 1] = s end
  for _, fn in ipairs(funcs) do parts[#parts + 1] = fn end
  parts[#parts + 1] = tail .. (shape_text or "")
  return concat(parts, "\n")
end

-- One operation's file: its private functions and its check.
local function generate(op_id, root)
  local file = new_file("operation",
    format("-- The request body check of %s, run by klaviyo.body_check.", op_id))
  current_op = op_id
  local top
  if root["$ref"] and not root.nullable then   -- the body is one component: its function
    top = fn_of(file, schemas[component(root["$ref"])], component(root["$ref"]))
  else
    top = fn_of(file, root)
  end
  local lines = {}
  if not reach then shape(root, "", lines) end
  local req = requires(root)
  for i, l in ipairs(req) do req[i] = lit(l) end
  return text_of(file,
    format("return { check = %s, requires = { %s }, shape = [==[\n", top, concat(req, ", ")),
    numbered(concat(lines, "\n")) .. "\n]==] }\n")
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

-- First pass: which operations reach each component; those reached by several are shared,
-- grouped by the operations that reach them.
reach = {}
for _, op in ipairs(ops) do generate(op.id, op.schema) end
local groups = {}
for key, users in pairs(reach) do
  local us = sorted_keys(users)
  if #us > 1 then
    local set = concat(us, ", ")
    groups[set] = groups[set] or {}
    groups[set][#groups[set] + 1] = key
  end
end
reach = nil
for i, set in ipairs(sorted_keys(groups)) do
  local mod = format("_shared_%02d", i)
  modules[mod] = new_file("shared", format("-- Checks of the components the bodies of %s share.", set))
  for _, key in ipairs(groups[set]) do group_of[key] = mod end
end

local function write(name, text)
  local out = assert(io.open(outdir .. "/" .. name .. ".lua", "wb"))
  out:write(text)
  out:close()
end

for _, op in ipairs(ops) do write(op.id, generate(op.id, op.schema)) end
for _, mod in ipairs(sorted_keys(modules)) do write(mod, text_of(modules[mod], "")) end
local frag = { "-- luacheck: ignore",
  "-- Generated by tools/gen-bodies.lua: the shape fragments of klaviyo describe,",
  "-- expanded by klaviyo.body_check.generated.", "return {" }
for _, text in ipairs(fragments) do frag[#frag + 1] = "[==[\n" .. numbered(text) .. "]==]," end
frag[#frag + 1] = "}\n"
write("_shapes", concat(frag, "\n"))
local lines = { "-- Generated by tools/gen-bodies.lua: which module holds each shared check.",
  "return {" }
local index = {}
for key, expr in pairs(shared_fn) do index[#index + 1] = { (expr:sub(2):gsub("^%.", "")), group_of[key] } end
sort(index, function(a, b) return a[1] < b[1] end)
for _, e in ipairs(index) do lines[#lines + 1] = format("  %s = %s,", e[1], lit(e[2])) end
lines[#lines + 1] = "}\n"
write("_index", concat(lines, "\n"))
