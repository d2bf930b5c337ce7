-- Images: upload_image_from_file (a multipart form: file, name, hidden), upload_image_from_url
-- (a data: URI or an http(s) URL), get_image, get_images (filter on id, format, name,
-- updated_at, size, hidden; sort) and update_image (name, hidden). Ids are numbers as text, as Klaviyo's
-- are; image_url is a made-up CDN address (the bytes are not kept: nothing serves them).
local state = require "emulator.state"
local jsonapi = require "emulator.jsonapi"
local collection = require "emulator.collection"

local format, tostring, type, lower, match = string.format, tostring, type, string.lower, string.match
local ipairs, pairs, tonumber = ipairs, pairs, tonumber

local M = {}

-- Klaviyo's formats and image limit (ImageUploadQuery.file: jpeg, png, gif; 5MB).
local FORMATS = { ["image/jpeg"] = "jpeg", ["image/png"] = "png", ["image/gif"] = "gif" }
local BY_EXT = { jpg = "jpeg", jpeg = "jpeg", png = "png", gif = "gif" }
M.MAX_IMAGE = 5 * 1024 * 1024

local function images_of(acct)
  local s = acct.images
  if not s then
    s = { by_id = {}, order = {}, names = {}, next_id = 1 }
    acct.images = s
  end
  return s
end

local function resource(req, img, fields)
  local a = { name = img.name, image_url = img.image_url, format = img.format, size = img.size,
              hidden = img.hidden, updated_at = state.iso(img.updated) }
  return jsonapi.resource("image", img.id, jsonapi.sparse(a, fields), nil,
    req.base_url .. "/api/images/" .. img.id .. "/")
end

-- A name not yet taken: Klaviyo adds a suffix when the name matches an existing image.
local function unique_name(s, name)
  if not s.names[name] then return name end
  local base, ext = match(name, "^(.*)(%.[%w]+)$")
  base, ext = base or name, ext or ""
  local i = 1
  while s.names[format("%s-%d%s", base, i, ext)] do i = i + 1 end
  return format("%s-%d%s", base, i, ext)
end

