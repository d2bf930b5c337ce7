-- klaviyo.cli.verbs: the verbs that send, each thin over the library: `call` and `pages` over
-- client:call and client:paginate, the others over the idiomatic modules (events, profiles,
-- subscriptions, lists, flows), which refuse locally what Klaviyo would refuse. Each verb
-- takes (client, parsed command line) and returns true or nil, err.
local format, sub, tonumber = string.format, string.sub, tonumber

local operations = require "klaviyo.operations"
local args = require "klaviyo.cli.args"
local out = require "klaviyo.cli.output"
local cparams = require "klaviyo.cli.params"

local _M = {}

local IDENTIFIERS = { id = true, email = true, phone_number = true, external_id = true }

-- A module bound to c (the client, or the dry-run stand-in).
local function module(c, name)
  return require(name).new(c)
end

-- `name=value` gives a string; `name:=JSON` a JSON value (number, true, an object...).
local function value_of(name, value)
  if sub(name, -1) == ":" then
    local v, err = out.decode(value)
    if v == nil then return nil, nil, out.usage(format("%s= is not JSON: %s", name, tostring(err))) end
    return sub(name, 1, -2), v
  end
  return name, value
end

-- The name=value (and name:=JSON) words as name -> value, or nil, err: a name given twice is
-- a usage error (one of the two would be dropped without a word).
local function named(cmd)
  local t = {}
  for _, p in ipairs(cmd.pairs) do
    local name, value, err = value_of(p[1], p[2])
    if err then return nil, err end
    if t[name] ~= nil then return nil, out.usage(format("%s: %s= given twice", cmd.words[1], name)) end
    t[name] = value
  end
  return t
end

-- The --properties @file (or -) object, or {} when not given.
local function properties_of(opts)
  if not opts.properties then return {} end
  local text, msg = args.source(opts.properties, "--properties")
  if not text then return nil, out.usage(msg) end
  local v, err = out.decode(text)
  if type(v) ~= "table" then return nil, out.usage("--properties is not a JSON object: " .. tostring(err)) end
  return v
end

-- The OPERATION word and the parameters given for it: op_id, params | nil, err.
local function operation(cmd, verb)
  local op_id = cmd.words[2]
  if not op_id then return nil, out.usage(verb .. " needs an OPERATION (klaviyo ops lists them)") end
  if not operations[op_id] then return nil, out.usage(format("unknown operation %q (klaviyo ops)", op_id)) end
  local params, err = cparams.build(op_id, cmd.pairs, cmd.opts)
  if not params then return nil, err end
  return op_id, params
end

function _M.call(c, cmd)
  local op_id, params = operation(cmd, "call")
  if not op_id then return nil, params end
  local doc, cerr = c:call(op_id, params)
  if doc == nil then return nil, cerr end
  if doc == true then doc = out.null end
  out.json(doc)
  return true
end

function _M.pages(c, cmd)
  local op_id, params = operation(cmd, "pages")
  if not op_id then return nil, params end
  for item, ierr in c:paginate(op_id, params) do
    if not item then return nil, ierr end
    -- output that cannot be written ends the walk (main reports it): no more pages asked for
    if not out.json(item, true) then break end
  end
  return true
end

function _M.track(c, cmd)
  local metric = cmd.words[2]
  if not metric then return nil, out.usage("track needs a METRIC name") end
  local props, perr = properties_of(cmd.opts)
  if not props then return nil, perr end
  local given, gerr = named(cmd)
  if not given then return nil, gerr end
  local profile = {}
  for name, value in pairs(given) do
    if IDENTIFIERS[name] then profile[name] = value else props[name] = value end
  end
  local o = cmd.opts
  local value = o.value and tonumber(o.value)
  if o.value and not value then return nil, out.usage("--value must be a number, got " .. o.value) end
  local time = o.time and (tonumber(o.time) or o.time)
  local uid, err = module(c, "klaviyo.events"):create{ metric = metric, profile = profile,
    properties = next(props) and props or nil, unique_id = o["unique-id"], value = value,
    value_currency = o["value-currency"], time = time, backfill = o.backfill or nil }
  if not uid then return nil, err end
  out.json({ unique_id = uid })
  return true
end

-- Name=value words as a flat profile (identifiers and attributes), --properties as its
-- custom properties.
local function flat_profile(cmd)
  local p, err = named(cmd)
  if not p then return nil, err end
  if cmd.opts.properties then
    local props, perr = properties_of(cmd.opts)
    if not props then return nil, perr end
    p.properties = props
  end
  return p
