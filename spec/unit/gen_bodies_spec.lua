-- tools/gen-bodies.lua on a small spec holding the schema keywords Klaviyo's spec uses rarely
-- or not yet (closed objects, array bounds, allOf, oneOf of objects, a nullable $ref, date,
-- time and uri formats, a nullable enum, an E.164 phone): each generated check refuses what its
-- keyword forbids, with the pointer. Two operations share the Thing component: its checks are
-- written once, in a shared module loaded on the first call of one of them; so are checks of
-- the same content under two names (Circle, Twin) or inline in both operations (note, extra).
local cjson = require "cjson"
local klaviyo = require "klaviyo"
local body_check = require "klaviyo.body_check"

local PREFIX = "gen_bodies_test"
local function op(id, schema)
  return { operationId = id, requestBody = { required = true,
    content = { ["application/vnd.api+json"] = { schema = schema } } } }
end
local COUNTED = { type = "object", properties = { n = { type = "integer" } } }
local NOTE = { type = "object", required = { "text" }, properties = { text = { type = "string" } } }
-- objects nested ten deep: `klaviyo describe` stops expanding past 8
local DEEP = { type = "string" }
for _ = 1, 10 do DEEP = { type = "object", properties = { down = DEEP } } end
local SPEC = {
  openapi = "3.0.2",
  paths = {
    ["/api/things"] = { post = op("create_thing", { ["$ref"] = "#/components/schemas/Body" }) },
    ["/api/things/{id}"] = { patch = op("update_thing", { type = "object", required = { "data" },
      properties = { data = { ["$ref"] = "#/components/schemas/Thing" },
        extra = { type = "object", required = { "text" },
          properties = { text = { type = "string" } } } } }) },
  },
  components = { schemas = {
    Body = { type = "object", required = { "data" }, properties = {
      data = { ["$ref"] = "#/components/schemas/Thing" }, note = NOTE } },
    Thing = { type = "object", required = { "type", "attributes" }, additionalProperties = false,
      properties = {
        type = { type = "string", enum = { "thing" } },
        attributes = { allOf = { { ["$ref"] = "#/components/schemas/Named" },
          { type = "object", properties = { day = { type = "string", format = "date" } } } } },
        tags = { type = "array", minItems = 1, maxItems = 2, items = { type = "string" } },
        shape = { oneOf = { { ["$ref"] = "#/components/schemas/Circle" },
                            { ["$ref"] = "#/components/schemas/Square" } } },
        parent = { ["$ref"] = "#/components/schemas/Named", nullable = true },
        at = { type = "string", format = "time" },
        link = { type = "string", format = "uri" },
        meta = { type = "object", maxProperties = 1 },
        color = { type = "string", enum = { "red", "blue", cjson.null }, nullable = true },
        phone_number = { type = "string", description = "A phone number in E.164 format" },
        a = COUNTED,
        b = { type = "object", properties = { n = { type = "integer" } } },
        deep = DEEP,
        twin = { ["$ref"] = "#/components/schemas/Twin" },
      } },
    Named = { type = "object", required = { "name" }, properties = { name = { type = "string" },
      children = { type = "array", items = { ["$ref"] = "#/components/schemas/Named" } } } },
    Circle = { type = "object", required = { "radius" }, properties = { radius = { type = "number" } } },
    Twin = { type = "object", required = { "radius" }, properties = { radius = { type = "number" } } },
    Square = { type = "object", required = { "side" }, properties = { side = { type = "integer" } } },
  } },
}

