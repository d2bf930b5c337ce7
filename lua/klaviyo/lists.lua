--- Lists: create, read, rename, delete, members, add and remove profiles.
--
--    local lists = client.lists
--    local vip = assert(lists:create{ name = "VIP" })
--    assert(lists:add(vip.id, profile_ids))          -- any number: sent 1000 at a time
--    for p, err in lists:members(vip.id) do print(p.email) end
--
-- Adding a profile to a list does not subscribe it (see `klaviyo.subscriptions`).
-- @module klaviyo.lists
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"
local G = require "klaviyo.groups"

local type, error = type, error

-- The module's functions, and the methods of the object `new(client)` returns.
---@class klaviyo.lists
local _M, mt = R.methods("lists")

local OPT_IN = V.set({ "double_opt_in", "single_opt_in" })

local function attributes(t, fname)
  V.known(t, V.set({ "name", "opt_in_process" }), fname, 4)
  if t.opt_in_process ~= nil and not OPT_IN[t.opt_in_process] then
    error(fname .. ": opt_in_process must be \"single_opt_in\" or \"double_opt_in\"", 3)
  end
  return { name = t.name, opt_in_process = t.opt_in_process }
end

--- Create a list (`create_list`).
---@param t table `name` (required), `opt_in_process` ("single_opt_in" | "double_opt_in")
---@return table # the list (flat: `id`, `name`, `opt_in_process`, `created`, ...), or nil, err
function _M:create(t)
  V.self(self, mt, "lists:create")
  V.argcheck(type(t) == "table", "lists:create", 1, "table", t)
  local attrs = attributes(t, "lists:create")
  if type(attrs.name) ~= "string" or attrs.name == "" then
    return nil, V.refuse("create_list", "a list needs a name", "/name")
  end
  local size, msg, ptr = V.value(attrs, nil, "")
  if not size then return nil, V.refuse("create_list", msg, ptr) end
  return R.one("create_list", self.client:call("create_list",
    { body = { data = { type = "list", attributes = attrs } } }))
end

--- Read a list (`get_list`).
---@param id string
---@param opts table? `profile_count` (true: add the member count, a slow read at Klaviyo)
---@return table # flat list, or nil, err
function _M:get(id, opts)
  V.self(self, mt, "lists:get")
  V.id(id, "lists:get", "list")
  opts = V.table_arg(opts or {}, V.set({ "profile_count" }), "lists:get", 2)
  return R.one("get_list", self.client:call("get_list", { id = id,
    ["additional-fields[list]"] = opts.profile_count and { "profile_count" } or nil }))
end

--- Rename a list or change its opt-in process (`update_list`).
---@param id string
---@param t table `name`, `opt_in_process`
---@return table # flat list, or nil, err
function _M:update(id, t)
  V.self(self, mt, "lists:update")
  V.id(id, "lists:update", "list")
  V.argcheck(type(t) == "table", "lists:update", 2, "table", t)
  local attrs = attributes(t, "lists:update")
  if attrs.name == "" then return nil, V.refuse("update_list", "a list name cannot be empty") end
  local size, msg, ptr = V.value(attrs, nil, "")
  if not size then return nil, V.refuse("update_list", msg, ptr) end
  return R.one("update_list", self.client:call("update_list",
    { id = id, body = { data = { type = "list", id = id, attributes = attrs } } }))
end

--- Delete a list (`delete_list`); its profiles stay.
---@param id string
---@return boolean # true, or nil, err
function _M:delete(id)
  V.self(self, mt, "lists:delete")
  V.id(id, "lists:delete", "list")
  local ok, err = self.client:call("delete_list", { id = id })
  if not ok then return nil, err end
  return true
end

--- Iterate over lists (`get_lists`).
---@param q table? `name` (exact name), `filter` (string or `klaviyo.filter`), `sort`
---@return function # iterator of flat lists; `false, err` once on failure
function _M:each(q)
  V.self(self, mt, "lists:each")
  return R.flat_iter(self.client:paginate("get_lists", G.each_query(q, "lists:each")))
end

--- Iterate over a list's members (`get_profiles_for_list`), following every page.
---@param id string list id
---@param q table? `page_size` (1..100, default 100), `fields` (profile attributes),
--   `subscriptions` (true: add consent state), `filter`, `sort` ("joined_group_at", ...)
---@return function # iterator of flat profiles (with `joined_group_at`); `false, err` once
function _M:members(id, q)
  V.self(self, mt, "lists:members")
  V.id(id, "lists:members", "list")
  return R.flat_iter(self.client:paginate("get_profiles_for_list",
    G.members_query(id, q, "lists:members")))
end

-- add/remove: the same body, sent in chunks of at most 1000 ids. Its misuse errors name the
-- method's caller, so the methods call it as a statement, never as a tail call (which would
-- take the method's own level off the stack on some interpreters and not on others).
local function membership(self, op, id, ids, fname)
  V.id(id, fname, "list", 1, 4)
  V.argcheck(type(ids) == "table", fname, 2, "array of profile ids", ids, 4)
  local n, hmsg, hptr = V.dense(ids, "")
  if not n then return nil, V.refuse(op, hmsg, hptr) end
  local refs = {}
  for i = 1, n do
    if type(ids[i]) ~= "string" or ids[i] == "" then
      return nil, V.refuse(op, "profile ids must be non-empty strings", "/" .. (i - 1))
    end
    refs[i] = { type = "profile", id = ids[i] }
  end
  local chunks = V.chunk(refs, V.LIMITS.list_members)
  local done = 0
  for j = 1, #chunks do
    local ok, err = self.client:call(op, { id = id, body = { data = chunks[j] } })
    if not ok then return nil, err, done end
    done = done + #chunks[j]
  end
  return done
end

--- Add profiles to a list (`add_profiles_to_list`), 1000 per request. Consent is unchanged.
---@param id string list id
---@param ids table array of profile ids (any length)
---@return number # how many ids were sent, or nil, err, how many were added before the failure
function _M:add(id, ids)
  V.self(self, mt, "lists:add")
  local n, err, done = membership(self, "add_profiles_to_list", id, ids, "lists:add")
  return n, err, done
end

--- Remove profiles from a list (`remove_profiles_from_list`), 1000 per request.
---@param id string list id
---@param ids table array of profile ids
---@return number # how many ids were sent, or nil, err, how many were removed before
function _M:remove(id, ids)
  V.self(self, mt, "lists:remove")
  local n, err, done = membership(self, "remove_profiles_from_list", id, ids, "lists:remove")
  return n, err, done
end

--- Flows that start when a profile joins this list (`get_flows_triggered_by_list`).
---@param id string list id
---@return table # array of flat flows, or nil, err
function _M:flows(id)
  V.self(self, mt, "lists:flows")
  V.id(id, "lists:flows", "list")
  local op = "get_flows_triggered_by_list"
  return R.many(op, self.client:call(op, { id = id }))
end

return _M
