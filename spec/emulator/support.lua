-- Shared by spec/emulator/*_spec.lua: a fresh account without rate limits and short ways to
-- make the lists, profiles and memberships the specs start from. Not a spec itself.
--   local S = require "emulator.support"
local emu = require "helpers.emulator"

local M = { emu = emu }

--- A Klaviyo API call as `acct` (helpers.emulator's api): status, headers, body, raw.
function M.api(acct, method, path, opts) return emu.api(acct, method, path, opts) end

--- A fresh account with every rate limit off: the specs create more lists, flows and
-- profiles than Klaviyo's per-day limits allow (create_list: 150/day, create_flow: 100/day).
function M.new_account()
  local acct = emu.account()
  emu.limits({ ["*"] = "off" }, acct)
  return acct
end

--- The ids of a document's `data` array, in order.
function M.ids_of(body)
  local out = {}
  for i, r in ipairs(body.data) do out[i] = r.id end
  return out
end

--- A membership body (`{data = {{type = "profile", id = ...}, ...}}`).
function M.members_body(ids)
  local data = {}
  for i, id in ipairs(ids) do data[i] = { type = "profile", id = id } end
  return { data = data }
end

--- Creates a list (201 asserted): its id and the whole answer.
function M.create_list(acct, name, opt_in)
  local st, _, body, raw = M.api(acct, "POST", "/api/lists", { body = { data = { type = "list",
    attributes = { name = name, opt_in_process = opt_in } } } })
  assert(st == 201, raw)
  return body.data.id, body
end

--- Creates a profile with an email (201 asserted): its id.
function M.create_profile(acct, email)
  local st, _, body, raw = M.api(acct, "POST", "/api/profiles", { body = { data = {
    type = "profile", attributes = { email = email } } } })
  assert(st == 201, raw)
  return body.data.id
end

--- Adds profiles to a list (add_profiles_to_list): status, headers, body, raw.
function M.add_to_list(acct, list_id, ids)
  return M.api(acct, "POST", "/api/lists/" .. list_id .. "/relationships/profiles",
    { body = M.members_body(ids) })
end

--- The member ids of a list (get_profile_ids_for_list, 200 asserted) and the answer.
function M.member_ids(acct, list_id, query)
  local st, _, body, raw = M.api(acct, "GET", "/api/lists/" .. list_id .. "/relationships/profiles",
    { query = query })
  assert(st == 200, raw)
  return M.ids_of(body), body
end

--- The member ids of a list, alone (for assert.are.same(expected, members(...))).
function M.members(acct, list_id) return (M.member_ids(acct, list_id)) end

-- Records an event of `metric` for `email` (202 asserted); `extra` sets more attributes.
function M.event(acct, metric, email, extra)
  local attrs = {properties = {}, metric = {data = {type = "metric", attributes = {name = metric}}},
    profile = {data = {type = "profile", attributes = {email = email}}}}
  for k, v in pairs(extra or {}) do attrs[k] = v end
  local st, _, _, raw = M.api(acct, "POST", "/api/events", {body = {data = {type = "event",
      attributes = attrs}}})
  assert(st == 202, raw)
end

return M