describe("tools/gen-bodies.lua", function()
  local dir, check, update_check, loaded_before_call
  local function read(name)
    local f = assert(io.open(dir .. "/" .. PREFIX .. "/" .. name .. ".lua", "rb"))
    local s = f:read("*a")
    f:close()
    return s
  end
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir .. "/" .. PREFIX))
    local f = assert(io.open(dir .. "/spec.json", "wb"))
    f:write(cjson.encode(SPEC))
    f:close()
    assert(os.execute("lua5.4 tools/gen-bodies.lua " .. dir .. "/spec.json " .. dir .. "/" .. PREFIX
      .. " " .. PREFIX))
    package.path = dir .. "/?.lua;" .. package.path
    check = require(PREFIX .. ".create_thing").check
    loaded_before_call = package.loaded[PREFIX .. "._shared_01"]
  end)
  teardown(function() os.execute("rm -rf " .. dir) end)

  local function ok_body()
    return { data = { type = "thing", attributes = { name = "n", day = "2026-02-28" } } }
  end
  local function refused(pointer, expected, mutate)
    local b = ok_body()
    mutate(b.data)
    local p, e = check(b)
    assert.equal(pointer, p)
    if expected then assert.equal(expected, e) end
  end

  it("accepts a valid body", function()
    assert.is_nil(check(ok_body()))
    local b = ok_body()
    b.data.tags = { "a" }
    b.data.shape = { side = 2 }
    b.data.parent = klaviyo.null
    b.data.at = "10:00:00"
    b.data.link = "https://example.com/a.png"
    b.data.meta = { k = 1 }
    b.data.color = klaviyo.null
    b.data.phone_number = "+15005550006"
    b.data.a, b.data.b = { n = 1 }, { n = 2 }
    assert.is_nil(check(b))
  end)

  it("refuses what each keyword forbids", function()
    refused("/data/extra", "no other members", function(d) d.extra = 1 end)
    refused("/data/tags", "at least 1 items", function(d) d.tags = klaviyo.array() end)
    refused("/data/tags", "at most 2 items", function(d) d.tags = { "a", "b", "c" } end)
    refused("/data/tags/1", "a string", function(d) d.tags = { "a", 2 } end)
    refused("/data/attributes/name", 'a member "name" (required)', function(d) d.attributes.name = nil end)
    refused("/data/attributes/day", nil, function(d) d.attributes.day = "2026-02-30" end)
    refused("/data/shape/side", "an integer", function(d) d.shape = { side = 1.5 } end)
    refused("/data/parent/name", nil, function(d) d.parent = {} end)
    refused("/data/at", nil, function(d) d.at = "25:00:00" end)
    refused("/data/link", nil, function(d) d.link = "not a uri" end)
    refused("/data/meta", "at most 1 members", function(d) d.meta = { a = 1, b = 2 } end)
    refused("/data/type", '"thing"', function(d) d.type = "other" end)
    refused("/data/color", 'one of "red", "blue"', function(d) d.color = "green" end)
    refused("/data/color", "a string or null", function(d) d.color = 1 end)
    refused("/data/phone_number", "a phone number in E.164 (e.g. +15005550006)",
      function(d) d.phone_number = "555-0100" end)
    refused("/data/a/n", "an integer", function(d) d.a = { n = "1" } end)
    refused("/data/b/n", "an integer", function(d) d.b = { n = 0.5 } end)
  end)

  it("writes a component two operations share once, loaded on the first call", function()
    local shared = read("_shared_01")
    assert.truthy(shared:find("C.Thing = function", 1, true))
    assert.falsy(read("create_thing"):find("Thing = function", 1, true))
    assert.falsy(read("update_thing"):find("Thing = function", 1, true))
    -- a and b are checked the same: one function
    local _, n = shared:gsub('mi%(v, "n"%)', "")
    assert.equal(1, n)
    assert.is_nil(loaded_before_call)
    assert.truthy(package.loaded[PREFIX .. "._shared_01"])
    update_check = require(PREFIX .. ".update_thing").check
    local b = ok_body()
    b.data.color = "green"
    assert.same({ "/data/color", 'one of "red", "blue"', 'the string "green"' }, { update_check(b) })
    assert.same({ check(b) }, { update_check(b) })
    assert.is_nil(update_check(ok_body()))
  end)

  it("writes one function for checks of the same content, named or inline, in any operation", function()
    local shared = read("_shared_01")
    -- Circle and Twin hold the same schema: one function, named after the first met
    local _, n = shared:gsub('need%(v, "radius"%)', "")
    assert.equal(1, n)
    assert.truthy(shared:find("C.Circle = function", 1, true))
    assert.falsy(shared:find("Twin = function", 1, true))
    -- note (create_thing) and extra (update_thing) are the same inline object: one function
    _, n = shared:gsub('need%(v, "text"%)', "")
    assert.equal(1, n)
    assert.falsy(read("create_thing"):find('need(v, "text")', 1, true))
    assert.falsy(read("update_thing"):find('need(v, "text")', 1, true))
    local b = ok_body()
    b.data.twin = { radius = "1" }
    assert.same({ "/data/twin/radius", "a number", 'the string "1"' }, { check(b) })
    b.data.twin = nil
    b.note = { text = 1 }
    assert.same({ "/note/text", "a string", "the number 1" }, { check(b) })
    b.note, b.extra = nil, {}
    local update = require(PREFIX .. ".update_thing").check
    assert.same({ "/extra/text", 'a member "text" (required)', "nothing" }, { update(b) })
  end)

  it("writes the shape of a component once, expanded for klaviyo describe", function()
    local gen = require(PREFIX .. ".create_thing")
    local fragments = dofile(dir .. "/" .. PREFIX .. "/_shapes.lua")
    assert.truthy(gen.shape:find("^%^%d+ Body\n"), gen.shape)
    local text = body_check.expand_shape(gen.shape, fragments)
    assert.truthy(text:find('^data: object %(required%)\n'), text)
    assert.truthy(text:find('\n  type: "thing" %(required%)\n'), text)
    assert.truthy(text:find('\n    name: string %(required%)\n'), text)
    assert.truthy(text:find('\n  color: one of "red", "blue" or null\n'), text)
    -- a component met inside itself is named, not expanded again; so is a node nested past 8
    assert.truthy(text:find("\n%s+children: array of object %(Named, as above%)\n"), text)
    assert.truthy(text:find("down: object %(nested, not expanded%)\n"), text)
  end)

  it("a shared module that cannot load is an error of the check, not a pass", function()
    local name = "ProfileLocation"
    local mod = "klaviyo.bodies." .. require("klaviyo.bodies._index")[name]
    local C = body_check.components("klaviyo.bodies")
    local body = { data = { type = "event", attributes = { properties = {},
      metric = { data = { type = "metric", attributes = { name = "m" } } },
      profile = { data = { type = "profile", attributes = { email = "a@example.com" } } } } } }
    assert.is_nil(body_check.check("create_event", body))
    rawset(C, name, nil)
    package.loaded[mod] = nil
    package.preload[mod] = function() error("a broken install") end
    finally(function()
      package.preload[mod], package.loaded[mod] = nil, nil
      rawset(C, name, nil)
    end)
    -- not reached without a location: loaded on first use
    assert.is_nil(body_check.check("create_event", body))
    body.data.attributes.profile.data.attributes.location = { city = "Boston" }
    assert.has_error(function() body_check.check("create_event", body) end)
  end)
end)
