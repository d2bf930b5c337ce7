-- klaviyo.multipart: the multipart/form-data body of an operation whose spec takes one
-- (upload_image_from_file): the form fields checked against the spec's names, the file read
-- with a size bound, and the parts joined under a random boundary that occurs in none of them.
--
-- form(op_id, params) -> body, content_type | nil, msg (a programmer error: the caller raises
-- it) | nil, nil, refusal (a file that cannot be sent: missing, unreadable, empty, too large,
-- or not an image type Klaviyo takes; nothing is sent).
local type, tostring, pairs = type, tostring, pairs
local format, find, match, gsub, byte = string.format, string.find, string.match, string.gsub, string.byte
local concat, lower = table.concat, string.lower
local open = io.open

local core = require "klaviyo.core"
local errors = require "klaviyo.errors"

local _M = {}

-- Klaviyo's image limit (ImageUploadQuery.file: "Maximum image size: 5MB").
_M.MAX_FILE = 5 * 1024 * 1024

-- The formats the spec lists (jpeg, png, gif), by extension and by content type.
local TYPES = { jpg = "image/jpeg", jpeg = "image/jpeg", png = "image/png", gif = "image/gif" }
local ALLOWED = { ["image/jpeg"] = true, ["image/png"] = true, ["image/gif"] = true }
local EXT_OF = { ["image/jpeg"] = "jpg", ["image/png"] = "png", ["image/gif"] = "gif" }

-- The form fields of each multipart operation besides the file: name -> Lua type.
local FIELDS = { upload_image_from_file = { name = "string", hidden = "boolean" } }

-- The parameter names an operation's form takes (for request.lua's check of unknown names).
function _M.field_names(op_id)
  local f = FIELDS[op_id]
  if not f then return nil end
  local out = { file = true }
  for k in pairs(f) do out[k] = true end
  return out
end

local function msg(op_id, name, text, ...)
  return format("klaviyo: %s: parameter %s: " .. text, op_id, name, ...)
end

local function refused(op_id, name, text, ...)
  return errors.wrap({ kind = "refused", operation = op_id, parameter = name, detail = format(text, ...) })
end

-- The content type of a file name by its extension, or nil.
local function type_of(filename)
  local ext = match(filename, "%.([%w]+)$")
  return ext and TYPES[lower(ext)]
end

-- Reads path, at most one byte past MAX_FILE (so a huge file is never read whole):
-- data | nil, refusal.
local function read_file(op_id, path)
  local f, oerr = open(path, "rb")
  if not f then return nil, refused(op_id, "file", "cannot open %s", tostring(oerr)) end
  local data, rerr = f:read(_M.MAX_FILE + 1)
  f:close()
  if data == nil and rerr then
    return nil, refused(op_id, "file", "cannot read %s: %s", path, tostring(rerr))
  end
  data = data or ""
  if #data > _M.MAX_FILE then
    return nil, refused(op_id, "file", "%s is larger than Klaviyo's image limit of %d bytes (5 MB)",
      path, _M.MAX_FILE)
  end
  return data
end

