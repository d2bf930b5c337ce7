--- JSON:API resources to flat Lua tables and back.
--
-- Klaviyo answers `{type, id, attributes = {...}, relationships = {...}, links}`. Users want
-- `profile.email`, not `doc.data.attributes.email`. `flatten` gives a table with `id`, `type`,
-- every attribute under its own (snake_case, as Klaviyo names it) key, each relationship as
-- ids (`<name>_id` for to-one, `<singular>_ids` for to-many, hyphens as underscores:
-- `flow-actions` -> `flow_action_ids`), and the untouched resource under `_raw`. An
-- attribute never loses to a relationship: if the names collide the attribute wins and the
-- relationship stays reachable through `_raw`. An attribute named like a field of the flat
-- table's own (`id`, `type`, or starting with `_`: `_raw`, `_document`, `_included`) stays
-- in `_raw` only.
-- @module klaviyo.resource
local errors = require "klaviyo.errors"

local type, pairs, next, gsub, sub, byte, match = type, pairs, next, string.gsub, string.sub,
  string.byte, string.match
local setmetatable, error = setmetatable, error

local _M = {}

--- Turn a relationship name into a Lua key: `flow-actions` -> `flow_action_ids`,
-- `metric` (to-one) -> `metric_id`, `metric-properties` -> `metric_property_ids`.
---@param name string relationship name
---@param many boolean to-many?
---@return string
function _M.rel_key(name, many)
  local k = gsub(name, "%-", "_")
  if not many then return k .. "_id" end
  if match(k, "ies$") then
    k = sub(k, 1, -4) .. "y"
  elseif match(k, "[^s]s$") then
    k = sub(k, 1, -2)
  end
  return k .. "_ids"
end

--- Flatten one JSON:API resource object.
---@param r table resource (`{type=, id=, attributes=, relationships=}`)
---@return table # flat table (`id`, `type`, attributes, relationship ids, `_raw`)
function _M.flatten(r)
  if type(r) ~= "table" then return r end
  local out = { id = r.id, type = r.type, _raw = r }
  local rels = r.relationships
  if type(rels) == "table" then
    for name, rel in pairs(rels) do
      local data = type(rel) == "table" and rel.data
      if type(data) == "table" then
        if data.id ~= nil or data.type ~= nil then
          out[_M.rel_key(name, false)] = data.id
        else
          local ids = {}
          for i = 1, #data do ids[i] = data[i].id end
          out[_M.rel_key(name, true)] = ids
        end
      end
    end
  end
  local attrs = r.attributes
  if type(attrs) == "table" then
    local own_field = _M.own_field
    for k, v in pairs(attrs) do
      if not own_field(k) then out[k] = v end
    end
  end
  return out
end

-- Is d a JSON array as cjson decodes one: a table with an item at 1, or an empty table?
local function is_array(d) return type(d) == "table" and (d[1] ~= nil or next(d) == nil) end

--- Why `r` is not a JSON:API resource object (or resource identifier) the flattening can
-- trust: a table with a non-empty string `type` and `id`, `attributes` an object if present,
-- and every relationship's `data` null, an identifier or an array of identifiers. Klaviyo's
-- answers always pass; a server's garbage (a null, a number id, an item without an id) does not.
---@param r any
---@param where string where `r` sits in the document, for the message (e.g. "data[2]")
---@return string|nil # what is wrong, or nil when `r` is a resource
function _M.problem(r, where)
  if type(r) ~= "table" or r[1] ~= nil or next(r) == nil then
    return where .. " is not a resource object"
  end
  if type(r.type) ~= "string" or r.type == "" then return where .. ".type is not a string" end
  if type(r.id) ~= "string" or r.id == "" then return where .. ".id is not a string" end
  local attrs, rels = r.attributes, r.relationships
  if attrs ~= nil and (type(attrs) ~= "table" or attrs[1] ~= nil) then
    return where .. ".attributes is not an object"
  end
  if rels == nil then return nil end
  if type(rels) ~= "table" or rels[1] ~= nil then return where .. ".relationships is not an object" end
  for name, rel in pairs(rels) do
    local data = type(rel) == "table" and rel.data
    if type(data) == "table" then
      local list = is_array(data) and data or { data }
      for i = 1, #list do
        local ref = list[i]
        if type(ref) ~= "table" or type(ref.id) ~= "string" then
          return where .. ".relationships." .. name .. " holds an item without a string id"
        end
      end
    end
  end
  return nil
end

--- The error for an answer that is not the document the operation promises (kind "decode").
---@param op string? the operation
---@param msg string what is wrong
---@return klaviyo.Error
function _M.shape_error(op, msg)
  return errors.new("decode", op, "the answer is not the JSON:API document expected: " .. msg,
    { code = "unexpected_shape" })
end

--- The resources of a list document (`data` an array of resources), checked (`problem`).
---@param doc any a decoded answer
---@return table|nil # the `data` array, or nil and what is wrong
---@return string|nil
function _M.data_list(doc)
  if type(doc) ~= "table" or doc[1] ~= nil then return nil, "the answer is not a JSON object" end
  local data = doc.data
  if not is_array(data) then return nil, "data is not an array" end
  for i = 1, #data do
    local msg = _M.problem(data[i], "data[" .. i .. "]")
    if msg then return nil, msg end
  end
  return data
end

