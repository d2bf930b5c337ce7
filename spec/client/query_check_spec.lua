-- Query values checked as Klaviyo checks them: the operation table carries the spec's filter
-- fields and operators and the enums of sort, include and fields[...]; client:call refuses a
-- value outside them before anything is sent (kind "refused", parameter, allowed), and the
-- emulator answers the same request, sent raw, 400 naming the parameter.
local S = require "client.support"
local QV = require "helpers.query_values"
local cjson = require "cjson"
local emu = S.emu
local ops = S.klaviyo.operations
local request = require "klaviyo.request"

local read_spec = require("helpers.openapi").doc

local function split(s)
  local out = {}
  for v in s:gmatch("[^,]+") do out[#out + 1] = v end
  return out
end

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function query_entry(op, name)
  for _, q in ipairs(op.query) do
    if q.name == name then return q end
  end
end

-- The ids of the operations whose query has a filter, by name.
local function filtered_ids()
  local out = {}
  for id, op in pairs(ops) do
    if query_entry(op, "filter") then out[#out + 1] = id end
  end
  table.sort(out)
  return out
end

describe("the operation table's query facts", function()
  local spec = read_spec()

  it("has, for every operation with a filter, the fields and operators its description lists", function()
    local n = 0
    for _, item in pairs(spec.paths) do
      for _, op in pairs(item) do
        for _, p in ipairs(type(op) == "table" and op.parameters or {}) do
          if p["in"] == "query" and p.name == "filter" then
            n = n + 1
            -- read here independently: the text after the list's heading, one field a <br>
            local want = {}
            local list = assert(p.description:match("operator%(s%):<br>(.+)$"), op.operationId)
            for _, line in ipairs(split(list:gsub("<br>", ","):gsub("`, `", " "))) do
              local field, operators = line:match("^`(.-)`: `(.-)`$")
              assert(field, op.operationId .. ": " .. line)
              local set = {}
              for o in operators:gmatch("%S+") do set[#set + 1] = o end
              table.sort(set)
              want[field] = table.concat(set, ",")
            end
            local got = {}
            for field, o in pairs(query_entry(ops[op.operationId], "filter").filter) do
              local set = split(o)
              table.sort(set)
              got[field] = table.concat(set, ",")
            end
            assert.same(want, got, op.operationId)
          end
        end
      end
    end
    assert.equal(56, n)   -- the spec's count, as Klaviyo's spec stands
    assert.equal(n, #filtered_ids())
  end)

  it("has the enum of every enumerated query parameter, and no other", function()
    local n = 0
    for _, item in pairs(spec.paths) do
      for _, op in pairs(item) do
        for _, p in ipairs(type(op) == "table" and op.parameters or {}) do
          if p["in"] == "query" then
            local sch = p.schema or {}
            local enum = sch.enum or (sch.items and sch.items.enum)
            local q = query_entry(ops[op.operationId], p.name)
            if enum then
              n = n + 1
              assert.same(enum, split(q.enum), op.operationId .. " " .. p.name)
            else
              assert.is_nil(q.enum, op.operationId .. " " .. p.name)
            end
          end
        end
      end
    end
    assert.is_true(n > 400)
  end)
end)

-- Ids of resources that exist, by operation, so that the handler reads the filter instead of
-- answering 404 for its path (see make_resources); other operations get "X1".
local REAL = {}

local function path_id(id) return REAL[id] or "X1" end

-- A list, a segment and a flow with one action in `acct`, for the operations under them.
local function make_resources(acct)
  local st, _, body, raw = emu.api(acct, "POST", "/api/lists", { body = { data = { type = "list",
    attributes = { name = "Query checks" } } } })
  assert(st == 201, raw)
  local list = body.data.id
  REAL.get_profiles_for_list, REAL.get_profile_ids_for_list = list, list
  local seg = emu.segment { account = acct.account_id, name = "Query checks", profile_ids = {} }
  REAL.get_profiles_for_segment, REAL.get_profile_ids_for_segment = seg.id, seg.id
  st, _, body, raw = emu.api(acct, "POST", "/api/flows", { body = { data = { type = "flow", attributes = {
    name = "Query checks", definition = { triggers = { { type = "list", id = list } },
      entry_action_id = "d1", actions = { { temporary_id = "d1", type = "time-delay",
        data = { unit = "days", value = 1 }, links = { next = cjson.null } } } } } } } })
  assert(st == 201, raw)
  local flow = body.data.id
  REAL.get_actions_for_flow, REAL.get_action_ids_for_flow = flow, flow
  st, _, body, raw = emu.api(acct, "GET", "/api/flows/" .. flow .. "/relationships/flow-actions")
  assert(st == 200 and body.data[1], raw)
  REAL.get_flow_action_messages = body.data[1].id
end

-- Sends `query` to operation `id` raw (LuaSocket, no client): status, decoded body, raw body.
local function raw_send(acct, id, query)
  local op = ops[id]
  local path = op.path:gsub("{[^}]+}", path_id(id))
  local q = {}
  for _, e in ipairs(op.query) do
    if e.required and e.name ~= "filter" and e.name ~= "company_id" then
      q[e.name] = e.integer and (e.min or 1) or QV.allowed_value(e)
    end
  end
  for k, v in pairs(query) do q[k] = v end
  if op.auth == "public" then
    q.company_id = acct.public_key
    local st, _, body, raw = emu.request { path = path, query = q, headers = { revision = emu.REVISION } }
    return st, body, raw
  end
  local st, _, body, raw = emu.api(acct, op.method, path, { query = q })
  return st, body, raw
end

-- Call parameters for `id` with `extra`: path parameters and required query values filled.
local function params_for(id, extra)
  local op = ops[id]
  local p = {}
  for _, name in ipairs(op.path_params) do p[name] = path_id(id) end
  for _, e in ipairs(op.query) do
    if e.required and e.name ~= "company_id" then
      p[e.name] = e.integer and (e.min or 1) or QV.allowed_value(e)
    end
  end
  for k, v in pairs(extra) do p[k] = v end
  return p
end

local GRAMMAR_OPS = { "equals", "any", "contains", "starts-with", "ends-with", "greater-than",
  "greater-or-equal", "less-than", "less-or-equal", "has" }

describe("filters, operation by operation", function()
  local acct, private, public
  setup(function()
    acct = emu.account()
    emu.limits({ ["*"] = "off" }, acct)
    private = S.client("private", nil, acct)
    public = S.client("public", nil, acct)
    make_resources(acct)
  end)
  teardown(function() private:close(); public:close() end)

  for _, id in ipairs(filtered_ids()) do
    it(id .. ": each allowed field/operator passes both; a disallowed one is refused locally and 400",
      function()
        local client = ops[id].auth == "public" and public or private
        local allowed = query_entry(ops[id], "filter").filter
        local fields = sorted_keys(allowed)
        for _, field in ipairs(fields) do
          for _, o in ipairs(split(allowed[field])) do
            local f = QV.leaf(field, o)
            local built, berr = client:build(id, params_for(id, { filter = f }))
            assert(built, tostring(berr) .. " for " .. f)
            local st, _, raw = raw_send(acct, id, { filter = f })
            assert(st ~= 400, id .. " answered 400 to " .. f .. ": " .. tostring(raw))
            -- an emulated operation reads the filter (the resources under it exist)
            assert(st == 200 or st == 501, id .. " answered " .. tostring(st) .. " to " .. f .. ": "
              .. tostring(raw))
          end
        end
        -- the first field with an operator of the grammar it does not allow
        local field, bad = fields[1], nil
        local set = {}
        for _, o in ipairs(split(allowed[field])) do set[o] = true end
        for _, o in ipairs(GRAMMAR_OPS) do
          if not set[o] then bad = o break end
        end
        local f = QV.leaf(field, bad)
        local mark = S.mark()
        local doc, err = client:call(id, params_for(id, { filter = f }))
        assert.is_nil(doc)
        assert.equal("refused", err.kind)
        assert.equal("filter", err.parameter)
        assert.same(split(allowed[field]), err.allowed)
        local line = tostring(err)
        assert.matches("refused locally", line, 1, true)
        assert.matches('"' .. bad .. '"', line, 1, true)
        assert.matches(allowed[field]:gsub(",", ", "), line, 1, true)
        assert.same({}, S.since(mark), "nothing reaches the emulator")
        local st, body, raw = raw_send(acct, id, { filter = f })
        assert.equal(400, st, raw)
        assert.equal("filter", body.errors[1].source.parameter)
        assert.matches(bad, body.errors[1].detail, 1, true)
      end)
  end
end)

describe("filters that Klaviyo refuses whatever the operation", function()
  local client, acct
  setup(function() client, acct = S.client() end)
  teardown(function() client:close() end)

  local function refused_both(id, f, allowed)
    local mark = S.mark()
    local doc, err = client:call(id, { filter = f })
    assert.is_nil(doc)
    assert.equal("refused", err.kind)
    assert.equal("filter", err.parameter)
    if allowed then assert.same(allowed, err.allowed) end
    assert.same({}, S.since(mark))
    local st, body, raw = raw_send(acct, id, { filter = f })
    assert.equal(400, st, raw)
    assert.equal("filter", body.errors[1].source.parameter)
    return err, body.errors[1].detail
  end

  it("a field the operation does not filter on, listing the fields it does", function()
    local err = refused_both("get_metrics", 'equals(name,"Placed Order")',
      { "integration.category", "integration.name" })
    assert.matches('field "name"', tostring(err), 1, true)
    assert.matches("integration.category, integration.name", tostring(err), 1, true)
  end)

  it("a typo, with the nearest allowed field suggested", function()
    local err = refused_both("get_profiles", 'equals(emial,"a@b.com")')
    assert.matches('did you mean "email"', tostring(err), 1, true)
    assert.equal('equals(emial,"a@b.com")', err.given)
  end)

  it("an expression that does not parse, saying where it failed", function()
    local err, detail = refused_both("get_profiles", 'equals(email,"a@b.com"')
    assert.matches("does not parse: expected ')' at position 23", tostring(err), 1, true)
    assert.matches("position 23", detail, 1, true)
    refused_both("get_profiles", 'equals(email,a@b.com)')
    refused_both("get_profiles", 'wobbles(email,"x")')
  end)

  it("or() and not(), which no operation allows: leaves combine with and()", function()
    refused_both("get_profiles", 'or(equals(email,"a@b.com"),equals(email,"c@d.com"))', { "and" })
    refused_both("get_profiles", 'not(equals(email,"a@b.com"))', { "and" })
  end)

  it("a disallowed leaf inside and() or after a top-level comma", function()
    refused_both("get_profiles", 'and(equals(email,"a@b.com"),contains(email,"b"))', { "any", "equals" })
    refused_both("get_profiles", 'equals(email,"a@b.com"),contains(email,"b")', { "any", "equals" })
  end)

  it("klaviyo.filter builders still make accepted filters, combined with and_", function()
    local F = S.klaviyo.filter
    local f = F.and_(F.equals("email", 'a"b@x.com'), F.greater_than("created", F.datetime(0)),
      F.any("id", { "a", "b" }), "less-than(updated,2030-01-01T00:00:00Z)")
    local doc, err = client:call("get_profiles", { filter = f })
    assert(doc, tostring(err))
    doc, err = client:call("get_events", { filter = F.and_(F.has("profile"),
      F.greater_or_equal("datetime", F.datetime("2024-01-01T00:00:00Z"))) })
    assert(doc, tostring(err))
  end)
end)

describe("sort, include and fields[...] values", function()
  local client, acct
  setup(function() client, acct = S.client() end)
  teardown(function() client:close() end)

  it("are refused locally outside the spec's enum, naming the parameter and listing what is allowed",
    function()
      for _, case in ipairs {
        { "get_profiles", "fields[profile]", { "email", "emial" }, "emial", "email" },
        { "get_profiles", "sort", "nme" },
        { "get_profiles", "include", { "metrik" } },
        { "get_events", "include", "metrik,profile", "metrik", "metric" },
        { "get_metrics", "fields[metric]", "name,nmae", "nmae", "name" },
      } do
        local id, name, value, given, near = case[1], case[2], case[3], case[4] or case[3], case[5]
        if type(given) == "table" then given = given[1] end
        local mark = S.mark()
        local doc, err = client:call(id, { [name] = value })
        assert.is_nil(doc)
        assert.equal("refused", err.kind)
        assert.equal(name, err.parameter)
        assert.same(value, err.given)
        assert.same(split(query_entry(ops[id], name).enum), err.allowed)
        local line = tostring(err)
        assert.matches(name, line, 1, true)
        assert.matches('"' .. given .. '"', line, 1, true)
        if near then assert.matches('did you mean "' .. near .. '"', line, 1, true) end
        assert.same({}, S.since(mark), id .. " " .. name .. ": nothing reaches the emulator")
        local st, body, raw = raw_send(acct, id, { [name] = type(value) == "table"
          and table.concat(value, ",") or value })
        assert.equal(400, st, raw)
        assert.equal(name, body.errors[1].source.parameter)
      end
    end)

  it("are accepted when the spec lists them", function()
    local doc, err = client:call("get_profiles", { ["fields[profile]"] = { "email", "location.city" },
      sort = "-created" })
    assert(doc, tostring(err))
    doc, err = client:call("get_events", { include = { "metric", "profile" }, sort = "-datetime" })
    assert(doc, tostring(err))
  end)

  it("are each accepted by the emulator wherever the spec lists them (GET operations)", function()
    local own = emu.account()
    emu.limits({ ["*"] = "off" }, own)
    make_resources(own)
    local ids = sorted_keys(ops)
    local sent = 0
    for _, id in ipairs(ids) do
      local op = ops[id]
      if op.method == "GET" and (#op.path_params == 0 or REAL[id]) then
        for _, q in ipairs(op.query) do
          if q.enum then
            -- an array takes the whole enum at once; a single value is sent one by one
            local values = q.array and { q.enum } or split(q.enum)
            for _, v in ipairs(values) do
              local st, _, raw = raw_send(own, id, { [q.name] = v })
              sent = sent + 1
              assert(st ~= 400, id .. " " .. q.name .. "=" .. v .. ": " .. tostring(raw))
            end
          end
        end
      end
    end
    assert.is_true(sent > 100)
  end)

  it("are yielded by pages and paginate as their one failure, unsent, and sent with validate = false",
    function()
      local mark = S.mark()
      for _, iter in ipairs { "pages", "paginate" } do
        local got = {}
        for item, err in client[iter](client, "get_profiles", { sort = "nme" }) do
          got[#got + 1] = { item, err }
        end
        assert.equal(1, #got, iter)
        assert.is_false(got[1][1])
        assert.equal("refused", got[1][2].kind)
        assert.equal("sort", got[1][2].parameter)
      end
      assert.same({}, S.since(mark), "nothing reaches the emulator")
      local open = S.client("private", { validate = false }, acct)
      for item, err in open:pages("get_profiles", { sort = "nme" }) do
        assert.is_false(item)
        assert.equal(400, err.status)   -- the emulator refuses what the client let through
      end
      assert.equal(1, #S.since(mark))
    end)

  it("are not checked when the caller turns the checks off (klaviyo.request.build's third argument)",
    function()
      local req, msg, refusal = request.build("get_profiles", { sort = "nme",
        filter = 'contains(email,"x")' })
      assert.is_nil(req)
      assert.is_nil(msg)
      assert.equal("refused", refusal.kind)
      req = assert(request.build("get_profiles", { sort = "nme", filter = 'contains(email,"x")' }, false))
      assert.same({ { "filter", 'contains(email,"x")' }, { "sort", "nme" } }, req.query)
    end)
end)
