--- klaviyo.paginate: iterators over Klaviyo's cursor pagination. Each page's `links.next` holds
-- the full URL of the next page; it is handed to the core as `url`, which refuses a URL whose
-- scheme, host or port differ from the client's base URL (so a tampered link cannot send the
-- key elsewhere), and checks the key/path rule on its path as a lenient server would read it
-- (so `//client/...`, `/%63lient/...` or `/api/../client/...` cannot send a private key to a
-- client endpoint): such a page is yielded as `false, err` with err.kind "refused". A link
-- holding a NUL byte is refused here, before the core, which reads a string up to its first NUL.
-- A link to a page already read (a loop) and a page whose data is not a list of resources are
-- yielded as `false, err` with err.kind "decode".
--
--   for doc, err in client:pages(op, params) do ... end      -- one decoded document per page
--   for item, err in client:paginate(op, params) do ... end  -- every resource of every page
--
-- Failure follows Lua's generic-for rules: a first value of nil ends a loop before its body
-- runs, so a failing page is yielded as `false, err` (once), and the next step ends the loop.
-- Loops therefore read `if not item then ... err ... end`.
-- @module klaviyo.paginate
local type, next, find = type, next, string.find
local errors = require "klaviyo.errors"
local R = require "klaviyo.resource"

local _M = {}

--- send(req, op_id) -> doc or nil, err (the client's send path, with OAuth refresh).
-- first: the request built from the caller's params. Returns the iterator of pages.
---@param send fun(req: table, op_id: string): table|nil, klaviyo.Error?
---@param first table the first request
---@param op_id string
---@return fun(): table|false|nil, klaviyo.Error? pages
function _M.pages(send, first, op_id)
  local req, done, pending = first, false, nil
  local seen = {}
  return function()
    if pending then   -- the page before had a next link that cannot be followed
      local err = pending
      done, req, pending = true, nil, nil
      return false, err
    end
    if done or req == nil then return nil end
    local doc, err = send(req, op_id)
    if not doc then
      done = true
      return false, err
    end
    local links = type(doc) == "table" and doc.links
    local nxt = type(links) == "table" and links.next or nil
    if type(nxt) == "string" and find(nxt, "\0", 1, true) then
      pending = errors.new("refused", op_id, "links.next holds a NUL byte",
        { code = "invalid_url", title = "Refused locally, nothing sent" })
    elseif type(nxt) == "string" and seen[nxt] then
      -- a server repeating a link would loop forever: what it answers is no pagination
      pending = R.shape_error(op_id, "links.next repeats a page already read")
    elseif type(nxt) == "string" and nxt ~= "" then
      seen[nxt] = true
      req = { operation = op_id, method = "GET", url = nxt, auth = first.auth,
              revision = first.revision, headers = first.headers }
    else   -- no link (or one that is no string): the last page
      req = nil
    end
    return doc
  end
end

--- An iterator whose one step is `false, err` (a request refused before sending), then the end.
---@param err klaviyo.Error
---@return fun(): false|nil, klaviyo.Error? iterator
function _M.failure(err)
  local done = false
  return function()
    if done then return nil end
    done = true
    return false, err
  end
end

--- Flattens pages into their resources (doc.data, a list; a single resource object counts as
-- one item). A page whose data is neither (or holds an item that is no resource, see
-- `klaviyo.resource.problem`) is yielded as `false, err` (kind "decode"), and ends the loop.
---@param pages fun(): table|false|nil, klaviyo.Error? an iterator from pages
---@param op_id string the operation, for the error
---@return fun(): table|false|nil, klaviyo.Error? items
function _M.items(pages, op_id)
  local data, i, n, done = nil, 0, 0, false
  return function()
    while true do
      if i < n then
        i = i + 1
        return data[i]
      end
      if done then return nil end
      local doc, err = pages()
      if doc == nil then return nil end
      if doc == false then return false, err end
      local d = type(doc) == "table" and doc.data
      local msg
      if type(d) == "table" and d[1] == nil and next(d) ~= nil then
        d = { d }   -- a single resource, not a list
        msg = R.problem(d[1], "data")
      else
        d, msg = R.data_list(doc)
      end
      if msg then
        done = true
        return false, R.shape_error(op_id, msg)
      end
      data, i, n = d, 0, #d
    end
  end
end

return _M
