--- Segments: read them and their members (Klaviyo keeps their membership up to date).
--
--    for s, err in client.segments:each() do print(s.id, s.name) end
--    for p, err in client.segments:members(segment_id) do print(p.email) end
-- @module klaviyo.segments
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"
local F = require "klaviyo.filter"

local type, setmetatable, error, format = type, setmetatable, error, string.format

local _M = {}
local mt = { __index = _M }

--- Bind the module to a client.
-- @tparam table client a client from `klaviyo.new`
-- @treturn table the segments object
function _M.new(client)
  if type(client) ~= "table" then error("klaviyo.segments.new: expected a client", 2) end
  return setmetatable({ client = client }, mt)
end

local function check_id(id, fname)
  if type(id) ~= "string" or id == "" then
    error(format("bad argument #1 to '%s' (segment id string expected, got %s)", fname,
      type(id)), 3)
  end
end

--- Iterate over segments (`get_segments`).
-- @tparam[opt] table q `name` (exact), `filter` (string or `klaviyo.filter`), `sort`
-- @treturn function iterator of flat segments; `false, err` once on failure
function _M:each(q)
  V.self(self, mt, "segments:each")
  q = q or {}
  V.argcheck(type(q) == "table", "segments:each", 1, "table", q)
  V.known(q, V.set({ "name", "filter", "sort" }), "segments:each")
  local filter = q.filter
  if q.name ~= nil then
    if filter then error("segments:each: give name or filter, not both", 2) end
    filter = F.equals("name", q.name)
  end
  return R.flat_iter(self.client:paginate("get_segments", { filter = filter, sort = q.sort }))
end

--- Read a segment (`get_segment`).
-- @tparam string id
-- @treturn table flat segment, or nil, err
function _M:get(id)
  V.self(self, mt, "segments:get")
  check_id(id, "segments:get")
  local doc, err = self.client:call("get_segment", { id = id })
  if not doc then return nil, err end
  return R.from_document(doc)
end

--- Iterate over a segment's members (`get_profiles_for_segment`), every page.
-- @tparam string id segment id
-- @tparam[opt] table q `page_size` (1..100, default 100), `fields`, `subscriptions`, `filter`
-- @treturn function iterator of flat profiles; `false, err` once on failure
function _M:members(id, q)
  V.self(self, mt, "segments:members")
  check_id(id, "segments:members")
  q = q or {}
  V.argcheck(type(q) == "table", "segments:members", 2, "table", q)
  V.known(q, V.set({ "page_size", "fields", "subscriptions", "filter", "sort" }),
    "segments:members")
  return R.flat_iter(self.client:paginate("get_profiles_for_segment", {
    id = id, ["page[size]"] = q.page_size or 100, ["fields[profile]"] = q.fields,
    ["additional-fields[profile]"] = q.subscriptions and { "subscriptions" } or nil,
    filter = q.filter, sort = q.sort,
  }))
end

return _M
