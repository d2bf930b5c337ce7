-- client:call checks every request body against Klaviyo's spec before the limiter and the
-- network. For every operation with a JSON body: one valid body (built here from the spec's
-- schemas, independently of the generated checks) is sent and accepted by the emulator, and
-- three broken ones (a required member missing, a wrong type, a value outside an enum) are
-- refused locally with the pointer of the problem, nothing reaching the emulator.
local S = require "client.support"
local cjson = require "cjson"
local klaviyo = S.klaviyo
local ops = klaviyo.operations

local spec = require("helpers.openapi").doc()
local schemas = spec.components.schemas
local JSON_API = "application/vnd.api+json"

local function deref(n)
  while type(n) == "table" and n["$ref"] do
    n = schemas[n["$ref"]:match("([^/]+)$")]
  end
  return n
end

-- The request body schema of each operation with a JSON body.
local body_schema = {}
for _, item in pairs(spec.paths) do
  for _, o in pairs(item) do
    local c = type(o) == "table" and o.requestBody and o.requestBody.content
    if c and c[JSON_API] then body_schema[o.operationId] = c[JSON_API].schema end
  end
end

local seq = 0
local function unique(prefix)
  seq = seq + 1
  return string.format("%s%d-%d", prefix, os.time(), seq)
end

-- A minimal valid value for a schema: required members only, the first enum value, one item
-- per array, a value of the format the schema names; a profile gets an email.
local function minimal(node, key, depth)
  depth = depth or 0
  assert(depth < 40, "schema too deep at " .. tostring(key))
  local n = deref(node)
  if n.allOf then
    local out = {}
    for _, sub in ipairs(n.allOf) do
      local v = minimal(sub, key, depth + 1)
      if type(v) == "table" then for k, x in pairs(v) do out[k] = x end end
    end
    return out
  end
  if n.oneOf or n.anyOf then return minimal((n.oneOf or n.anyOf)[1], key, depth + 1) end
  if n.enum then
    for _, v in ipairs(n.enum) do if v ~= cjson.null then return v end end
  end
  local ty = n.type or (n.properties and "object")
  if ty == "object" then
    local out = {}
    local props = n.properties or {}
    for _, r in ipairs(n.required or {}) do out[r] = minimal(props[r] or {}, r, depth + 1) end
    if props.email and props.phone_number and out.email == nil and out.phone_number == nil then
      out.email = unique("bodies") .. "@example.com"
    end
    return out
  elseif ty == "array" then
    return klaviyo.array { minimal(n.items or {}, key, depth + 1) }
  elseif ty == "string" then
    if n.format == "date-time" then return "2026-06-01T10:00:00Z" end
    if n.format == "date" then return "2026-06-01" end
    if n.format == "time" then return "10:00:00" end
    if n.format == "uri" then return "https://example.com/x.png" end
    if key == "email" then return unique("bodies") .. "@example.com" end
    if key == "phone_number" then return "+15005550006" end
    if type(n.example) == "string" and key ~= "id" then return n.example end
    return "X1"
  elseif ty == "integer" then
    return math.type and math.type(n.example) == "integer" and n.example or 1
  elseif ty == "number" then
    return type(n.example) == "number" and n.example or 1
  elseif ty == "boolean" then
    return false
  end
  return "x"
end

-- Path and required query/header parameters for an operation, as placeholders.
local function placeholders(op)
  local p = {}
  for _, name in ipairs(op.path_params) do p[name] = "X1" end
  for _, q in ipairs(op.query) do
    if q.required and q.name ~= "company_id" then p[q.name] = q.integer and (q.min or 1) or "x" end
  end
  for _, h in ipairs(op.headers or {}) do if h.required then p[h.name] = "x" end end
  return p
end

local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  return setmetatable(out, getmetatable(v))
end

