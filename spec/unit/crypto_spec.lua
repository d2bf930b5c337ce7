-- core.sha256, core.hmac_sha256, core.random_bytes and core.equal against published vectors
-- (FIPS 180-2 for SHA-256, RFC 4231 for HMAC-SHA256).
local core = require "klaviyo.core"

local function hex(s)
  return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end))
end

describe("klaviyo.core crypto", function()
  it("hashes as FIPS 180-2 says", function()
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex(core.sha256("abc")))
    assert.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex(core.sha256("")))
    assert.equal("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
      hex(core.sha256("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")))
  end)

  it("signs as RFC 4231 says, keys and data with NUL bytes included", function()
    assert.equal("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
      hex(core.hmac_sha256(string.rep("\11", 20), "Hi There")))
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      hex(core.hmac_sha256("Jefe", "what do ya want for nothing?")))
    assert.equal("773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
      hex(core.hmac_sha256(string.rep("\170", 20), string.rep("\221", 50))))
    assert.are_not.equal(hex(core.hmac_sha256("k\0a", "x")), hex(core.hmac_sha256("k\0b", "x")))
  end)

  it("gives random bytes of the length asked, different each time, and refuses odd lengths", function()
    local a, b = core.random_bytes(32), core.random_bytes(32)
    assert.equal(32, #a)
    assert.are_not.equal(a, b)
    for _, n in ipairs { 0, -1, 1.5, 1025, 0 / 0 } do
      assert.has_error(function() core.random_bytes(n) end)
    end
  end)

  it("compares strings whole", function()
    assert.is_true(core.equal("abc\0d", "abc\0d"))
    assert.is_false(core.equal("abc\0d", "abc\0e"))
    assert.is_false(core.equal("abc", "abcd"))
    assert.is_true(core.equal("", ""))
    assert.has_error(function() core.equal("a", nil) end)
  end)
end)