--- Flatten a single-resource document (`{data = {...}, included = {...}}`): the resource
-- flattened, the whole document under `_document`, included resources flattened under
-- `_included` (array, in the server's order) when there are any. A document of another shape
-- (`data` missing, null, an array, a resource without a string id, ...) is nil, err (kind
-- "decode").
---@param doc any a decoded answer
---@param op string? the operation, for the error
---@return table|nil # flat resource, or nil, err
---@return klaviyo.Error|nil
function _M.from_document(doc, op)
  if type(doc) ~= "table" or doc[1] ~= nil then
    return nil, _M.shape_error(op, "the answer is not a JSON object")
  end
  local msg = _M.problem(doc.data, "data")
  local inc = doc.included
  if not msg and inc ~= nil then
    if not is_array(inc) then msg = "included is not an array" end
    for i = 1, msg and 0 or #inc do
      msg = _M.problem(inc[i], "included[" .. i .. "]")
      if msg then break end
    end
  end
  if msg then return nil, _M.shape_error(op, msg) end
  local out = _M.flatten(doc.data)
  out._document = doc
  if inc ~= nil and inc[1] ~= nil then
    local flat = {}
    for i = 1, #inc do flat[i] = _M.flatten(inc[i]) end
    out._included = flat
  end
  return out
end

-- f applied to each resource of a list document; nil, err when it is not one.
local function map_data(doc, f, op)
  local data, msg = _M.data_list(doc)
  if not data then return nil, _M.shape_error(op, msg) end
  local out = {}
  for i = 1, #data do out[i] = f(data[i]) end
  return out
end

local function id_of(r) return r.id end

--- Flatten every resource of a list document (`data` an array).
---@param doc any a decoded answer
---@param op string? the operation, for the error
---@return table|nil # array of flat tables, or nil, err (kind "decode") for another shape
---@return klaviyo.Error|nil
function _M.list(doc, op) return map_data(doc, _M.flatten, op) end

--- What a method returns for a call that answers one resource: `from_document` of the
-- document, or the call's failure unchanged. `return R.one(op, self.client:call(op, params))`
---@param op string the operation
---@param doc table|nil the call's document (nil on a failure)
---@param err any the call's error (its response on a success)
---@return table|nil # flat resource, or nil, err
function _M.one(op, doc, err)
  if not doc then return nil, err end
  return _M.from_document(doc, op)
end

--- What a method returns for a call that answers a list: `list` of the document, or the
-- call's failure unchanged.
---@param op string the operation
---@param doc table|nil the call's document (nil on a failure)
---@param err any the call's error (its response on a success)
---@return table|nil # array of flat resources, or nil, err
function _M.many(op, doc, err)
  if not doc then return nil, err end
  return _M.list(doc, op)
end

--- Ids of a relationship document (`{data = {{type=, id=}, ...}}`).
---@param doc any a decoded answer
---@param op string? the operation, for the error
---@return table|nil # array of id strings, or nil, err (kind "decode") for another shape
function _M.ids(doc, op) return map_data(doc, id_of, op) end

--- Wrap an iterator of JSON:API resources (as `client:paginate` yields them) so it yields
-- flat tables. Whatever is not a resource (the end, or the iterator's error signal with its
-- `err`) passes through unchanged, so the caller's error convention is kept.
---@param iter function
---@param state any generic-for state
---@param ctl any generic-for control value
---@return function
function _M.flat_iter(iter, state, ctl)
  return function()
    local item, err = iter(state, ctl)
    ctl = item
    if type(item) ~= "table" then return item, err end
    return _M.flatten(item), err
  end
end

--- Build a JSON:API resource from a flat table: `id` (if any) at the top, every other field
-- an attribute (the reverse of `flatten`, for request bodies). Keys starting with `_` are
-- left out so a flattened table can be sent back.
---@param rtype string resource type, e.g. "profile"
---@param flat table
---@return table # `{type=, id=, attributes=}`
function _M.unflatten(rtype, flat)
  return { type = rtype, id = flat.id, attributes = _M.attributes(flat) }
end

--- Is `k` a flat resource's own field (id, type, or a name starting with "_") rather than one
-- of its attributes?
---@param k string a field name
---@return boolean
function _M.own_field(k)
  return k == "id" or k == "type" or (type(k) == "string" and byte(k, 1) == 95) -- "_"
end

--- The attributes of a flat resource: every field but its own (`own_field`).
---@param flat table
---@return table # a new table
function _M.attributes(flat)
  local own_field, attrs = _M.own_field, {}
  for k, v in pairs(flat) do
    if not own_field(k) then attrs[k] = v end
  end
  return attrs
end

--- The table of an idiomatic module (`client.<name>`) and the metatable of its objects. The
-- table gets `new(client)`, which binds the module to a client (raising unless it is a
-- table); the module adds its methods, which check `self` against the metatable
-- (`klaviyo.validate.self`).
---@param name string the module's name in messages, e.g. "images" for klaviyo.images
---@return table module
---@return table mt the metatable of the objects `new` returns
function _M.methods(name)
  local module = {}
  local mt = { __index = module }
  module.new = function(client)
    if type(client) ~= "table" then error("klaviyo." .. name .. ".new: expected a client", 2) end
    return setmetatable({ client = client }, mt)
  end
  return module, mt
end

--- A JSON:API resource identifier `{type=, id=}` (for relationship bodies).
---@param rtype string the resource type
---@param id string the resource id
---@return {type: string, id: string}
function _M.ref(rtype, id) return { type = rtype, id = id } end

return _M
