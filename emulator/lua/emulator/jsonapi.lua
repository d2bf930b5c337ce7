-- Klaviyo's JSON:API document shapes: error documents, resources, collections
-- with cursor pagination, sparse fieldsets, and an encoder that can write `[]`
-- (Debian's lua-cjson 2.1.0 has no empty_array, so an empty table would come
-- out as `{}`).
local cjson = require "cjson.safe"
local state = require "emulator.state"

local encode, decode = cjson.encode, cjson.decode
local null = cjson.null
local find, gsub, format, tonumber, tostring = string.find, string.gsub, string.format, tonumber, tostring
local pairs, ipairs, type, concat, sort = pairs, ipairs, type, table.concat, table.sort
local random = math.random

local M = {}
M.null = null

-- A string no client could send (cjson writes \0 as \u0000), replaced after encoding.
local EMPTY = "\0emu-empty-array\0"
local EMPTY_JSON = '"\\u0000emu%-empty%-array\\u0000"'  -- a gsub pattern
M.EMPTY_ARRAY = EMPTY

--- `t` if it has items, else the empty-array sentinel (encodes as `[]`).
function M.array(t)
  if t == nil or t[1] == nil then return EMPTY end
  return t
end

--- Encodes a document; empty arrays marked with M.array() come out as `[]`.
function M.encode(doc)
  local s = encode(doc)
  if s and find(s, "emu-empty-array", 1, true) then
    s = gsub(s, EMPTY_JSON, "[]")
  end
  return s
end
M.decode = decode

local function uuid()
  return format("%08x-%04x-4%03x-%04x-%04x%08x", random(0, 0x7fffffff), random(0, 0xffff),
    random(0, 0xfff), random(0x8000, 0xbfff), random(0, 0xffff), random(0, 0x7fffffff))
end
M.uuid = uuid

--- An error document with one error. `source` is {pointer=...} or {parameter=...}.
-- Returns status, doc so handlers can `return jsonapi.error(...)`.
function M.error(status, code, title, detail, source, meta)
  local e = { id = uuid(), status = status, code = code, title = title, detail = detail }
  if source then e.source = source end
  if meta then e.meta = meta end
  return status, { errors = { e } }
end

-- Shorthands for the common cases.
function M.invalid(detail, source, meta)
  return M.error(400, "invalid", "Invalid input.", detail, source, meta)
end
function M.not_found(detail)
  return M.error(404, "not_found", "Not found.", detail or "Not found.")
end

--- The attributes object of a resource object `data` ({} when it has none or they are not
-- an object: the checks of each handler then name what is missing).
function M.attributes(data)
  return type(data.attributes) == "table" and data.attributes or {}
end

--- The item of `by_id` under `id`: item, or nil and the 404 Klaviyo answers for a get,
-- update or delete of a missing resource ("<What> '<id>' not found.") as status, doc.
function M.lookup(by_id, id, what)
  local item = by_id[id]
  if item == nil then return nil, M.not_found(format("%s '%s' not found.", what, tostring(id))) end
  return item
end

--- The item an update (PATCH) names: as M.lookup, and then 409 when the body's data.id is
-- not the URL's id. Returns item, or nil, status, doc.
function M.lookup_update(req, by_id, what)
  local id = req.params.id
  local item, st, doc = M.lookup(by_id, id, what)
  if item == nil then return nil, st, doc end
  if req.body.data.id ~= id then
    return nil, M.error(409, "conflict", "Conflict.",
      "The resource object's id does not match the id in the URL.", { pointer = "/data/id" })
  end
  return item
end