-- The resource object of a body (data, or data's first item) and its pointer.
local function resource(body)
  if body.data[1] ~= nil then return body.data[1], "/data/0" end
  return body.data, "/data"
end

-- The three broken bodies of an operation: {name, body, pointer}. The resource's `type` is an
-- enum of one value in every body of the spec, so it carries the enum violation; the missing
-- member and the wrong type are taken from the attributes when the schema requires some.
local function broken(op_id)
  local valid = minimal(body_schema[op_id])
  local out = {}
  local res, at = resource(valid)
  local attr_req
  local rschema = deref(body_schema[op_id])
  rschema = deref(deref(rschema.properties.data).items or rschema.properties.data)
  if rschema.oneOf then rschema = deref(rschema.oneOf[1]) end
  local attrs = rschema.properties and rschema.properties.attributes and deref(rschema.properties.attributes)
  if attrs and attrs.required and attrs.required[1] and type(res.attributes) == "table" then
    attr_req = attrs.required[1]
  end
  local b = copy(valid)
  local r = resource(b)
  if attr_req then
    r.attributes[attr_req] = nil
    out[#out + 1] = { "missing required member", b, at .. "/attributes/" .. attr_req }
  else
    r.type = nil
    out[#out + 1] = { "missing required member", b, at .. "/type" }
  end
  b = copy(valid)
  r = resource(b)
  if type(r.attributes) == "table" then
    r.attributes = "not an object"
    out[#out + 1] = { "wrong type", b, at .. "/attributes" }
  else
    r.type = 42
    out[#out + 1] = { "wrong type", b, at .. "/type" }
  end
  b = copy(valid)
  r = resource(b)
  assert(type(r.type) == "string", op_id .. ": the resource has no type enum")
  r.type = "not-a-" .. r.type
  out[#out + 1] = { "value outside the enum", b, at .. "/type" }
  return valid, out
end

-- What an emulated operation needs beyond a minimal body to be accepted: resources its path
-- and relationships name, and the members that say what to do (a channel to subscribe, ...).
-- Each gets the client, the call's params and the emulator account.
local function made(doc, err)
  assert(doc, tostring(err))
  return doc.data.id
end
local function new_list(c)
  return made(c:call("create_list",
    { body = { data = { type = "list", attributes = { name = unique("L") } } } }))
end
local function new_profile(c)
  return made(c:call("create_profile", { body = S.profile_body { email = unique("p") .. "@example.com" } }))
end
-- A flow definition the emulator runs: a list trigger, one delay.
local function definition(c, body)
  local def = body.data.attributes.definition
  def.triggers = { { type = "list", id = new_list(c) } }
  def.actions = { { temporary_id = "d1", type = "time-delay", data = { unit = "days", value = 1 },
                    links = { next = klaviyo.null } } }
  def.entry_action_id = "d1"
end
local function new_flow(c)
  local body = minimal(body_schema.create_flow)
  definition(c, body)
  return made(c:call("create_flow", { body = body }))
end
local function new_webhook(c)
  return made(c:call("create_webhook", { body = { data = { type = "webhook",
    attributes = { name = "w", endpoint_url = "https://example.com/hook",
                   secret_key = "a-secret-of-16-chars" },
    relationships = { ["webhook-topics"] = { data = { { type = "webhook-topic",
      id = "event:klaviyo.opened_email" } } } } } } }))
end
local function resource_at_path(new)
  return function(c, p)
    p.id = new(c)
    p.body.data.id = p.id
  end
end
local function members(c, p)
  p.id = new_list(c)
  p.body.data[1].id = new_profile(c)
end
local function consent(state)
  return function(_, p)
    p.body.data.attributes.profiles.data[1].attributes.subscriptions =
      { email = { marketing = { consent = state } } }
  end
end
local function suppression(_, p)
  p.body.data.attributes.profiles = { data = { { type = "profile",
    attributes = { email = unique("s") .. "@example.com" } } } }
end
local function variant(_, p)
  p.body.data.relationships.variant =
    { data = { type = "catalog-variant", id = "$custom:::$default:::SKU1" } }
  p.body.data.attributes.profile = { data = { type = "profile",
    attributes = { email = unique("b") .. "@example.com" } } }
end
local FIX = {
  add_profiles_to_list = members,
  remove_profiles_from_list = members,
  update_list = resource_at_path(new_list),
  update_profile = resource_at_path(new_profile),
  update_flow = function(c, p)
    resource_at_path(new_flow)(c, p)
    p.body.data.attributes.status = "draft"
  end,
  update_webhook = resource_at_path(new_webhook),
  update_image = resource_at_path(function(c)
    return made(c:call("upload_image_from_url", { body = minimal(body_schema.upload_image_from_url) }))
  end),
  update_segment = function(_, p, acct)
    p.id = S.emu.segment({ account = acct.account_id, name = unique("S"), profile_ids = klaviyo.array() }).id
    p.body.data.id = p.id
  end,
  merge_profiles = function(c, p)
    p.body.data.id = new_profile(c)
    p.body.data.relationships.profiles = { data = { { type = "profile", id = new_profile(c) } } }
  end,
  bulk_subscribe_profiles = consent("SUBSCRIBED"),
  bulk_unsubscribe_profiles = consent("UNSUBSCRIBED"),
  bulk_suppress_profiles = suppression,
  bulk_unsuppress_profiles = suppression,
  create_back_in_stock_subscription = variant,
  create_client_back_in_stock_subscription = variant,
  create_client_subscription = function(c, p)
    p.body.data.relationships = { list = { data = { type = "list", id = new_list(c) } } }
  end,
  create_flow = function(c, p) definition(c, p.body) end,
  create_webhook = function(_, p)
    p.body.data.relationships = { ["webhook-topics"] = { data = { { type = "webhook-topic",
      id = "event:klaviyo.opened_email" } } } }
  end,
}

local body_ops = {}
for id, op in pairs(ops) do
  if op.body and op.content_type == JSON_API then body_ops[#body_ops + 1] = id end
end
table.sort(body_ops)

describe("request bodies are checked against the spec before sending", function()
  local private, public, acct
  setup(function()
    private, acct = S.client("private", { retry = { attempts = 1 } })
    public = S.client("public", { retry = { attempts = 1 } }, acct)
  end)
  teardown(function() private:close(); public:close() end)

  it("covers every operation with a JSON body", function()
    assert.equal(119, #body_ops)
  end)

  for _, id in ipairs(body_ops) do
    it(id .. ": a valid body is sent and accepted, three broken ones are refused unsent", function()
      local op = ops[id]
      local client = op.auth == "public" and public or private
      local valid, bad = broken(id)
      for _, case in ipairs(bad) do
        local what, body, pointer = case[1], case[2], case[3]
        local params = placeholders(op)
        params.body = body
        local mark = S.mark()
        local doc, err = client:call(id, params)
        assert.is_nil(doc, what)
        assert.equal("refused", err.kind, what)
        assert.equal(pointer, err.pointer, what .. ": " .. tostring(err))
        assert.is_string(err.expected)
        assert.is_string(err.given)
        local line = tostring(err)
        assert.truthy(line:find(id, 1, true), line)
        assert.truthy(line:find(pointer, 1, true), line)
        assert.truthy(line:find(err.expected, 1, true), line)
        assert.truthy(line:find(err.given, 1, true), line)
        assert.same({}, S.since(mark), what .. ": nothing reaches the emulator")
      end
      local params = placeholders(op)
      params.body = valid
      if FIX[id] then FIX[id](private, params, acct) end
      local mark = S.mark()
      local doc, err = client:call(id, params)
      local recs = S.since(mark)
      assert.equal(1, #recs, id .. ": the valid body is sent")
      local status = recs[1].status
      assert.truthy(doc ~= nil or err.kind ~= "refused", tostring(err))
      -- accepted: a success, or (an operation the emulator does not emulate) a 501 once the
      -- emulator's own checks of the body passed
      if status == 501 then
        assert.equal("not_implemented", err.code)
      else
        assert.truthy(status < 300, id .. ": " .. tostring(status) .. " " .. tostring(err))
      end
    end)
  end
end)

describe("the body check", function()
  local client
  before_each(function() client = S.client(nil, { retry = { attempts = 1 } }) end)
  after_each(function() client:close() end)

  local function no_identifier()
    local body = S.event_body("x@example.com", "Checked")
    body.data.attributes.profile.data.attributes = { first_name = "Ann" }
    return body
  end

  local function refused_unsent(pointer, fn)
    local mark = S.mark()
    local doc, err = fn()
    assert.is_nil(doc)
    assert.equal("refused", err.kind, tostring(err))
    assert.equal(pointer, err.pointer, tostring(err))
    assert.same({}, S.since(mark))
    return err
  end

  it("refuses a profile without an identifier, as the idiomatic modules do", function()
    local err = refused_unsent("/data/attributes/profile/data/attributes", function()
      return client:call("create_event", { body = no_identifier() })
    end)
    assert.matches("identifier", err.expected)
    -- refused before the send loop: no request counted, no wait for the rate limiter
    assert.is_nil(client:stats().create_event)
    local cerr = refused_unsent("/profile", function()
      return client.events:create { metric = "Checked", profile = { first_name = "Ann" } }
    end)
    assert.matches("identifier", cerr.detail)
  end)

  it("checks a body given as JSON text", function()
    local err = refused_unsent("/data/type", function()
      return client:call("create_list", { body = '{"data":{"type":"lst","attributes":{"name":"x"}}}' })
    end)
    assert.equal('"list"', err.expected)
    assert.equal('the string "lst"', err.given)
    refused_unsent("", function() return client:call("create_list", { body = '{"data":' }) end)
    -- an empty array written in the text is an array
    local mark = S.mark()
    local _, lerr = client:call("add_profiles_to_list", { id = "X1", body = '{"data":[]}' })
    assert.equal(1, #S.since(mark))
    assert.is_not.equal("refused", lerr.kind)
  end)

  it("refuses an empty table where the spec wants an array (it would be sent as {})", function()
    local err = refused_unsent("/data", function()
      return client:call("add_profiles_to_list", { id = "X1", body = { data = {} } })
    end)
    assert.equal("an array", err.expected)
    assert.matches("klaviyo.array", err.given)
  end)

  it("refuses a date-time without a zone and a phone number not in E.164", function()
    local body = S.event_body("t@example.com", "Checked", { time = "2026-06-01T10:00:00" })
    refused_unsent("/data/attributes/time", function()
      return client:call("create_event", { body = body })
    end)
    body = S.profile_body { phone_number = "5005550006" }
    local err = refused_unsent("/data/attributes/phone_number", function()
      return client:call("create_profile", { body = body })
    end)
    assert.matches("E.164", err.expected)
  end)

  it("refuses what is over Klaviyo's documented limits", function()
    local props = {}
    for i = 1, 401 do props["p" .. i] = i end
    refused_unsent("/data/attributes/properties", function()
      return client:call("create_event", { body = S.event_body("l@example.com", "Checked",
        { properties = props }) })
    end)
    local ids = {}
    for i = 1, 1001 do ids[i] = { type = "profile", id = "P" .. i } end
    local err = refused_unsent("/data", function()
      return client:call("add_profiles_to_list", { id = "X1", body = { data = ids } })
    end)
    assert.equal("at most 1000 profiles", err.expected)
    local entry = { type = "event-bulk-create", attributes = {
      profile = { data = { type = "profile", attributes = { email = "b@example.com" } } },
      events = { data = {} } } }
    for i = 1, 1001 do
      entry.attributes.events.data[i] = { type = "event", attributes = { properties = {},
        metric = { data = { type = "metric", attributes = { name = "Bulk" } } } } }
    end
    refused_unsent("/data/attributes/events-bulk-create/data/0/attributes/events/data", function()
      return client:call("bulk_create_events", { body = { data = { type = "event-bulk-create-job",
        attributes = { ["events-bulk-create"] = { data = { entry } } } } } })
    end)
  end)

  it("validate = false, per client or per call, sends what the check would refuse", function()
    local off = S.client(nil, { validate = false, retry = { attempts = 1 } })
    local mark = S.mark()
    local _, err = off:call("create_event", { body = no_identifier() })
    assert.equal(400, err.status)
    assert.equal(1, #S.since(mark))
    -- the call's option wins over the client's
    refused_unsent("/data/attributes/profile/data/attributes", function()
      return off:call("create_event", { body = no_identifier() }, { validate = true })
    end)
    off:close()
    mark = S.mark()
    _, err = client:call("create_event", { body = no_identifier() }, { validate = false })
    assert.equal(400, err.status)
    assert.equal(1, #S.since(mark))
    assert.has_error(function() S.klaviyo.new { validate = "no" } end,
      "klaviyo.new: option validate must be a boolean, got string")
    assert.has_error(function() client:call("create_event", {}, { validate = 1 }) end)
  end)

  it("leaves what JSON cannot hold to the encoder, which raises naming the path", function()
    local cyclic = {}
    cyclic.data = cyclic
    local mark = S.mark()
    local ok, msg = pcall(client.call, client, "create_event", { body = cyclic })
    assert.is_false(ok)
    assert.matches("parameter body: data: table contains itself", msg)
    -- a cycle along a schema that nests itself (a form's step holds steps), which the check
    -- would follow until the stack ends
    local form = minimal(body_schema.create_form)
    local step = form.data.attributes.definition.versions[1].steps[1]
    step.steps = { step }
    ok, msg = pcall(client.call, client, "create_form", { body = form })
    assert.is_false(ok)
    assert.matches("steps%[1%]%.steps%[1%]: table contains itself", msg)
    assert.same({}, S.since(mark))
  end)

  it("client:build refuses the same body", function()
    local req, err = client:build("create_event", { body = no_identifier() })
    assert.is_nil(req)
    assert.equal("/data/attributes/profile/data/attributes", err.pointer)
  end)

  it("a batch holding a refused request raises before anything is sent", function()
    local mark = S.mark()
    local ok, msg = pcall(client.batch, client, {
      { "create_event", { body = S.event_body("ok@example.com", "Checked") } },
      { "create_event", { body = no_identifier() } },
    })
    assert.is_false(ok)
    assert.matches("batch: request 2: .*/data/attributes/profile/data/attributes", msg)
    assert.same({}, S.since(mark))
  end)
end)
