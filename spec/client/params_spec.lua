-- Pure unit: klaviyo.request checks call parameters against the operation table and builds the
-- request table the C core sends. No network: every failure here happens before sending.
local request = require "klaviyo.request"
local required_params = require "helpers.required_params"
local F = require "klaviyo.filter"

local function build(op, params, validate) return request.build(op, params, validate) end

local function refused(op, params, pattern)
  local req, err = build(op, params)
  assert.is_nil(req)
  assert.is_string(err)
  assert.matches(pattern, err)
  return err
end

describe("klaviyo.request.build", function()
  it("maps an operation to method, path, auth and path parameters in template order", function()
    local req = assert(build("get_profile", { id = "01ABC" }))
    assert.equal("GET", req.method)
    assert.equal("/api/profiles/{id}", req.path)
    assert.equal("private", req.auth)
    assert.equal("get_profile", req.operation)
    assert.same({ "01ABC" }, req.path_params)
    assert.is_nil(req.body)
  end)

  it("accepts integer path parameters", function()
    local req = assert(build("get_profile", { id = 12 }))
    assert.same({ "12" }, req.path_params)
  end)

  it("passes query parameters by spec name, in a stable order", function()
    local req = assert(build("get_profiles", {
      ["page[size]"] = 20,
      ["fields[profile]"] = { "email", "id" },
      ["additional-fields[profile]"] = "subscriptions",
      filter = F.equals("email", "a b&c#d\"é@x.com"),
      sort = "-created",
      ["page[cursor]"] = "abc",
    }))
    assert.same({
      { "additional-fields[profile]", "subscriptions" },
      { "fields[profile]", { "email", "id" } },
      { "filter", 'equals(email,"a b&c#d\\"é@x.com")' },
      { "page[cursor]", "abc" },
      { "page[size]", "20" },
      { "sort", "-created" },
    }, req.query)
  end)

  it("takes a filter as a string too", function()
    local req = assert(build("get_profiles", { filter = 'equals(email,"x")' }))
    assert.same({ { "filter", 'equals(email,"x")' } }, req.query)
  end)

  it("hands a table body to the core as it is (the core encodes it) and a string body too", function()
    local body = { data = { type = "event", attributes = { properties = { n = 1 } } } }
    local req = assert(build("create_event", { body = body }))
    assert.equal(body, req.body)
    req = assert(build("create_event", { body = '{"data":{}}' }))
    assert.equal('{"data":{}}', req.body)
    refused("create_event", { body = 42 },
      "create_event: parameter body: expected a table %(or JSON text%), got number")
  end)

  it("passes the per-call revision and spec headers", function()
    local req = assert(build("get_profiles", { revision = "2025-01-15" }))
    assert.equal("2025-01-15", req.revision)
    req = assert(build("get_client_geofences", { ["X-Klaviyo-API-Filters"] = "x" }))
    assert.same({ { "X-Klaviyo-API-Filters", "x" } }, req.headers)
    assert.equal("public", req.auth)
  end)

  it("leaves company_id of /client/* operations to the client's public key", function()
    local req = assert(build("create_client_event", { body = { data = {} } }))
    assert.equal("public", req.auth)
    assert.is_nil(req.query)
    refused("create_client_event", { company_id = "ABC123", body = {} },
      "create_client_event: parameter company_id: comes from the client's public_key")
  end)

  it("refuses unknown operations and parameters", function()
    refused("no_such_operation", {}, 'unknown operation "no_such_operation"')
    refused(42, {}, "operation id must be a string")
    refused("get_profiles", { ["page[sise]"] = 10 },
      "get_profiles: parameter page%[sise%]: unknown parameter")
    refused("get_profiles", { [1] = "x" }, "parameter names must be strings")
    refused("get_profiles", "filter", "params must be a table")
  end)

  it("refuses missing required parameters", function()
    refused("get_profile", {}, "get_profile: parameter id: is required")
    refused("create_event", {}, "create_event: parameter body: is required")
    refused("get_client_review_values_reports", { statistics = "x", timeframe = "all_time" },
      "get_client_review_values_reports: parameter group_by: is required")
  end)

  it("refuses wrong value types", function()
    refused("get_profile", { id = "" }, "parameter id: must not be empty")
    refused("get_profile", { id = true }, "parameter id: expected a string, got boolean")
    refused("get_profile", { id = 1.5 }, "parameter id: expected a string")
    refused("get_profiles", { ["page[size]"] = "20" },
      "parameter page%[size%]: expected an integer, got string")
    refused("get_profiles", { ["page[size]"] = 2.5 }, "parameter page%[size%]: expected an integer, got 2.5")
    refused("get_profiles", { ["fields[profile]"] = 3 }, "fields%[profile%]: expected a list of strings")
    refused("get_profiles", { ["fields[profile]"] = {} }, "fields%[profile%]: the list is empty")
    refused("get_profiles", { ["fields[profile]"] = { "email", true } },
      "item 2: expected a string, got boolean")
    refused("get_profiles", { ["fields[profile]"] = { "email", "" } }, "item 2 is empty")
    refused("get_profiles", { filter = 3 },
      "parameter filter: expected a string or a klaviyo.filter expression")
    refused("get_profiles", { filter = "" }, "parameter filter: must not be empty")
    refused("get_profiles", { sort = {} }, "parameter sort: expected a string, got table")
    refused("get_profiles", { revision = 20250115 }, "parameter revision: expected a string")
    refused("create_event", { body = 5 }, "parameter body: expected a table")
    refused("get_client_geofences", { ["X-Klaviyo-API-Filters"] = 1 },
      "X%-Klaviyo%-API%-Filters: expected a string")
  end)

  it("refuses integers outside the spec's bounds", function()
    refused("get_profiles", { ["page[size]"] = 101 },
      "get_profiles: parameter page%[size%]: 101 is above the maximum 100")
    refused("get_profiles", { ["page[size]"] = 0 },
      "get_profiles: parameter page%[size%]: 0 is below the minimum 1")
    refused("get_lists", { ["page[size]"] = 11 }, "above the maximum 10")
    assert.truthy(build("get_profiles", { ["page[size]"] = 100 }))
    assert.truthy(build("get_profiles", { ["page[size]"] = 1 }))
  end)

  it("refuses a body where the operation takes none, or of a kind it cannot send", function()
    refused("get_profiles", { body = {} }, "get_profiles: parameter body: this operation takes no body")
    refused("upload_image_from_file", { body = {} }, "needs a multipart/form%-data body")
  end)

  it("converts numbers in list parameters without touching the caller's table", function()
    local ids = { "a", 2 }
    local req = assert(build("get_profiles", { ["fields[profile]"] = ids }, false))
    assert.same({ { "fields[profile]", { "a", "2" } } }, req.query)
    assert.same({ "a", 2 }, ids)
  end)

  it("knows every operation of the table", function()
    local n = 0
    for id, op in pairs(require "klaviyo.operations") do
      local params = required_params(op)
      if op.body == "required" and op.content_type == "application/vnd.api+json" then
        params.body = { data = {} }
      end
      if op.content_type ~= "multipart/form-data" then
        local req, err = build(id, params)
        assert(req, err)
        assert.equal(op.method, req.method)
        n = n + 1
      end
    end
    assert.is_true(n >= 340)
  end)
end)
