-- The idiomatic modules against answers of the wrong shape: the emulator (fault rules) answers
-- 200 with well-formed JSON that is not the JSON:API document the operation promises. Every
-- method answers nil, err (kind "decode") or, for an iterator, false, err once and then the
-- end: never a raise, never "not found" or an empty list for garbage, never a wrong profile.
local S = require "idiomatic.support"

local ID = "01HOSTILE0000000000000000A"

-- Bodies that are not a single resource document.
local NOT_ONE = {
  "{}", '{"data":null}', '{"data":"x"}', '{"data":5}', '{"data":[]}',
  '{"data":[{"type":"list","id":"' .. ID .. '","attributes":{}}]}',
  '{"data":{"type":"list"}}', '{"data":{"type":"list","id":5,"attributes":{}}}',
  '{"data":{"id":"' .. ID .. '","attributes":{}}}',
  '{"data":{"type":"list","id":"' .. ID .. '","attributes":"x"}}',
  '{"data":{"type":"list","id":"' .. ID .. '","attributes":{},"relationships":' ..
    '{"flows":{"data":[null]}}}}',
  '{"data":{"type":"list","id":"' .. ID .. '","attributes":{}},"included":[null]}',
  '{"data":{"type":"list","id":"' .. ID .. '","attributes":{}},"included":"x"}',
  "[]", '"x"', "5", "null", "true", "",
}

-- Bodies that are not a list document.
local NOT_MANY = {
  "{}", '{"data":null}', '{"data":"x"}', '{"data":[null]}', '{"data":[5]}', '{"data":["x"]}',
  '{"data":{"type":"flow","id":"' .. ID .. '","attributes":{}}}',
  '{"data":[{"type":"flow","attributes":{}}]}', "[]", "null", "",
}

local function answer(op, body)
  S.emu.faults({ { operation = op, status = 200, body = body,
    content_type = "application/vnd.api+json", count = 1 } })
end

-- Calls fn (returning v, err) and checks it answered nil, a decode error, without raising.
local function decode_failure(fn, body)
  local ok, v, err = pcall(fn)
  assert(ok, "raised on " .. body .. ": " .. tostring(v))
  assert(v == nil, "no failure on " .. body .. ": got " .. tostring(v))
  assert(type(err) == "table" and err.kind == "decode",
    "not a decode error on " .. body .. ": " .. tostring(err))
  return err
end

-- Runs an iterator to its end (bounded); checks it yielded false, decode error, then ended.
local function iter_failure(make, body)
  local ok, iter = pcall(make)
  assert(ok, "raised on " .. body .. ": " .. tostring(iter))
  local failed, steps = nil, 0
  while true do
    steps = steps + 1
    assert(steps < 50, "endless iteration on " .. body)
    local ok2, item, err = pcall(iter)
    assert(ok2, "raised on " .. body .. ": " .. tostring(item))
    if item == nil then break end
    assert(item == false, "yielded an item from " .. body .. ": " .. tostring(item))
    assert(type(err) == "table" and err.kind == "decode",
      "not a decode error on " .. body .. ": " .. tostring(err))
    failed = err
  end
  assert(failed, "ended quietly on " .. body)
end

