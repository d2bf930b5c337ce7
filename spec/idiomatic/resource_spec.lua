-- Pure unit specs for klaviyo.resource: JSON:API resources to flat tables.
local R = require "klaviyo.resource"

local profile = {
  type = "profile", id = "P1",
  attributes = { email = "a@b.com", first_name = "Ann", properties = { tier = "gold" } },
  relationships = {
    lists = { data = { { type = "list", id = "L1" }, { type = "list", id = "L2" } } },
    ["push-tokens"] = { links = { self = "x" } },
  },
  links = { self = "http://x/api/profiles/P1/" },
}

describe("resource.flatten", function()
  it("puts id, type and attributes at the top and keeps the raw resource", function()
    local f = R.flatten(profile)
    assert.equal("P1", f.id)
    assert.equal("profile", f.type)
    assert.equal("a@b.com", f.email)
    assert.equal("gold", f.properties.tier)
    assert.equal(profile, f._raw)
  end)
  it("turns relationships into ids: to-many as <singular>_ids, to-one as <name>_id", function()
    local f = R.flatten(profile)
    assert.same({ "L1", "L2" }, f.list_ids)
    assert.is_nil(f.push_token_ids) -- no data, only links: nothing to show
    local ev = R.flatten({ type = "event", id = "E1", attributes = {},
      relationships = { metric = { data = { type = "metric", id = "M1" } },
                        profile = { data = { type = "profile", id = "P1" } } } })
    assert.equal("M1", ev.metric_id)
    assert.equal("P1", ev.profile_id)
  end)
  it("names relationships the Lua way", function()
    assert.equal("flow_action_ids", R.rel_key("flow-actions", true))
    assert.equal("metric_property_ids", R.rel_key("metric-properties", true))
    assert.equal("tag_ids", R.rel_key("tags", true))
    assert.equal("flow_id", R.rel_key("flow", false))
  end)
  it("lets an attribute win over a relationship key of the same name", function()
    local f = R.flatten({ type = "x", id = "1", attributes = { metric_id = "attr" },
      relationships = { metric = { data = { type = "metric", id = "rel" } } } })
    assert.equal("attr", f.metric_id)
  end)
  it("never lets attributes overwrite id, type or _raw", function()
    local r = { type = "x", id = "1", attributes = { id = "evil", type = "t", _raw = 1 } }
    local f = R.flatten(r)
    assert.equal("1", f.id); assert.equal("x", f.type); assert.equal(r, f._raw)
  end)
end)

describe("resource.from_document", function()
  it("flattens data, keeps the document and flattens included resources", function()
    local doc = { data = profile, included = { { type = "list", id = "L1", attributes = { name = "VIP" } } } }
    local f = R.from_document(doc)
    assert.equal("P1", f.id)
    assert.equal(doc, f._document)
    assert.equal("VIP", f._included[1].name)
  end)
end)

describe("resource.list, ids and flat_iter", function()
  it("flattens list documents and relationship documents", function()
    local l = R.list({ data = { profile, { type = "profile", id = "P2", attributes = {} } } })
    assert.equal(2, #l)
    assert.equal("P2", l[2].id)
    local rel = { data = { { type = "profile", id = "A" }, { type = "profile", id = "B" } } }
    assert.same({ "A", "B" }, R.ids(rel))
  end)
  it("wraps an iterator and passes its error signal through", function()
    local items = { profile }
    local i = 0
    local it = R.flat_iter(function()
      i = i + 1
      if items[i] then return items[i] end
      if i == 2 then return false, "boom" end
      return nil
    end)
    assert.equal("a@b.com", it().email)
    local v, err = it()
    assert.is_false(v); assert.equal("boom", err)
    assert.is_nil(it())
  end)
end)
