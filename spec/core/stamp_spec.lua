-- The encoder stamps an event's id where klaviyo.event_layout says and under the member it
-- names (STAMP_KEY): the layout is handed to the C core as data, which knows none of its own.
local P = require "helpers.process"

describe("klaviyo.core's id stamping", function()
  it("writes the id under klaviyo.event_layout's STAMP_KEY", function()
    local out = P.child("core/stamp_child.lua", {}, { "event_id" })
    assert.matches('^{"data":{"attributes":{"a":1,"event_id":"%x+%-%x+%-4%x+%-%x+%-%x+"}}}\n$', out)
    assert.not_matches("unique_id", out, 1, true)
  end)

  it("refuses a STAMP_KEY that is not a plain JSON string", function()
    for _, key in ipairs({ 'a"b', "" }) do
      local out = P.child("core/stamp_child.lua", {}, { key })
      assert.matches("raised: .*STAMP_KEY must be a plain non%-empty string", out)
    end
  end)
end)
