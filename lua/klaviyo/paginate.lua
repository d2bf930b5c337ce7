--- klaviyo.paginate: iterators over Klaviyo's cursor pagination. Each page's `links.next` holds
-- the full URL of the next page; it is handed to the core as `url`, which refuses a URL whose
-- scheme, host or port differ from the client's base URL (so a tampered link cannot send the
-- key elsewhere), and checks the key/path rule on its path as a lenient server would read it
-- (so `//client/...`, `/%63lient/...` or `/api/../client/...` cannot send a private key to a
-- client endpoint): such a page is yielded as `false, err` with err.kind "refused". A link
-- holding a NUL byte is refused here, before the core, which reads a string up to its first NUL.
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

local _M = {}

--- send(req, op_id) -> doc or nil, err (the client's send path, with OAuth refresh).
-- first: the request built from the caller's params. Returns the iterator of pages.
---@param send fun(req: table, op_id: string): table|nil, klaviyo.Error?
---@param first table the first request
---@param op_id string
---@return fun(): table|false|nil, klaviyo.Error? pages
function _M.pages(send, first, op_id)
  local req, done, refused = first, false, nil
  local seen = {}
  return function()
    if refused then
      done, req, refused = true, nil, nil
      return false, errors.new("refused", op_id, "links.next holds a NUL byte",
        { code = "invalid_url", title = "Refused locally, nothing sent" })
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
      refused = true
    elseif type(nxt) == "string" and nxt ~= "" and not seen[nxt] then
      -- A server repeating a link would loop forever; stop at the first repeat.
      seen[nxt] = true
      req = { operation = op_id, method = "GET", url = nxt, auth = first.auth,
              revision = first.revision, headers = first.headers }
    else
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
-- one item).
---@param pages fun(): table|false|nil, klaviyo.Error? an iterator from pages
---@return fun(): table|false|nil, klaviyo.Error? items
function _M.items(pages)
  local data, i, n = nil, 0, 0
  return function()
    while true do
      if i < n then
        i = i + 1
        return data[i]
      end
      local doc, err = pages()
      if doc == nil then return nil end
      if doc == false then return false, err end
      local d = type(doc) == "table" and doc.data
      if type(d) == "table" and d[1] == nil and next(d) ~= nil then
        data, i, n = { d }, 0, 1   -- a single resource, not a list
      elseif type(d) == "table" then
        data, i, n = d, 0, #d
      else
        data, i, n = nil, 0, 0
      end
    end
  end
end

return _M
