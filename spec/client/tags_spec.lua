-- client:call reaches at least one operation of every tag in Klaviyo's spec: the emulator
-- records the operation it routed the request to, with the method and path the spec gives.
-- Operations it does not emulate answer 501 after routing, which proves the same.
local S = require "client.support"
local ops = S.klaviyo.operations
local allowed_value = require("helpers.query_values").allowed_value

-- One operation per tag: a GET without path parameters when there is one (cheapest), else a
-- GET, else the first by name. Deterministic.
local function pick()
  local by_tag = {}
  local names = {}
  for id in pairs(ops) do names[#names + 1] = id end
  table.sort(names)
  for _, id in ipairs(names) do
    local op = ops[id]
    local rank = (op.method == "GET" and 0 or 2) + (#op.path_params == 0 and 0 or 1)
    if op.content_type and op.content_type ~= "application/vnd.api+json" then rank = 9 end
    local cur = by_tag[op.tag]
    if not cur or rank < cur.rank then by_tag[op.tag] = { id = id, rank = rank } end
  end
  return by_tag
end

local function params_for(op)
  local p = {}
  for _, name in ipairs(op.path_params) do p[name] = "X1" end
  for _, q in ipairs(op.query) do
    if q.required and q.name ~= "company_id" then
      p[q.name] = q.integer and (q.min or 1) or allowed_value(q)
    end
  end
  for _, h in ipairs(op.headers or {}) do if h.required then p[h.name] = "x" end end
  if op.body == "required" then
    p.body = { data = { type = op.body_type or "unknown", attributes = {} } }
  end
  return p
end

describe("every tag", function()
  local private, public
  setup(function()
    private = S.client("private")
    public = S.client("public")
  end)
  teardown(function() private:close(); public:close() end)

  local tags = {}
  for tag in pairs(pick()) do tags[#tags + 1] = tag end
  table.sort(tags)

  it("covers all tags of the operation table", function()
    assert.is_true(#tags >= 20)
  end)

  for _, tag in ipairs(tags) do
    local choice = pick()[tag]
    local id = choice.id
    it(tag .. ": " .. id .. " reaches its route", function()
      local op = ops[id]
      local client = op.auth == "public" and public or private
      local mark = S.mark()
      -- the placeholder body only has to reach the route: the local body check is off
      local doc, err = client:call(id, params_for(op), { validate = false })
      local recs = S.since(mark)
      local seen = {}
      for _, r in ipairs(recs) do seen[#seen + 1] = tostring(r.operation) .. " " .. tostring(r.status) end
      assert.equal(1, #recs, "one request sent; recorded: " .. table.concat(seen, ", "))
      local rec = recs[1]
      assert.equal(id, rec.operation)
      assert.equal(op.method, rec.method)
      assert.equal((op.path:gsub("{[^}]+}", "X1")), rec.path)
      if doc then
        assert.is_true(rec.status < 300)
      else
        assert.equal(rec.status, err.status)
        assert.equal(id, err.operation)
        if err.status == 501 then assert.is_truthy(tostring(err):find("501", 1, true)) end
      end
    end)
  end
end)
