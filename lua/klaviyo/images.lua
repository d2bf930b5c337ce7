--- Images: upload from a file or bytes (a multipart form), read, list.
--
--    local img = client.images:upload { path = "banner.png", name = "Banner", hidden = true }
--    local img = client.images:upload { bytes = data, content_type = "image/png" }
--    for img, err in client.images:each() do print(img.id, img.name, img.image_url) end
-- A file that is missing, unreadable, empty, over Klaviyo's 5 MB limit or not jpeg, png or
-- gif gives nil, err (kind "refused", parameter "file") and nothing is sent.
-- @module klaviyo.images
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"

local error = error

-- The module's functions, and the methods of the object `new(client)` returns.
---@class klaviyo.images
local _M, mt = R.methods("images")

local UPLOAD = V.set({ "path", "bytes", "filename", "content_type", "name", "hidden" })

--- Upload an image (`upload_image_from_file`).
---@param u table `path` (the type from its extension) or `bytes` (with `content_type` or a
-- `filename` ending in .jpg, .png or .gif); optional `name` (Klaviyo defaults to the file
-- name) and `hidden` (true: not shown in the asset library)
---@return table # flat image (`id`, `name`, `image_url`, `format`, `size`, `hidden`), or nil, err
function _M:upload(u)
  V.self(self, mt, "images:upload")
  V.table_arg(u, UPLOAD, "images:upload", 1)
  if (u.path == nil) == (u.bytes == nil) then
    error("images:upload: give exactly one of path and bytes", 2)
  end
  local file = u.path
  if file == nil then file = { bytes = u.bytes, filename = u.filename, content_type = u.content_type }
  elseif u.filename ~= nil or u.content_type ~= nil then
    error("images:upload: filename and content_type go with bytes (a path names its own)", 2)
  end
  return R.one("upload_image_from_file", self.client:call("upload_image_from_file",
    { file = file, name = u.name, hidden = u.hidden }))
end

--- Read an image (`get_image`).
---@param id string
---@return table # flat image, or nil, err
function _M:get(id)
  V.self(self, mt, "images:get")
  V.id(id, "images:get", "image")
  return R.one("get_image", self.client:call("get_image", { id = id }))
end

--- Iterate over images (`get_images`).
---@param q table? `filter` (id, format, name, updated_at), `sort`
---@return function # iterator of flat images; `false, err` on a failure
function _M:each(q)
  V.self(self, mt, "images:each")
  q = V.table_arg(q or {}, V.set({ "filter", "sort" }), "images:each", 1)
  return R.flat_iter(self.client:paginate("get_images", { filter = q.filter, sort = q.sort }))
end

return _M
