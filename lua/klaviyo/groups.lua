--- What `klaviyo.lists` and `klaviyo.segments` share: the queries of `each` (by name or
-- filter) and `members`. Errors name the method the user called and point at the user's
-- line, as if the method had raised them itself.
-- @module klaviyo.groups
local V = require "klaviyo.validate"
local F = require "klaviyo.filter"

local error = error

local _M = {}

local EACH_OPTIONS = V.set({ "name", "filter", "sort" })
local MEMBER_OPTIONS = V.set({ "page_size", "fields", "subscriptions", "filter", "sort" })

--- The paginate parameters of `each`: `q.name` (exact) or `q.filter`, and `q.sort`.
-- @tparam[opt] table q
-- @tparam string fname e.g. "lists:each"
-- @treturn table
function _M.each_query(q, fname)
  q = V.table_arg(q or {}, EACH_OPTIONS, fname, 1, 4)
  local filter = q.filter
  if q.name ~= nil then
    if filter then error(fname .. ": give name or filter, not both", 3) end
    filter = F.equals("name", q.name)
  end
  return { filter = filter, sort = q.sort }
end

--- The paginate parameters of `members(id, q)`: every page of up to `q.page_size` (default
-- 100) profiles, `q.fields`, `q.subscriptions` (true: add consent state), `q.filter`, `q.sort`.
-- @tparam string id group id (already checked)
-- @tparam[opt] table q
-- @tparam string fname e.g. "lists:members"
-- @treturn table
function _M.members_query(id, q, fname)
  q = V.table_arg(q or {}, MEMBER_OPTIONS, fname, 2, 4)
  return {
    id = id, ["page[size]"] = q.page_size or 100, ["fields[profile]"] = q.fields,
    ["additional-fields[profile]"] = q.subscriptions and { "subscriptions" } or nil,
    filter = q.filter, sort = q.sort,
  }
end

return _M
