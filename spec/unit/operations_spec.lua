-- The committed operation table is exactly what the generator makes from Klaviyo's spec.
local F = require "helpers.files"

local root = require("helpers.process").root
local openapi = require "helpers.openapi"
local spec_json = openapi.path

local function read(path) return (assert(F.read(path))) end

describe("lua/klaviyo/operations.lua", function()
  local committed = read(root .. "/lua/klaviyo/operations.lua")
  local ops = require "klaviyo.operations"

  it("is what tools/gen-operations.lua writes from the spec", function()
    local p = assert(io.popen(("lua5.4 %q %q"):format(root .. "/tools/gen-operations.lua", spec_json)))
    local generated = p:read("*a")
    p:close()
    assert.is_true(#generated > 0, "the generator printed nothing")
    assert.is_true(generated == committed, "operations.lua is stale: run `make operations`")
  end)

  it("holds every operation of the spec, with method and path", function()
    local spec = openapi.doc()
    local n = 0
    for path, item in pairs(spec.paths) do
      for method, op in pairs(item) do
        if type(op) == "table" and op.operationId then
          n = n + 1
          local o = ops[op.operationId]
          assert.is_table(o, "missing operation " .. op.operationId)
          assert.equal(method:upper(), o.method)
          assert.equal(path, o.path)
        end
      end
    end
    local m = 0
    for _ in pairs(ops) do m = m + 1 end
    assert.equal(n, m)
    assert.is_true(n >= 340)
  end)

  it("carries the facts the client and the emulator rely on", function()
    local e = ops.create_event
    assert.same({ burst = 350, steady = 3500 }, e.limits)
    assert.same({ "events:write" }, e.scopes)
    assert.equal("private", e.auth)
    assert.equal("event", e.body_type)
    assert.equal("required", e.body)
    assert.equal("public", ops.create_client_event.auth)
    assert.equal(100, ops.create_flow.limits.daily)
    local size
    for _, q in ipairs(ops.get_profiles.query) do
      if q.name == "page[size]" then size = q end
    end
    assert.same({ name = "page[size]", required = false, integer = true, min = 1, max = 100 }, size)
    assert.same({ "id" }, ops.get_profile.path_params)
  end)
end)
