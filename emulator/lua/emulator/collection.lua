-- Query glue shared by the list, segment and flow collection handlers: the `filter`,
-- `sort` and `include` parameters checked against what each operation allows, each
-- bad value answered 400 with source.parameter naming it, as Klaviyo does.
local jsonapi = require("emulator.jsonapi")
local filter = require("emulator.filter")
local state = require("emulator.state")

local format, sort, type, pairs, ipairs, next = string.format, table.sort, type, pairs, ipairs, next

local _M = {}

--- A predicate for the request's `filter` against `allowed` (see filter.matcher), or
-- false when there is no filter. On a bad filter: nil, status, doc.
function _M.filter(req, allowed)
  local raw = req.query and req.query.filter
  if raw == nil then return false end
  if type(raw) ~= "string" then
    return nil, jsonapi.invalid("filter must be given once.", {parameter = "filter"})
  end
  local pred, err = filter.compile(raw, allowed)
  if not pred then return nil, jsonapi.invalid(err, {parameter = "filter"}) end
  return pred
end

--- Items of `list` for which `pred` holds (all of them when pred is false).
function _M.select(list, pred)
  if not pred then return list end
  local out = {}
  for _, item in ipairs(list) do
    if pred(item) then out[#out + 1] = item end
  end
  return out
end

--- Sorts `items` in place by the request's `sort` (`name` or `-name`), keys mapping
-- each allowed name to a getter. Ties (and no sort at all) fall back to `tiebreak`
-- (a getter, default item.id) so pages never overlap. Returns true or nil, status, doc.
function _M.sort(req, items, keys, default, tiebreak)
  local raw = (req.query and req.query.sort) or default
  tiebreak = tiebreak or function(x) return x.id end
  local get, desc
  if raw ~= nil then
    if type(raw) ~= "string" then
      return nil, jsonapi.invalid("sort must be given once.", {parameter = "sort"})
    end
    local name = raw
    if name:sub(1, 1) == "-" then desc, name = true, name:sub(2) end
    get = keys[name]
    if not get then
      return nil, jsonapi.invalid(format("'%s' is not a valid sort field for this resource.", raw),
        {parameter = "sort"})
    end
  end
  sort(items, function(a, b)
    if get then
      local x, y = get(a), get(b)
      if x ~= y then
        if x == nil then return not desc end
        if y == nil then return desc and true or false end
        if desc then return x > y end
        return x < y
      end
    end
    -- a descending sort reverses ties too (members added in one call share a join time)
    if desc then return tiebreak(a) > tiebreak(b) end
    return tiebreak(a) < tiebreak(b)
  end)
  return true
end

--- The set of `include` values asked for, each checked against `allowed` (array).
-- Returns set (empty when absent) or nil, status, doc.
function _M.includes(req, allowed)
  local raw = req.query and req.query.include
  local set = {}
  if raw == nil then return set end
  local ok = {}
  for _, v in ipairs(allowed) do ok[v] = true end
  for _, v in ipairs(jsonapi.split(raw)) do
    if not ok[v] then
      return nil, jsonapi.invalid(format("'%s' is not a valid relationship to include.", v),
        {parameter = "include"})
    end
    set[v] = true
  end
  return set
end

--- additional-fields[rtype] values, each checked against `allowed`.
function _M.additional(req, rtype, allowed)
  local set = jsonapi.additional(req, rtype)
  local ok = {}
  for _, v in ipairs(allowed) do ok[v] = true end
  for v in pairs(set) do
    if not ok[v] then
      return nil, jsonapi.invalid(format("'%s' is not a valid additional field for '%s'.", v, rtype),
        {parameter = "additional-fields[" .. rtype .. "]"})
    end
  end
  return set
end

--- `path` of the request as received (for links.self), falling back to the template
-- filled with the path parameters.
function _M.path(req)
  if req.path then return req.path end
  local p = req.op and req.op.path or ""
  return (p:gsub("{([%w_]+)}", function(k) return (req.params or {})[k] or "" end))
end

--- Relationship links of a resource: {self = .../relationships/<name>, related = .../<name>}.
function _M.rel_links(base, name)
  return {links = {self = base .. "/relationships/" .. name, related = base .. "/" .. name}}
end

--- The request body's `data` (object or array per `kind`: "object"|"array"), or nil,
-- status, doc. The server has checked the JSON:API envelope; this guards the handler.
function _M.data(req, kind)
  local b = req.body
  local d = type(b) == "table" and b.data or nil
  if type(d) ~= "table" then
    return nil, jsonapi.invalid("The request body must have a 'data' member.", {pointer = "/data"})
  end
  local is_array = d[1] ~= nil or next(d) == nil
  if kind == "array" and not is_array then
    return nil, jsonapi.invalid("'data' must be an array.", {pointer = "/data"})
  elseif kind == "object" and is_array then
    return nil, jsonapi.invalid("'data' must be an object.", {pointer = "/data"})
  end
  return d
end

--- The `attributes` object of a data object (an empty table when absent and optional).
function _M.attributes(data, required)
  local a = data.attributes
  if a == nil and not required then return {} end
  if type(a) ~= "table" then
    return nil, jsonapi.invalid("'attributes' must be an object.", {pointer = "/data/attributes"})
  end
  return a
end

--- A 400 for a field of the body at JSON pointer `pointer`.
function _M.bad(pointer, detail)
  return jsonapi.invalid(detail, {pointer = pointer})
end

--- ISO datetime of an epoch (nil stays nil).
function _M.iso(t)
  if t == nil then return nil end
  return state.iso(t)
end

return _M
