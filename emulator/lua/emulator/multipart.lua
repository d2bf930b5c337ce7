-- A strict multipart/form-data reader (RFC 7578 over RFC 2046) for the operations whose
-- spec takes a form (upload_image_from_file). Pure: no ngx, so specs load it directly.
--
-- parse(content_type, body) -> fields | nil, detail. fields[name] = {value = bytes,
-- filename = string or nil, content_type = string or nil}. Refused: a content type without a
-- usable boundary, text before the first delimiter, a part without a Content-Disposition
-- form-data name, a field given twice, more than MAX_PARTS parts, a part's headers over
-- MAX_HEADER bytes, a missing close delimiter, anything but a line end after it.
local find, sub, match, lower, format = string.find, string.sub, string.match, string.lower, string.format
local gsub = string.gsub

local M = {}

M.MAX_PARTS = 16
M.MAX_HEADER = 2048

-- The boundary parameter of a multipart/form-data content type, or nil, detail.
local function boundary_of(ctype)
  if type(ctype) ~= "string" then return nil, "Missing Content-Type." end
  local mt, params = match(ctype, "^%s*([^;%s]+)%s*(.*)$")
  if not mt or lower(mt) ~= "multipart/form-data" then
    return nil, format("Unsupported media type '%s'.", ctype)
  end
  local b = match(params, '[;%s][Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]="([^"]*)"')
         or match(";" .. params, ';%s*[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]=([^;%s]+)')
  if not b then return nil, "The multipart Content-Type has no boundary." end
  -- RFC 2046: 1 to 70 characters of bchars, not ending in a space
  if #b < 1 or #b > 70 or find(b, "[^%w'()+_,%-./:=? ]") or sub(b, -1) == " " then
    return nil, "The multipart boundary is not a valid boundary."
  end
  return b
end

-- The name and filename of a Content-Disposition value, or nil.
local function disposition(v)
  if lower(match(v, "^%s*([^;%s]+)") or "") ~= "form-data" then return nil end
  local name = match(v, ';%s*name="([^"]*)"')
  local filename = match(v, ';%s*filename="([^"]*)"')
  if not name or name == "" then return nil end
  -- browsers percent-encode quote, CR and LF in a quoted name
  if filename then
    filename = gsub(filename, "%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  return name, filename
end

-- Reads one part's header block (up to the empty line); name, filename, content_type or nil, detail.
local function part_headers(block)
  local name, filename, ctype
  for line in (block .. "\r\n"):gmatch("(.-)\r\n") do
    local k, v = match(line, "^([!#$%%&'*+%-.^_`|~%w]+):%s*(.-)%s*$")
    if not k then return nil, "A multipart part has a malformed header line." end
    k = lower(k)
    if k == "content-disposition" then
      if name then return nil, "A multipart part has two Content-Disposition headers." end
      name, filename = disposition(v)
      if not name then return nil, "A multipart part's Content-Disposition is not form-data with a name." end
    elseif k == "content-type" then
      ctype = lower(v)
    end
  end
  if not name then return nil, "A multipart part has no Content-Disposition header." end
  return name, filename, ctype
end

function M.parse(ctype, body)
  local b, berr = boundary_of(ctype)
  if not b then return nil, berr end
  if type(body) ~= "string" then return nil, "The multipart body is empty." end
  local delim = "--" .. b
  if sub(body, 1, #delim + 2) ~= delim .. "\r\n" then
    return nil, "The multipart body does not start with its boundary."
  end
  local fields, nparts, pos = {}, 0, #delim + 3
  local next_delim = "\r\n" .. delim
  while true do
    nparts = nparts + 1
    if nparts > M.MAX_PARTS then
      return nil, format("The multipart body has more than %d parts.", M.MAX_PARTS)
    end
    local hend = find(body, "\r\n\r\n", pos, true)
    if not hend or hend - pos > M.MAX_HEADER then
      return nil, "A multipart part has no end to its headers within the limit."
    end
    local name, filename, pctype = part_headers(sub(body, pos, hend - 1))
    if not name then return nil, filename end
    if fields[name] then return nil, format("The form field '%s' is given twice.", name) end
    local cstart = hend + 4
    local cend = find(body, next_delim, cstart, true)
    if not cend then return nil, "The multipart body has no closing boundary." end
    fields[name] = { value = sub(body, cstart, cend - 1), filename = filename, content_type = pctype }
    pos = cend + #next_delim
    local after = sub(body, pos, pos + 1)
    if after == "--" then
      local rest = sub(body, pos + 2)
      if rest ~= "" and rest ~= "\r\n" then
        return nil, "The multipart body has data after its closing boundary."
      end
      return fields
    end
    if after ~= "\r\n" then return nil, "A multipart boundary is not followed by a line end." end
    pos = pos + 2
  end
end

return M
