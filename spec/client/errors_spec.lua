-- Pure unit: klaviyo.errors turns the core's error tables into one readable line.
local errors = require "klaviyo.errors"

describe("klaviyo.errors", function()
  it("prints operation, status, code, title, detail and pointer on one line", function()
    local e = errors.wrap({ status = 400, code = "invalid", title = "Invalid input.",
      detail = "The email is not valid.\nSee docs.", pointer = "/data/attributes/email",
      request_id = "req-1", kind = "http" }, "create_profile")
    assert.equal("klaviyo: create_profile: HTTP 400 invalid - Invalid input.: "
      .. "The email is not valid. See docs."
      .. " (at /data/attributes/email) [request id req-1]", tostring(e))
    assert.equal(400, e.status)
    assert.equal("invalid", e.code)
  end)

  it("names a parameter and Retry-After when given", function()
    local e = errors.wrap({ status = 429, code = "throttled", detail = "Request was throttled.",
      parameter = "filter", retry_after = 3 }, "get_profiles")
    assert.equal("klaviyo: get_profiles: HTTP 429 throttled - Request was throttled."
      .. " (parameter filter) [retry after 3s]",
      tostring(e))
  end)

  it("keeps the core's operation and says what failed without a status", function()
    local e = errors.wrap({ kind = "refused", operation = "create_event",
      detail = "private key over http" }, "x")
    assert.equal("klaviyo: create_event: refused locally (nothing sent) - private key over http", tostring(e))
    e = errors.wrap({ kind = "transport", code = "timeout", detail = "timed out after 1 s" }, "get_lists")
    assert.equal("klaviyo: get_lists: transport error timeout - timed out after 1 s", tostring(e))
    e = errors.new("decode", "get_lists", "response body is not JSON")
    assert.equal("klaviyo: get_lists: decode error - response body is not JSON", tostring(e))
    assert.is_true(errors.is_error(e))
    assert.is_false(errors.is_error({}))
  end)

  it("clips very long details", function()
    local e = errors.wrap({ status = 500, detail = string.rep("x", 2000) }, "get_lists")
    assert.is_true(#tostring(e) < 600)
  end)

  it("wraps a string error too", function()
    local e = errors.wrap("boom", "get_lists")
    assert.equal("klaviyo: get_lists: transport error - boom", tostring(e))
  end)
end)