describe("idiomatic modules under answers of the wrong shape", function()
  local t
  before_each(function() t = S.setup() end)
  after_each(function() S.emu.faults(nil) end)

  it("a single-resource read answers nil, a decode error", function()
    for _, body in ipairs(NOT_ONE) do
      answer("get_list", body)
      decode_failure(function() return t.lists:get(ID) end, body)
    end
  end)

  it("a create answers nil, a decode error, not a resource without an id", function()
    for _, body in ipairs(NOT_ONE) do
      answer("create_profile", body)
      decode_failure(function() return t.profiles:create{ email = "shape@example.com" } end, body)
      answer("create_or_update_profile", body)
      decode_failure(function() return t.profiles:upsert{ email = "shape@example.com" } end, body)
    end
  end)

  it("a list read answers nil, a decode error, not an empty list", function()
    for _, body in ipairs(NOT_MANY) do
      answer("get_flows_triggered_by_list", body)
      decode_failure(function() return t.lists:flows(ID) end, body)
    end
  end)

  it("an iterator yields false, a decode error once, then ends", function()
    for _, body in ipairs(NOT_MANY) do
      -- client:paginate reads a page whose data is one resource as that one item
      if not body:find('"data":{', 1, true) then
        answer("get_lists", body)
        iter_failure(function() return t.lists:each() end, body)
      end
    end
  end)

  it("the raw client:paginate yields false, a decode error for a page that is not a list", function()
    for _, body in ipairs({ '{"data":"x"}', '{"data":[null]}', '{"data":[5]}', "null", "[]" }) do
      answer("get_lists", body)
      iter_failure(function() return t.client:paginate("get_lists", {}) end, body)
    end
  end)

  it("a page whose links.next repeats a page already read is a decode error, not the end", function()
    assert(t.lists:create{ name = "L" })
    local first = t.client:build("get_lists", {}).url
    answer("get_lists", '{"data":[],"links":{"next":"' .. first .. '"}}')
    local got = S.collect(t.lists:each())
    -- the first page (the fault) had no lists, its link read the first page again: a repeat
    -- of that link would be a loop, so the next repeat is a decode error
    assert.equal(1, #got)
    local second = '{"data":[],"links":{"next":"' .. first .. '"}}'
    S.emu.faults({ { operation = "get_lists", status = 200, body = second,
      content_type = "application/vnd.api+json", count = 2 } })
    local err
    got = {}
    for l, lerr in t.lists:each() do
      if not l then err = lerr; break end
      got[#got + 1] = l
    end
    assert.equal(0, #got)
    assert.equal("decode", err and err.kind)
  end)

  it("profiles:get by an identifier answers a decode error, never not_found, for garbage", function()
    for _, body in ipairs({ '{"data":"x"}', '{"data":{"type":"profile","id":"' .. ID ..
        '","attributes":{"email":"shape@example.com"}}}', '{"data":[null]}', '{}', "null", "",
        '{"data":[{"type":"profile","attributes":{}}]}' }) do
      answer("get_profiles", body)
      decode_failure(function() return t.profiles:get{ email = "shape@example.com" } end, body)
    end
  end)

  it("profiles:get refuses an answer whose profile has another identifier", function()
    local other = '{"data":[{"type":"profile","id":"' .. ID ..
      '","attributes":{"email":"other@example.com","external_id":"crm-9",' ..
      '"phone_number":"+15005550009"}}]}'
    for _, q in ipairs({ { email = "shape@example.com" }, { external_id = "crm-1" },
                         { phone_number = "+15005550006" } }) do
      answer("get_profiles", other)
      decode_failure(function() return t.profiles:get(q) end, other)
    end
    answer("get_profile", '{"data":{"type":"profile","id":"01OTHER000000000000000000A",' ..
      '"attributes":{}}}')
    decode_failure(function() return t.profiles:get{ id = ID } end, "another id")
  end)

  it("flows:get with actions answers a decode error for odd included resources", function()
    for _, body in ipairs({
      '{"data":{"type":"flow","id":"' .. ID .. '","attributes":{}},"included":[null]}',
      '{"data":{"type":"flow","id":"' .. ID .. '","attributes":{}},"included":' ..
        '[{"type":"flow-action","attributes":{}}]}' }) do
      answer("get_flow", body)
      decode_failure(function() return t.flows:get(ID, { messages = true }) end, body)
    end
  end)

  it("profiles:create gives duplicate_profile_id only when the 409 names an id string", function()
    local function conflict(meta)
      return '{"errors":[{"id":"e1","status":409,"code":"duplicate_profile","title":' ..
        '"Conflict.","detail":"A profile already exists.","source":{"pointer":' ..
        '"/data/attributes/email"},"meta":' .. meta .. '}]}'
    end
    for _, meta in ipairs({ '{"duplicate_profile_id":5}', '{"duplicate_profile_id":null}',
        '{"duplicate_profile_id":{"id":"x"}}', '{"duplicate_profile_id":""}' }) do
      S.emu.faults({ { operation = "create_profile", status = 409, body = conflict(meta),
        content_type = "application/vnd.api+json", count = 1 } })
      local p, err = t.profiles:create{ email = "dup@example.com" }
      assert.is_nil(p)
      assert.equal(409, err.status)
      assert.is_nil(err.duplicate_profile_id, meta)
    end
    S.emu.faults({ { operation = "create_profile", status = 409,
      body = conflict('{"duplicate_profile_id":"' .. ID .. '"}'),
      content_type = "application/vnd.api+json", count = 1 } })
    local _, err = t.profiles:create{ email = "dup@example.com" }
    assert.equal(ID, err.duplicate_profile_id)
  end)

  it("an attribute named like the library's own fields (_included, _document) stays in _raw", function()
    local body = '{"data":{"type":"flow","id":"' .. ID .. '","attributes":{"name":"F",' ..
      '"_included":[null],"_document":5,"_raw":5}}}'
    answer("get_flow", body)
    local ok, f = pcall(function() return t.flows:get(ID, { actions = true }) end)
    assert(ok, f)
    assert.equal("F", f.name)
    assert.same({}, f.actions)
    assert.is_table(f._document)
    assert.equal(5, f._raw.attributes._document)
  end)

  it("metrics:find answers a decode error, not not_found, for a page of garbage", function()
    answer("get_metrics", '{"data":[null]}')
    decode_failure(function() return t.metrics:find("Placed Order") end, "[null]")
  end)
end)