--- 200 and the document of one resource read or changed at this URL: `data`, a self link
-- (the request's URL) and `included` when given.
function M.single(req, data, included)
  return 200, { data = data, links = { self = req.base_url .. req.path }, included = included }
end

--- The answer to a get of one resource: the 404 of M.lookup, or what
-- `to_resource(item, fields)` (fields: the sparse fieldset asked for `rtype`) makes of it:
-- the resource and what to include (nil: nothing) for 200, or nil, status, doc for a
-- request it refuses (a bad include).
function M.get_one(req, by_id, what, rtype, to_resource)
  local item, st, doc = M.lookup(by_id, req.params.id, what)
  if item == nil then return st, doc end
  local data, included, idoc = to_resource(item, M.fields(req, rtype))
  if data == nil then return included, idoc end
  return M.single(req, data, included)
end

--- A resource object. `links_self` is a full URL (or nil to omit links).
function M.resource(rtype, id, attributes, relationships, links_self)
  local r = { type = rtype, id = id, attributes = attributes or {} }
  if relationships then r.relationships = relationships end
  if links_self then r.links = { self = links_self } end
  return r
end

---------------------------------------------------------------- query strings

local function escape(s)
  return (gsub(tostring(s), "[^%w%-%._~]", function(c) return format("%%%02X", c:byte()) end))
end
M.escape = escape

--- Rebuilds a query string from a name -> value table, with overrides
-- (a false override drops the argument). Sorted for stable links.
function M.query_string(query, overrides)
  local merged = {}
  for k, v in pairs(query or {}) do merged[k] = v end
  for k, v in pairs(overrides or {}) do
    if v == false then merged[k] = nil else merged[k] = v end
  end
  local keys = {}
  for k in pairs(merged) do keys[#keys + 1] = k end
  sort(keys)
  local parts = {}
  for i, k in ipairs(keys) do parts[i] = escape(k) .. "=" .. escape(merged[k]) end
  return concat(parts, "&")
end

--- The full URL of `path` on this emulator with `query` (a table) appended.
function M.url(req, path, query, overrides)
  local qs = M.query_string(query, overrides)
  local base = (req.base_url or "") .. path
  if qs == "" then return base end
  return base .. "?" .. qs
end

---------------------------------------------------------------- pagination

local function query_def(op, name)
  if not op or not op.query then return nil end
  for _, q in ipairs(op.query) do
    if q.name == name then return q end
  end
  return nil
end

-- Cursors are opaque to clients; this one encodes an offset and the state
-- generation so a cursor from before a reset is refused, not silently reused.
local function make_cursor(offset)
  return format("emu%x.%x", offset, state.generation or 0)
end
local function read_cursor(c)
  local off, gen = c:match("^emu(%x+)%.(%x+)$")
  if not off or tonumber(gen, 16) ~= (state.generation or 0) then return nil end
  return tonumber(off, 16)
end

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

-- The page[cursor] value in the query of a URL (percent-decoded), or false.
local function cursor_of_url(url)
  local q = url:match("%?([^#]*)")
  for pair in (q or ""):gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=(.*)$")
    if k and unescape(k) == "page[cursor]" then return unescape((gsub(v, "%+", " "))) end
  end
  return false
end

--- The page size for req (page[size] within the operation's bounds). Returns
-- size, or nil, status, doc for a bad value.
function M.page_size(req, default)
  local def = query_def(req.op, "page[size]")
  local raw = req.query and req.query["page[size]"]
  if not def then return default or 20 end
  local max = def.max or 100
  if default == nil then
    if max <= 50 then default = max elseif max >= 1000 then default = 200 else default = 20 end
  end
  if raw == nil then return default end
  local n = tonumber(raw)
  if not n or n ~= math.floor(n) or n < (def.min or 1) or n > max then
    return nil, M.invalid(format("Page size must be an integer between %d and %d.", def.min or 1, max),
      { parameter = "page[size]" })
  end
  return n
end

--- Collection document for `items` (an array, already filtered and ordered),
-- one page of it chosen by page[cursor]/page[size]. `to_resource(item, req)`
-- maps an item to a resource. Returns 200, doc (or an error status, doc).
-- opts.default_size overrides the default page size; opts.included is added.
function M.page(req, items, to_resource, opts)
  opts = opts or {}
  local size, st, doc = M.page_size(req, opts.default_size)
  if not size then return st, doc end
  local offset = 0
  local cur = req.query and req.query["page[cursor]"]
  if type(cur) == "string" and find(cur, "^https?://") then
    -- the whole links.next URL, as Klaviyo's SDKs pass it: its page[cursor] is the cursor
    cur = cursor_of_url(cur)
  end
  if cur ~= nil then
    offset = type(cur) == "string" and read_cursor(cur) or nil
    if not offset then
      return M.invalid("Invalid page cursor.", { parameter = "page[cursor]" })
    end
  end
  local data, n = {}, #items
  local last = offset + size
  if last > n then last = n end
  for i = offset + 1, last do
    data[#data + 1] = to_resource(items[i], req)
  end
  local path = req.path or (req.op and req.op.path) or ""
  local links = { self = M.url(req, path, req.query) }
  if last < n then
    links.next = M.url(req, path, req.query, { ["page[cursor]"] = make_cursor(last) })
  end
  if offset > 0 then
    local prev = offset - size
    if prev <= 0 then
      links.prev = M.url(req, path, req.query, { ["page[cursor]"] = false })
    else
      links.prev = M.url(req, path, req.query, { ["page[cursor]"] = make_cursor(prev) })
    end
  end
  local out = { data = M.array(data), links = links }
  if opts.included then out.included = M.array(opts.included) end
  return 200, out
end

---------------------------------------------------------------- sparse fieldsets

local function split(s)
  local out = {}
  for item in tostring(s):gmatch("[^,]+") do out[#out + 1] = item:match("^%s*(.-)%s*$") end
  return out
end
M.split = split

--- The set of fields asked for with fields[rtype], or false when absent. The server has
-- checked every value against the operation's enum (klaviyo.query_check). Dotted names
-- (location.city) select nested keys.
function M.fields(req, rtype)
  local raw = req.query and req.query["fields[" .. rtype .. "]"]
  if raw == nil then return false end
  local set = {}
  for _, f in ipairs(split(raw)) do set[f] = true end
  return set
end

--- attributes filtered by a fields set (false/nil: all). Dotted names pick
-- nested keys (location.city).
function M.sparse(attributes, set)
  if not set then return attributes end
  local out = {}
  for f in pairs(set) do
    local top, sub = f:match("^([^%.]+)%.(.+)$")
    if top then
      local v = attributes[top]
      if type(v) == "table" then
        out[top] = out[top] or {}
        out[top][sub] = v[sub] == nil and null or v[sub]
      end
    elseif attributes[f] ~= nil then
      out[f] = attributes[f]
    end
  end
  return out
end

--- Set of additional-fields[rtype] values asked for (empty set when absent).
function M.additional(req, rtype)
  local raw = req.query and req.query["additional-fields[" .. rtype .. "]"]
  local set = {}
  if raw ~= nil then
    for _, f in ipairs(split(raw)) do set[f] = true end
  end
  return set
end

return M
