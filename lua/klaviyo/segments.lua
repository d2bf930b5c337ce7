--- Segments: read them and their members (Klaviyo keeps their membership up to date).
--
--    for s, err in client.segments:each() do print(s.id, s.name) end
--    for p, err in client.segments:members(segment_id) do print(p.email) end
-- @module klaviyo.segments
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"
local G = require "klaviyo.groups"

-- The module's functions, and the methods of the object `new(client)` returns.
---@class klaviyo.segments
local _M, mt = R.methods("segments")

--- Iterate over segments (`get_segments`).
---@param q table? `name` (exact), `filter` (string or `klaviyo.filter`), `sort`
---@return function # iterator of flat segments; `false, err` once on failure
function _M:each(q)
  V.self(self, mt, "segments:each")
  return R.flat_iter(self.client:paginate("get_segments", G.each_query(q, "segments:each")))
end

--- Read a segment (`get_segment`).
---@param id string
---@return table # flat segment, or nil, err
function _M:get(id)
  V.self(self, mt, "segments:get")
  V.id(id, "segments:get", "segment")
  return R.one("get_segment", self.client:call("get_segment", { id = id }))
end

--- Iterate over a segment's members (`get_profiles_for_segment`), every page.
---@param id string segment id
---@param q table? `page_size` (1..100, default 100), `fields`, `subscriptions`, `filter`
---@return function # iterator of flat profiles; `false, err` once on failure
function _M:members(id, q)
  V.self(self, mt, "segments:members")
  V.id(id, "segments:members", "segment")
  return R.flat_iter(self.client:paginate("get_profiles_for_segment",
    G.members_query(id, q, "segments:members")))
end

return _M
