-- upload_image_from_file: the client builds a multipart/form-data body (file, name, hidden),
-- the emulator reads it strictly and keeps the image; a file that cannot be sent is refused
-- with nothing sent; the bytes arrive as they were, whatever they hold.
local S = require "client.support"
local required_params = require "helpers.required_params"
local emu = S.emu
local multipart = require "klaviyo.multipart"
local reader = require "emulator.multipart"

-- Every byte value, then text that looks like a multipart delimiter, twice.
local HOSTILE = {}
for i = 0, 255 do HOSTILE[#HOSTILE + 1] = string.char(i) end
HOSTILE = "\137PNG\r\n\26\n" .. table.concat(HOSTILE)
  .. "\r\n--klaviyo-lua-00000000000000000000000000000000\r\n"
  .. "Content-Disposition: form-data; name=\"x\"\r\n\r\n"
  .. "\r\n--klaviyo-lua-ffffffffffffffffffffffffffffffff--\r\n" .. table.concat(HOSTILE)

local tmpfiles = {}
-- A fresh path ending in suffix (os.tmpname makes the base file: removed after each test too).
local function tmppath(suffix)
  local base = os.tmpname()
  tmpfiles[#tmpfiles + 1] = base
  return base .. suffix
end

local function tmpfile(suffix, data)
  local path = tmppath(suffix)
  local f = assert(io.open(path, "wb"))
  assert(f:write(data))
  f:close()
  tmpfiles[#tmpfiles + 1] = path
  return path
end

-- The form fields of the last upload as the emulator received them over the wire.
local function received(since)
  local recs = S.since(since)
  local rec = recs[#recs]
  assert.equal("upload_image_from_file", rec.operation)
  local ctype = rec.headers["Content-Type"] or rec.headers["content-type"]
  assert.matches("^multipart/form%-data; boundary=klaviyo%-lua%-%x+$", ctype)
  return assert(reader.parse(ctype, rec.request_body)), rec
end

describe("upload_image_from_file", function()
  local client
  before_each(function() client = S.client() end)
  after_each(function()
    client:close()
    for _, p in ipairs(tmpfiles) do os.remove(p) end
    tmpfiles = {}
  end)

  it("uploads a file from a path: its name, type from the extension, size", function()
    local path = tmpfile(".png", HOSTILE)
    local mark = S.mark()
    local doc, res = client:call("upload_image_from_file", { file = path })
    assert.is_table(doc, tostring(res))
    assert.equal(201, res.status)
    local a = doc.data.attributes
    assert.equal(path:match("[^/]+$"), a.name)
    assert.equal("png", a.format)
    assert.equal(#HOSTILE, a.size)
    assert.is_false(a.hidden)
    local form = received(mark)
    assert.equal(HOSTILE, form.file.value)
    assert.equal("image/png", form.file.content_type)
    assert.is_nil(form.name)
    local got = assert(client:call("get_image", { id = doc.data.id }))
    assert.same(a, got.data.attributes)
  end)

  it("uploads bytes with a name and the hidden flag; images:get and images:each see it", function()
    local mark = S.mark()
    local img, err = client.images:upload { bytes = HOSTILE, content_type = "image/gif", name = "Banner",
                                            hidden = true }
    assert.is_table(img, tostring(err))
    assert.equal("Banner", img.name)
    assert.is_true(img.hidden)
    assert.equal("gif", img.format)
    local form = received(mark)
    assert.equal("image.gif", form.file.filename)
    assert.equal("Banner", form.name.value)
    assert.equal("true", form.hidden.value)
    local again = assert(client.images:get(img.id))
    assert.equal("Banner", again.name)
    local seen = 0
    for i, e in client.images:each() do
      assert.is_table(i, tostring(e))
      if i.id == img.id then seen = seen + 1 end
    end
    assert.equal(1, seen)
    -- a second image of that name gets a suffix, as Klaviyo does
    local second = assert(client.images:upload { bytes = "GIF89a", filename = "b.gif", name = "Banner" })
    assert.equal("Banner-1", second.name)
    assert.is_false(second.hidden)
  end)

  it("round-trips content that holds boundary-like text, byte for byte", function()
    for _, body in ipairs { HOSTILE, "--", "\r\n--\r\n", HOSTILE:rep(50) } do
      local mark = S.mark()
      local doc, err = client:call("upload_image_from_file",
        { file = { bytes = body, filename = "odd \"name\"\r\n.jpg" } })
      assert.is_table(doc, tostring(err))
      assert.equal(#body, doc.data.attributes.size)
      assert.equal("jpeg", doc.data.attributes.format)
      local form = received(mark)
      assert.equal(body, form.file.value)
      assert.equal("odd \"name\"\r\n.jpg", form.file.filename)
    end
  end)

  it("refuses a file it cannot send with nil, err naming the parameter; nothing is sent", function()
    local big = tmpfile(".png", "")
    local f = assert(io.open(big, "wb"))
    assert(f:seek("set", multipart.MAX_FILE))
    assert(f:write("x"))   -- one byte over Klaviyo's 5 MB image limit
    f:close()
    local dir = tmppath(".png")   -- a directory: opens, cannot be read
    assert(os.execute("mkdir " .. dir))
    tmpfiles[#tmpfiles + 1] = dir
    local cases = {
      { { file = "/nonexistent/dir/x.png" }, "cannot open" },
      { { file = "/tmp" .. "/" }, "extension" },
      { { file = big }, "larger than Klaviyo's image limit of 5242880 bytes" },
      { { file = dir }, "cannot read" },
      { { file = tmpfile(".txt", "text") }, "extension is not" },
      { { file = tmpfile(".png", "") }, "is empty" },
      { { file = { bytes = "x" } }, "give content_type or a filename" },
      { { file = { bytes = "x", content_type = "text/html" } },
        "content type text/html is not one Klaviyo takes" },
      { { file = { bytes = string.rep("x", multipart.MAX_FILE + 1), content_type = "image/png" } },
        "larger than Klaviyo's image limit" },
    }
    local mark = S.mark()
    for _, c in ipairs(cases) do
      local doc, err = client:call("upload_image_from_file", c[1])
      assert.is_nil(doc)
      assert.equal("refused", err.kind)
      assert.equal("file", err.parameter)
      assert.equal("upload_image_from_file", err.operation)
      assert.matches(c[2], err.detail, 1, true)
      assert.matches("refused locally", tostring(err), 1, true)
    end
    local img, err = client.images:upload { path = "/nonexistent.gif" }
    assert.is_nil(img)
    assert.equal("refused", err.kind)
    assert.equal(mark, S.mark())
  end)

  it("raises in client:batch for a file it cannot send, naming the request; nothing is sent", function()
    local mark = S.mark()
    local ok, msg = pcall(client.batch, client, {
      { "get_images", {} },
      { "upload_image_from_file", { file = "/nonexistent/x.png" } },
    })
    assert.is_false(ok)
    assert.matches("^klaviyo: batch: request 2: .*refused locally.*cannot open", msg)
    assert.equal(mark, S.mark())
  end)

  it("raises on parameters of the wrong type, naming them; nothing is sent", function()
    local mark = S.mark()
    local function raises(pattern, params)
      local ok, msg = pcall(client.call, client, "upload_image_from_file", params)
      assert.is_false(ok)
      assert.matches(pattern, msg)
    end
    raises("parameter file: is required", { name = "x" })
    raises("parameter file: expected a path or", { file = 7 })
    raises("parameter file%.bytes: expected a string, got nil", { file = { filename = "a.png" } })
    raises("parameter file: unknown field path", { file = { path = "a.png" } })
    raises("parameter hidden: expected a boolean, got string", { file = "a.png", hidden = "yes" })
    raises("parameter name: expected a string, got number", { file = "a.png", name = 1 })
    raises("parameter body: needs a multipart/form%-data body", { body = {} })
    assert.has_error(function() client.images:upload { path = "a.png", bytes = "x" } end,
      "images:upload: give exactly one of path and bytes")
    assert.equal(mark, S.mark())
  end)

  it("builds every one of the 345 operations", function()
    local n, total = 0, 0
    local build = require("klaviyo.request").build
    for id, op in pairs(require "klaviyo.operations") do
      total = total + 1
      local params = required_params(op)
      if op.content_type == "multipart/form-data" then
        params.file = { bytes = "x", content_type = "image/png" }
      elseif op.body == "required" then
        params.body = { data = {} }
      end
      local req, err = build(id, params)
      assert(req, err)
      n = n + 1
    end
    assert.equal(345, total)
    assert.equal(345, n)
  end)
end)

describe("the emulator's multipart reader", function()
  local acct
  before_each(function()
    acct = emu.account()
    emu.limits({ upload_image_from_file = "off" }, acct)   -- many posts a second
  end)

  local function post(ctype, body)
    local st, _, doc = emu.api(acct, "POST", "/api/image-upload",
      { body = body, headers = { ["content-type"] = ctype } })
    return st, doc
  end
  local B = "b0undary"
  local function part(name, extra, content)
    return "--" .. B .. "\r\nContent-Disposition: form-data; name=\"" .. name .. "\"" .. (extra or "")
      .. "\r\n\r\n" .. content .. "\r\n"
  end
  local FILE = part("file", "; filename=\"a.png\"\r\nContent-Type: image/png", "PNGDATA")
  local CT = "multipart/form-data; boundary=" .. B

  it("accepts a well-formed form and answers 201 with the image", function()
    local st, doc = post(CT, FILE .. part("hidden", nil, "true") .. "--" .. B .. "--\r\n")
    assert.equal(201, st)
    assert.equal("a.png", doc.data.attributes.name)
    assert.equal(7, doc.data.attributes.size)
    assert.is_true(doc.data.attributes.hidden)
    st = post('multipart/form-data; boundary="' .. B .. '"', FILE .. "--" .. B .. "--")
    assert.equal(201, st)
  end)

  it("answers a malformed body 400 in Klaviyo's error shape, and a wrong type 415", function()
    local bad = {
      { CT, FILE },                                                        -- no close delimiter
      { "multipart/form-data", FILE .. "--" .. B .. "--" },                -- no boundary
      { CT, "preamble\r\n" .. FILE .. "--" .. B .. "--" },                  -- text before it
      { CT, FILE .. FILE .. "--" .. B .. "--" },                            -- a field twice
      { CT, "--" .. B .. "\r\nContent-Type: image/png\r\n\r\nx\r\n--" .. B .. "--" }, -- no disposition
      { CT, FILE .. "--" .. B .. "--trailing" },                            -- data after the end
      { CT, part("file", nil, "no filename") .. "--" .. B .. "--" },       -- file not a file
      { CT, FILE .. part("hidden", nil, "maybe") .. "--" .. B .. "--" },   -- not a boolean
      { CT, part("file", "; filename=\"a.txt\"\r\nContent-Type: text/plain", "x") .. "--" .. B .. "--" },
      { CT, "--" .. B .. "\r\n" .. ("X-Pad: " .. ("p"):rep(100) .. "\r\n"):rep(40) .. "\r\n\r\n" },
      { CT, part("file", "; filename=\"a.png\"", ("x"):rep(5 * 1024 * 1024 + 1)) .. "--" .. B .. "--" },
    }
    for i, c in ipairs(bad) do
      local st, doc = post(c[1], c[2])
      assert.equal(400, st, "case " .. i)
      assert.equal("invalid", doc.errors[1].code, "case " .. i)
      assert.is_string(doc.errors[1].detail)
    end
    local st, doc = post("application/vnd.api+json", '{"data":{}}')
    assert.equal(415, st)
    assert.equal("unsupported_media_type", doc.errors[1].code)
  end)

  it("reads back what klaviyo.multipart writes, for any content", function()
    math.randomseed(7)
    for _ = 1, 200 do
      local t = {}
      for i = 1, math.random(1, 300) do
        t[i] = math.random() < 0.2 and "\r\n--klaviyo-lua-" or string.char(math.random(0, 255))
      end
      local bytes = table.concat(t)
      local body, ctype = multipart.form("upload_image_from_file",
        { file = { bytes = bytes, content_type = "image/png" }, name = bytes, hidden = false })
      local fields = assert(reader.parse(ctype, body))
      assert.equal(bytes, fields.file.value)
      assert.equal(bytes, fields.name.value)
      assert.equal("false", fields.hidden.value)
    end
  end)
end)

describe("the emulator's images", function()
  local client
  before_each(function() client = S.client() end)
  after_each(function() client:close() end)

  it("imports from a URL or a data URI, lists with filter and sort, and updates", function()
    local a = assert(client:call("upload_image_from_url", { body = { data = { type = "image",
      attributes = { import_from_url = "https://example.com/pics/logo.png", hidden = true } } } }))
    assert.equal("logo.png", a.data.attributes.name)
    assert.equal("png", a.data.attributes.format)
    assert.is_true(a.data.attributes.hidden)
    local b = assert(client:call("upload_image_from_url", { body = { data = { type = "image",
      attributes = { import_from_url = "data:image/gif;base64,R0lGODlhAQABAAAAACw=", name = "dot" } } } }))
    assert.equal("gif", b.data.attributes.format)
    assert.equal("dot", b.data.attributes.name)
    local ok, err = client:call("upload_image_from_url", { body = { data = { type = "image",
      attributes = { import_from_url = "ftp://example.com/x.bmp" } } } })
    assert.is_nil(ok)
    assert.equal(400, err.status)
    local gifs = assert(client:call("get_images", { filter = "equals(format,'gif')" }))
    assert.equal(1, #gifs.data)
    assert.equal(b.data.id, gifs.data[1].id)
    local hidden = assert(client:call("get_images", { filter = "equals(hidden,true)" }))
    assert.equal(1, #hidden.data)
    assert.equal(a.data.id, hidden.data[1].id)
    local small = assert(client:call("get_images", { filter = "less-than(size,1000)" }))
    assert.equal(2, #small.data)
    local sorted = assert(client:call("get_images", { sort = "-id" }))
    assert.same({ b.data.id, a.data.id }, { sorted.data[1].id, sorted.data[2].id })
    local u = assert(client:call("update_image", { id = a.data.id, body = { data = { type = "image",
      id = a.data.id, attributes = { name = "Logo", hidden = false } } } }))
    assert.equal("Logo", u.data.attributes.name)
    assert.is_false(u.data.attributes.hidden)
    assert.equal("Logo", assert(client.images:get(a.data.id)).name)
    local none, nerr = client.images:get("999999")
    assert.is_nil(none)
    assert.equal(404, nerr.status)
  end)
end)
