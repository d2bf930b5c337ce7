-- emulator.bulk_body: a bulk_create_events body read straight into event specs gives exactly
-- the specs of the usual path (decode, then the handler's validation), or nil, never others.
local cjson = require "cjson.safe"
local state = require "emulator.state"
local events = require "emulator.handlers.events"
local bulk_body = require "emulator.bulk_body"

local function same(a, b, path)
  path = path or "$"
  if type(a) ~= type(b) then return false, path .. ": " .. type(a) .. " vs " .. type(b) end
  if type(a) ~= "table" then
    if a ~= b then return false, path .. ": " .. tostring(a) .. " vs " .. tostring(b) end
    return true
  end
  for k, v in pairs(a) do
    local ok, why = same(v, b[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  for k in pairs(b) do if a[k] == nil then return false, path .. "." .. tostring(k) .. " missing" end end
  return true
end

-- The usual path: the handler given the decoded body. Returns status, specs of the job.
local function usual(acct, raw)
  local doc = cjson.decode(raw)
  if not doc then return "undecodable" end
  local st, err = events.bulk_create_events({ account = acct, body = doc, body_size = #raw })
  if st ~= 202 then return st, err end
  local job = acct.jobs[acct.job_order[#acct.job_order]]
  return st, job.specs
end

local function entry(i, opts)
  opts = opts or {}
  local props = opts.props or string.format('{"price":12.5,"seq":%d,"sku":"SKU-%d","qty":2,' ..
    '"tags":["a","b"],"nested":{"x":{"y":[1,{}]}},"none":null,"yes":true}', i, i % 7)
  local ev = string.format('{"type":"event","attributes":{"properties":%s,' ..
    '"time":"2026-11-26T15:09:38.062+00:00","metric":{"data":{"attributes":{"name":"%s"},' ..
    '"type":"metric"}},"unique_id":"u-%d"%s}}', props, opts.metric or "Bench", i, opts.extra or "")
  return string.format('{"type":"event-bulk-create","attributes":{"profile":{"data":{"attributes":' ..
    '%s,"type":"profile"}},"events":{"data":[%s]}}}',
    opts.profile or string.format('{"email":"b%d@example.com"}', i % 5), ev)
end

local function body(entries)
  return '{"data":{"type":"event-bulk-create-job","attributes":{"events-bulk-create":{"data":[' ..
    table.concat(entries, ",") .. ']}}}}'
end

describe("emulator.bulk_body", function()
  local acct
  before_each(function() acct = state.new_account() end)

  local function check(raw, expect_read)
    local mine = bulk_body.specs(raw, events.validate_event, state.now())
    if expect_read == true then assert.is_table(mine, "not read: " .. raw:sub(1, 300)) end
    if expect_read == false then assert.is_nil(mine, "read: " .. raw:sub(1, 300)) end
    if mine then
      local st, specs = usual(acct, raw)
      assert.equal(202, st)
      local ok, why = same(mine, specs)
      assert(ok, why)
    end
    return mine
  end

  it("reads a tracker's body into the specs the usual path makes", function()
    local entries = {}
    for i = 1, 300 do entries[i] = entry(i) end
    local specs = check(body(entries), true)
    assert.equal(300, #specs)
    assert.equal("u-1", specs[1].unique_id)
    assert.equal(12.5, specs[300].properties.price)
  end)

  it("takes any member order, whitespace, several events per entry and the optional attributes",
    function()
    local ev1 = '{ "attributes" : { "unique_id" : "x1" , "value" : 9.99 , "value_currency" : "EUR" ,' ..
      ' "backfill" : false , "metric" : { "data" : { "type" : "metric" , "attributes" : { "name" :' ..
      ' "Placed Order" } } } , "properties" : { } } , "type" : "event" }'
    local ev2 = '{"type":"event","attributes":{"properties":{"a":1},"metric":{"data":{"attributes":' ..
      '{"name":"Placed Order"}}},"time":"2026-01-02T03:04:05Z"}}'
    local e = '{ "attributes" : { "events" : { "data" : [ ' .. ev1 .. ' , ' .. ev2 .. ' ] } ,' ..
      ' "profile" : { "data" : { "attributes" : { "phone_number" : "+15005550006", "first_name":' ..
      ' "Ann", "location": {"city": "Oslo"}, "properties": {"vip": true} } } } } ,' ..
      ' "type" : "event-bulk-create" }'
    local raw = '\n{ "data" : { "attributes" : { "events-bulk-create" : { "data" : [ ' .. e .. ' ] } } ,' ..
      ' "type" : "event-bulk-create-job" } }\n'
    local specs = check(raw, true)
    assert.equal(2, #specs)
  end)

  it("leaves to the usual path what it does not take exactly as that path would", function()
    local cases = {
      body({ entry(1, { extra = ',"unknown":1' }) }),                 -- unknown event attribute
      body({ entry(1, { extra = ',"unique_id":"again"' }) }),         -- repeated member
      body({ entry(1, { props = '{"s":"esc\\"aped"}' }) }),           -- escapes: cjson decodes
      body({ entry(1, { props = '[1,2]' }) }),                        -- refused by validation
      body({ entry(1, { props = '{"n":1e5}' }) }),                    -- a number cjson reads
      body({ entry(1, { metric = "" }) }),                            -- refused: empty metric
      body({ entry(1, { profile = '{}' }) }),                         -- refused: no identifier
      body({ entry(1, { profile = '{"email":"not an email"}' }) }),   -- refused: bad email
      body({ entry(1, { profile = '{"nickname":"x"}' }) }),           -- refused: not writable
      body({ entry(1, { extra = ',"value":"12"' }) }),                -- refused: value type
      body({ entry(1, { extra = ',"value":null' }) }),                -- null, as decoded
      body({}),                                                       -- no entries
      body({ entry(1) }):gsub('"event%-bulk%-create"', '"other"'),   -- wrong entry type
      body({ entry(1) }):gsub('"type":"event",', '"type":"evt",'),   -- wrong event type
      body({ entry(1) }):gsub('"data":%[{"type":"event"', '"data":[{"id":"1","type":"event"'),
      body({ entry(1) }):gsub('"attributes":{"email"', '"id":"p1","attributes":{"email"'),
      body({ entry(1) }):gsub('"profile":', '"backfill":true,"profile":'),
      body({ entry(1) }):gsub('"events":{"data":%[.*%]}', '"events":{"data":[]}'),
      body({ entry(1) }) .. "x",
      body({ entry(1) }):sub(1, -3),
    }
    local many = {}
    for i = 1, 1001 do many[i] = entry(i) end
    cases[#cases + 1] = body(many)                                    -- over 1000 events
    for _, raw in ipairs(cases) do
      local mine = bulk_body.specs(raw, events.validate_event, state.now())
      if mine then
        -- taken after all: then it must be exactly the usual path's answer
        local st, specs = usual(acct, raw)
        assert.equal(202, st, raw:sub(1, 300))
        assert(same(mine, specs))
      end
    end
    -- these must not be taken: the usual path refuses them
    for _, k in ipairs { 4, 6, 7, 8, 9, 10 } do
      assert.is_nil(bulk_body.specs(cases[k], events.validate_event, state.now()), cases[k])
      assert.are_not.equal(202, (usual(acct, cases[k])))
    end
    -- an exponent is cjson's to read: handed over, and accepted there
    assert.is_nil(bulk_body.specs(cases[5], events.validate_event, state.now()))
    assert.equal(202, (usual(acct, cases[5])))
    assert.is_nil(bulk_body.specs(cases[#cases], events.validate_event, state.now()))
  end)
end)