-- The file part: bytes, filename, content type | nil, msg | nil, nil, refusal.
local function file_part(op_id, file)
  local tf = type(file)
  local bytes, filename, ctype
  if tf == "string" then
    if file == "" then return nil, msg(op_id, "file", "must not be empty") end
    filename = match(file, "([^/\\]+)$") or file
    ctype = type_of(filename)
    if not ctype then
      return nil, nil, refused(op_id, "file", "%s: the extension is not .jpg, .jpeg, .png or .gif", filename)
    end
    local data, refusal = read_file(op_id, file)
    if not data then return nil, nil, refusal end
    bytes = data
  elseif tf == "table" then
    bytes, filename, ctype = file.bytes, file.filename, file.content_type
    for k in pairs(file) do
      if k ~= "bytes" and k ~= "filename" and k ~= "content_type" then
        return nil, msg(op_id, "file", "unknown field %s (takes bytes, filename, content_type)", tostring(k))
      end
    end
    if type(bytes) ~= "string" then
      return nil, msg(op_id, "file.bytes", "expected a string, got %s", type(bytes))
    end
    if filename ~= nil and (type(filename) ~= "string" or filename == "") then
      return nil, msg(op_id, "file.filename", "expected a non-empty string")
    end
    if ctype ~= nil and type(ctype) ~= "string" then
      return nil, msg(op_id, "file.content_type", "expected a string, got %s", type(ctype))
    end
    ctype = ctype and lower(ctype) or (filename and type_of(filename))
    if not ctype then
      return nil, nil, refused(op_id, "file", "give content_type or a filename ending in .jpg, .png or .gif")
    end
    if #bytes > _M.MAX_FILE then
      return nil, nil, refused(op_id, "file",
        "%d bytes, larger than Klaviyo's image limit of %d bytes (5 MB)", #bytes, _M.MAX_FILE)
    end
    filename = filename or ("image." .. (EXT_OF[ctype] or "bin"))
  elseif file == nil then
    return nil, msg(op_id, "file", "is required")
  else
    return nil, msg(op_id, "file", "expected a path or {bytes =, filename =, content_type =}, got %s", tf)
  end
  if not ALLOWED[ctype] then
    return nil, nil, refused(op_id, "file",
      "content type %s is not one Klaviyo takes (image/jpeg, image/png, image/gif)", ctype)
  end
  if bytes == "" then return nil, nil, refused(op_id, "file", "%s is empty", filename) end
  return bytes, filename, ctype
end

-- A file name as a quoted-string of Content-Disposition: quote, backslash and control
-- characters percent-encoded (as browsers write them), so the header line stays one line.
local function quoted(s)
  return '"' .. gsub(s, '[%c"\\]', function(c) return format("%%%02X", byte(c)) end) .. '"'
end

local function hex(s)
  return (gsub(s, ".", function(c) return format("%02x", byte(c)) end))
end

-- A boundary that occurs in none of the parts' bytes (128 random bits; drawn again on a hit).
local function boundary_for(parts)
  while true do
    local b = "klaviyo-lua-" .. hex(core.random_bytes(16))
    local hit = false
    for i = 1, #parts do
      if find(parts[i], b, 1, true) then hit = true break end
    end
    if not hit then return b end
  end
end

function _M.form(op_id, params)
  local fields = FIELDS[op_id]
  if not fields then return nil, format("klaviyo: %s: not a multipart operation", tostring(op_id)) end
  for name, want in pairs(fields) do
    local v = params[name]
    if v ~= nil and type(v) ~= want then
      return nil, msg(op_id, name, "expected a %s, got %s", want, type(v))
    end
  end
  local bytes, filename, ctype = file_part(op_id, params.file)
  if bytes == nil then return nil, filename, ctype end
  -- field order as the spec lists them: file, name, hidden
  local heads, contents = {}, {}
  heads[1] = format('Content-Disposition: form-data; name="file"; filename=%s\r\nContent-Type: %s',
    quoted(filename), ctype)
  contents[1] = bytes
  if params.name ~= nil then
    heads[#heads + 1], contents[#heads + 1] = 'Content-Disposition: form-data; name="name"', params.name
  end
  if params.hidden ~= nil then
    heads[#heads + 1] = 'Content-Disposition: form-data; name="hidden"'
    contents[#heads] = params.hidden and "true" or "false"
  end
  local b = boundary_for(contents)
  local out = {}
  for i = 1, #heads do
    out[#out + 1] = "--" .. b .. "\r\n" .. heads[i] .. "\r\n\r\n"
    out[#out + 1] = contents[i]
    out[#out + 1] = "\r\n"
  end
  out[#out + 1] = "--" .. b .. "--\r\n"
  return concat(out), "multipart/form-data; boundary=" .. b
end

return _M