end

function _M.profile(c, cmd)
  local sub_verb = cmd.words[2]
  local p, perr = flat_profile(cmd)
  if not p then return nil, perr end
  local profiles = module(c, "klaviyo.profiles")
  if sub_verb == "get" then
    local prof, err = profiles:get(p)
    if not prof then return nil, err end
    prof._document = nil
    out.json(prof)
  elseif sub_verb == "upsert" then
    local prof, created = profiles:upsert(p)
    if not prof then return nil, created end
    out.json({ profile = prof, created = created })
  else
    return nil, out.usage("profile takes get or upsert")
  end
  return true
end

local function consent_args(cmd, allowed)
  for _, pair in ipairs(cmd.pairs) do
    if not allowed[pair[1]] then
      return nil, out.usage(format("%s takes email=, phone_number= and list=, not %s=",
        cmd.words[1], pair[1]))
    end
  end
  local s, err = named(cmd)
  if not s then return nil, err end
  if s.list and cmd.opts.list then
    return nil, out.usage(format("%s: list= given twice (list= and --list)", cmd.words[1]))
  end
  s.list = s.list or cmd.opts.list
  return s
end

function _M.subscribe(c, cmd)
  local s, err = consent_args(cmd, { email = true, phone_number = true, list = true })
  if not s then return nil, err end
  local o = cmd.opts
  -- the flags qualify an opt-in record (--transactional an SMS one): alone they would be dropped
  for _, flag in ipairs({ "historical", "transactional" }) do
    if o[flag] and not (o.source or o["consented-at"]) then
      return nil, out.usage(format("subscribe: --%s goes with --consented-at and --source", flag))
    end
  end
  if o.transactional and not s.phone_number then
    return nil, out.usage("subscribe: --transactional is for SMS consent and needs phone_number=")
  end
  if o.source or o["consented-at"] then
    local at = o["consented-at"]
    if at == "now" then at = os.time() end
    local rec = { consented_at = tonumber(at) or at, source = o.source,
                  historical = o.historical or nil }
    if s.phone_number then
      s.sms_consent = { consented_at = rec.consented_at, source = rec.source,
                        historical = rec.historical, transactional = o.transactional or nil }
    end
    if s.email then s.email_consent = rec end
  end
  local ok, serr = module(c, "klaviyo.subscriptions"):subscribe(s)
  if not ok then return nil, serr end
  out.json({ accepted = true })
  return true
end

function _M.unsubscribe(c, cmd)
  local s, err = consent_args(cmd, { email = true, phone_number = true, list = true })
  if not s then return nil, err end
  local ok, serr = module(c, "klaviyo.subscriptions"):unsubscribe(s)
  if not ok then return nil, serr end
  out.json({ accepted = true })
  return true
end

function _M.list(c, cmd)
  local sub_verb, list_id = cmd.words[2], cmd.words[3]
  if (sub_verb ~= "add" and sub_verb ~= "remove") or not list_id then
    return nil, out.usage("list add|remove LIST_ID PROFILE_ID...")
  end
  local ids = {}
  for i = 4, #cmd.words do
    for _, id in ipairs(args.split(cmd.words[i])) do ids[#ids + 1] = id end
  end
  if #ids == 0 then return nil, out.usage("list " .. sub_verb .. " needs at least one PROFILE_ID") end
  local lists = module(c, "klaviyo.lists")
  local n, err = lists[sub_verb](lists, list_id, ids)
  if not n then return nil, err end
  out.json({ profiles = n })
  return true
end

local STATUSES = { draft = true, manual = true, live = true }

function _M.flow(c, cmd)
  local sub_verb, id, status = cmd.words[2], cmd.words[3], cmd.words[4]
  if sub_verb ~= "status" or not id then return nil, out.usage("flow status FLOW_ID [draft|manual|live]") end
  if status and not STATUSES[status] then
    return nil, out.usage("flow status: status must be draft, manual or live, got " .. status)
  end
  local flows = module(c, "klaviyo.flows")
  local flow, err
  if status then flow, err = flows:set_status(id, status) else flow, err = flows:get(id) end
  if not flow then return nil, err end
  out.json({ id = flow.id, name = flow.name, status = flow.status })
  return true
end

return _M
