-- upload_image_from_file through the ngx transport (inside nginx, the test bed's /call
-- location): the multipart body and its Content-Type go out as the core built them.
local T = require "ngx.support"
local S, emu = T.S, T.emu
local reader = require "emulator.multipart"

describe("upload_image_from_file in nginx", function()
  setup(function() T.start() end)
  teardown(function() T.stop() end)

  it("sends the form byte for byte, with its own Content-Type", function()
    local acct = emu.account()
    -- bytes and boundary-like text (cjson carries them to nginx as they are)
    local bytes = "GIF89a\r\n--klaviyo-lua-0123\r\n\r\n--\1\2\127" .. ("\255\254"):rep(100)
    local mark = S.mark()
    local doc, r = T.call1(T.opts(acct), "upload_image_from_file",
      { file = { bytes = bytes, filename = "dot.gif" }, name = "Dot", hidden = true })
    assert.is_table(doc, T.cjson.encode(r))
    assert.equal(201, r.status)
    assert.equal("Dot", doc.data.attributes.name)
    assert.equal(#bytes, doc.data.attributes.size)
    local recs = T.since(mark, "upload_image_from_file")
    assert.equal(1, #recs)
    local ctype = S.header(recs[1], "content-type")
    assert.matches("^multipart/form%-data; boundary=klaviyo%-lua%-%x+$", ctype)
    local form = assert(reader.parse(ctype, recs[1].request_body))
    assert.equal(bytes, form.file.value)
    assert.equal("true", form.hidden.value)
  end)

  it("refuses a missing file with nil, err and sends nothing", function()
    local acct = emu.account()
    local mark = S.mark()
    local out = T.call(T.opts(acct), { { "upload_image_from_file", { file = "/nonexistent/x.png" } } })
    assert.is_nil(out.raised)
    local e = out.results[1].err
    assert.is_table(e, T.cjson.encode(out))
    assert.equal("refused", e.kind)
    assert.equal("file", e.parameter)
    assert.equal(mark, S.mark())
  end)
end)
