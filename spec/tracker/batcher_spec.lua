-- The batcher's pure parts: the job body, which event a 400 names, what an answer means,
-- how long to wait.
local B = require "klaviyo.tracker.batcher"
local cjson = require "cjson"

describe("klaviyo.tracker.batcher", function()
  it("joins spooled entries into one bulk_create_events body without re-encoding them", function()
    local lines = { '{"type":"event-bulk-create","n":1}', '{"type":"event-bulk-create","n":2}',
                    '{"type":"event-bulk-create","n":3}' }
    local doc = cjson.decode(B.body(lines, 2, 3))
    assert.are.equal("event-bulk-create-job", doc.data.type)
    local entries = doc.data.attributes["events-bulk-create"].data
    assert.are.same({ 2, 3 }, { entries[1].n, entries[2].n })
    assert.are.equal(#B.body(lines, 1, 1) - #lines[1], B.ENVELOPE)
  end)

  it("reads the entry a 400 pointer names", function()
    assert.are.equal(76, B.entry_index(
      "/data/attributes/events-bulk-create/data/76/attributes/events/data/0/attributes/metric"))
    assert.are.equal(0, B.entry_index("/data/attributes/events-bulk-create/data/0"))
    assert.is_nil(B.entry_index("/data/attributes/events-bulk-create/data"))
    assert.is_nil(B.entry_index("/data/type"))
    assert.is_nil(B.entry_index(nil))
  end)

  it("classifies answers: reject the events, retry later, or stop", function()
    assert.are.equal("reject", B.classify({ status = 400 }))
    assert.are.equal("reject", B.classify({ status = 413 }))
    for _, st in ipairs({ 429, 500, 502, 503, 504, 524, 408 }) do
      assert.are.equal("retry", B.classify({ status = st }))
    end
    assert.are.equal("retry", B.classify({ kind = "transport" }))
    for _, st in ipairs({ 401, 403, 404, 405, 409, 415 }) do
      assert.are.equal("stop", B.classify({ status = st }))
    end
  end)

  it("waits out a 429's Retry-After plus a margin that grows while 429s repeat", function()
    assert.are.equal(12.05, B.backoff({ status = 429, retry_after = 12 }, 1, 0.5, 30))
    assert.are.equal(0.2, B.backoff({ status = 429, retry_after = 0 }, 3, 0.5, 30))
    assert.are.equal(1, B.backoff({ status = 429, retry_after = 0 }, 30, 0.5, 30))
  end)

  it("backs off with full jitter, capped, never before a Retry-After", function()
    for n = 1, 20 do
      local d = B.backoff({ status = 503 }, n, 0.5, 30)
      assert.is_true(d >= 0 and d <= math.min(30, 0.5 * 2 ^ (n - 1)))
      assert.is_true(B.backoff({ status = 503, retry_after = 7 }, n, 0.5, 3) >= 7)
    end
  end)

  it("waits at most an hour for a Retry-After, and ignores one that is not a number of seconds",
    function()
    assert.are.equal(3600.05, B.backoff({ status = 429, retry_after = 1e12 }, 1, 0.5, 30))
    assert.are.equal(3600, B.backoff({ status = 503, retry_after = 1e12 }, 1, 0.5, 30))
    for _, ra in ipairs({ math.huge, -math.huge, 0 / 0, -5 }) do
      assert.are.equal(0.05, B.backoff({ status = 429, retry_after = ra }, 1, 0.5, 30))
      assert.is_true(B.backoff({ status = 503, retry_after = ra }, 1, 0.5, 30) <= 0.5)
    end
  end)

  it("shows any error value as text without raising", function()
    local bad = setmetatable({}, { __tostring = function() error("no") end })
    assert.are.equal("(a table that cannot be shown as text)", B.text(bad))
    assert.are.equal("boom", B.text("boom"))
    assert.are.equal("nil", B.text(nil))
  end)
end)