local function store(req, name, fmt, size, hidden)
  local s = images_of(req.account)
  local fields, st, doc = jsonapi.fields(req, "image")
  if fields == nil then return st, doc end
  local id = tostring(s.next_id)
  s.next_id = s.next_id + 1
  name = unique_name(s, name)
  local img = { id = id, name = name, format = fmt, size = size, hidden = hidden,
                updated = state.now(),
                image_url = format("https://d3k81ch9hvuctc.cloudfront.net/company/%s/images/%s.%s",
                  req.account.public_key or req.account.id, id, fmt == "jpeg" and "jpg" or fmt) }
  s.by_id[id] = img
  s.order[#s.order + 1] = id
  s.names[name] = true
  return 201, { data = resource(req, img, fields),
                links = { self = req.base_url .. "/api/images/" .. id .. "/" } }
end

-- A form field's text as a boolean ("true"/"false", as form encoders write it), or nil, detail.
local function form_boolean(field, name)
  if field == nil then return false end
  local v = lower(field.value)
  if v == "true" or v == "1" then return true end
  if v == "false" or v == "0" or v == "" then return false end
  return nil, format("'%s' is not a valid boolean for the form field '%s'.", field.value, name)
end

M.upload_image_from_file = function(req)
  local form = req.body   -- the form fields, as emulator.multipart read them
  local file = form.file
  if not file or not file.filename then
    return jsonapi.invalid("The form field 'file' must be a file.", { pointer = "/file" })
  end
  for name in pairs(form) do
    if name ~= "file" and name ~= "name" and name ~= "hidden" then
      return jsonapi.invalid(format("'%s' is not a valid form field.", name), { pointer = "/" .. name })
    end
  end
  local fmt = FORMATS[file.content_type or ""]
    or (file.content_type == nil or file.content_type == "application/octet-stream")
      and BY_EXT[lower(match(file.filename, "%.(%w+)$") or "")]
  if not fmt then
    return jsonapi.invalid("Unsupported image format. Supported image formats: jpeg,png,gif.",
      { pointer = "/file" })
  end
  local size = #file.value
  if size == 0 then return jsonapi.invalid("The uploaded file is empty.", { pointer = "/file" }) end
  if size > M.MAX_IMAGE then
    return jsonapi.invalid("The image is larger than the maximum image size (5MB).", { pointer = "/file" })
  end
  local hidden, herr = form_boolean(form.hidden, "hidden")
  if hidden == nil then return jsonapi.invalid(herr, { pointer = "/hidden" }) end
  local name = form.name and form.name.value or file.filename
  if name == "" then name = file.filename end
  return store(req, name, fmt, size, hidden)
end

M.upload_image_from_url = function(req)
  local a = req.body.data.attributes
  if type(a) ~= "table" or type(a.import_from_url) ~= "string" or a.import_from_url == "" then
    return jsonapi.invalid("'import_from_url' is required.", { pointer = "/data/attributes/import_from_url" })
  end
  local url = a.import_from_url
  local fmt = BY_EXT[lower(match(url, "%.(%w+)$") or "")]
  local mime = match(url, "^data:([%w/+.-]+)[;,]")
  if mime then fmt = FORMATS[lower(mime)] end
  if not fmt or not (mime or match(url, "^https?://[^/]+/")) then
    return jsonapi.invalid("The URL is not a data URI or an http(s) URL of a jpeg, png or gif image.",
      { pointer = "/data/attributes/import_from_url" })
  end
  if a.hidden ~= nil and type(a.hidden) ~= "boolean" then
    return jsonapi.invalid("'hidden' must be a boolean.", { pointer = "/data/attributes/hidden" })
  end
  if a.name ~= nil and type(a.name) ~= "string" then
    return jsonapi.invalid("'name' must be a string.", { pointer = "/data/attributes/name" })
  end
  local name = a.name or match(url, "([^/]+)$")
  if mime then name = a.name or ("image." .. fmt) end
  return store(req, name, fmt, #url, a.hidden == true)
end

M.get_image = function(req)
  return jsonapi.get_one(req, images_of(req.account).by_id, "Image", "image",
    function(img, fields) return resource(req, img, fields) end)
end

M.update_image = function(req)
  local s = images_of(req.account)
  local img, st, doc = jsonapi.lookup_update(req, s.by_id, "Image")
  if not img then return st, doc end
  local d = req.body.data
  local a = jsonapi.attributes(d)
  if a.name ~= nil and (type(a.name) ~= "string" or a.name == "") then
    return jsonapi.invalid("'name' must be a non-empty string.", { pointer = "/data/attributes/name" })
  end
  if a.hidden ~= nil and type(a.hidden) ~= "boolean" then
    return jsonapi.invalid("'hidden' must be a boolean.", { pointer = "/data/attributes/hidden" })
  end
  if a.name and a.name ~= img.name then
    s.names[img.name] = nil
    img.name = unique_name(s, a.name)
    s.names[img.name] = true
  end
  if a.hidden ~= nil then img.hidden = a.hidden end
  img.updated = state.now()
  return jsonapi.single(req, resource(req, img, false))
end

local IMAGE_FILTER = {
  id = { type = "string" },
  format = { type = "string" },
  name = { type = "string" },
  updated_at = { type = "datetime",
                 get = function(img) return img.updated end },
  size = { type = "number" },
  hidden = { type = "boolean" },
  ["and"] = true,
}

local SORT = {
  format = function(i) return i.format end, id = function(i) return tonumber(i.id) end,
  name = function(i) return i.name end, size = function(i) return i.size end,
  updated_at = function(i) return i.updated end,
}

M.get_images = function(req)
  local s = images_of(req.account)
  local fields, st, doc = jsonapi.fields(req, "image")
  if fields == nil then return st, doc end
  local pred, fst, fdoc = collection.filter(req, IMAGE_FILTER)
  if pred == nil then return fst, fdoc end
  local items = {}
  for _, id in ipairs(s.order) do items[#items + 1] = s.by_id[id] end
  items = collection.select(items, pred)
  local ok, sst, sdoc = collection.sort(req, items, SORT, nil, function(i) return tonumber(i.id) end)
  if not ok then return sst, sdoc end
  return jsonapi.page(req, items, function(img) return resource(req, img, fields) end)
end

return M
