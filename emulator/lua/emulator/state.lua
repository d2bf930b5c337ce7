-- All in-memory state of the emulator: accounts, their keys and tokens, and the
-- per-account stores every handler works on. Plain tables only, so handlers and
-- the admin API share one picture and `state.reset()` forgets everything at once.
-- Runs inside nginx (LuaJIT) and under plain Lua (unit specs), hence no ngx at
-- load time.
local cjson = require "cjson.safe"

local null = cjson.null
local floor, random = math.floor, math.random
local concat, pairs, type = table.concat, pairs, type

local state = {}

-- Crockford base32: Klaviyo ids look like ULIDs (01GDDKASAP8TKDDA2GRZDSVP4H).
local B32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
local ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

local clock
do
  local ok_ngx = rawget(_G, "ngx")
  if ok_ngx and ok_ngx.now then
    clock = ok_ngx.now
  else
    local ok, socket = pcall(require, "socket")
    if ok and socket.gettime then clock = socket.gettime else clock = os.time end
  end
end

--- Epoch seconds (float, millisecond resolution inside nginx).
function state.now() return clock() end

--- ISO-8601 in UTC with an explicit offset, as Klaviyo writes datetimes.
function state.iso(t)
  return os.date("!%Y-%m-%dT%H:%M:%S+00:00", floor(t or clock()))
end

local function random_chars(alphabet, n)
  local out, len = {}, #alphabet
  for i = 1, n do
    local k = random(1, len)
    out[i] = alphabet:sub(k, k)
  end
  return concat(out)
end
state.random_chars = random_chars

local B32_CHARS, B32_PAIRS = {}, {}
for i = 1, 32 do B32_CHARS[i] = B32:sub(i, i) end
for i = 0, 1023 do
  B32_PAIRS[i] = B32_CHARS[math.floor(i / 32) + 1] .. B32_CHARS[i % 32 + 1]
end

local last_ms, seq, prefix = -1, 0, ""
--- A 26-character ULID-like id: 10 chars of milliseconds, 6 of a counter, 10
-- random. Ids made in the same millisecond still sort by creation, which
-- pagination relies on. Cheap (two characters per table lookup): create_event
-- makes one per request.
function state.new_id()
  local ms = floor(clock() * 1000)
  if ms == last_ms then
    seq = seq + 1
  else
    last_ms, seq = ms, 0
    local t, out = ms, {}
    for i = 10, 1, -1 do
      local d = t % 32
      out[i] = B32_CHARS[d + 1]
      t = (t - d) / 32
    end
    prefix = concat(out)
  end
  local s = seq
  local p3 = s % 1024; s = (s - p3) / 1024
  local p2 = s % 1024; s = (s - p2) / 1024
  local p1 = s % 1024
  local P = B32_PAIRS
  return prefix .. P[p1] .. P[p2] .. P[p3] .. P[random(0, 1023)] .. P[random(0, 1023)] ..
    P[random(0, 1023)] .. P[random(0, 1023)] .. P[random(0, 1023)]
end

-- Every operation's scopes, collected once so a default account may do anything.
local ALL_SCOPES
local function all_scopes()
  if not ALL_SCOPES then
    ALL_SCOPES = {}
    local ok, ops = pcall(require, "klaviyo.operations")
    if ok then
      for _, op in pairs(ops) do
        for _, s in pairs(op.scopes or {}) do ALL_SCOPES[s] = true end
      end
    end
  end
  local copy = {}
  for s in pairs(ALL_SCOPES) do copy[s] = true end
  return copy
end

-- Registry of accounts and the credentials that lead to them.
local accounts, by_private, by_public, by_access, by_refresh, by_client

function state.reset()
  accounts, by_private, by_public, by_access, by_refresh, by_client = {}, {}, {}, {}, {}, {}
  state.accounts = accounts
  state.generation = (state.generation or 0) + 1
end

--- Creates an account. `opts.scopes` (array or set) limits what its keys may do;
-- default: every scope of the spec. Returns the account table.
function state.new_account(opts)
  opts = opts or {}
  local scopes
  if opts.scopes then
    scopes = {}
    for k, v in pairs(opts.scopes) do
      if type(k) == "number" then scopes[v] = true elseif v then scopes[k] = true end
    end
  else
    scopes = all_scopes()
  end
  local acct = {
    id = state.new_id(),
    private_key = "pk_" .. random_chars("0123456789abcdef", 34),
    public_key = random_chars(ALNUM, 6),
    client_id = "emu-client-" .. random_chars(ALNUM, 16),
    client_secret = random_chars(ALNUM, 40),
    scopes = scopes,
    created = clock(),
    -- stores
    profiles = {}, profile_order = {},
    profile_index = { email = {}, phone_number = {}, external_id = {} },
    events = {}, event_keys = {}, events_by_id = {},
    metrics = {}, metric_by_name = {}, metric_order = {},
    lists = {}, list_members = {},
    segments = {}, segment_members = {},
    flows = {}, flow_runs = {},
    jobs = {},
  }
  while by_public[acct.public_key] do acct.public_key = random_chars(ALNUM, 6) end
  accounts[acct.id] = acct
  by_private[acct.private_key] = acct
  by_public[acct.public_key] = acct
  by_client[acct.client_id] = acct
  state.issue_tokens(acct)
  return acct
end

--- Issues a fresh OAuth access token (earlier ones stay valid until expired
-- or revoked, as with Klaviyo's one-hour tokens) and, unless keep_refresh, a
-- new refresh token replacing the old one.
function state.issue_tokens(acct, keep_refresh)
  acct.access_tokens = acct.access_tokens or {}
  acct.access_token = "emu_at_" .. random_chars(ALNUM, 40)
  acct.access_tokens[acct.access_token] = true
  by_access[acct.access_token] = acct
  if not keep_refresh then
    if acct.refresh_token then by_refresh[acct.refresh_token] = nil end
    acct.refresh_token = "emu_rt_" .. random_chars(ALNUM, 40)
    by_refresh[acct.refresh_token] = acct
  end
  return acct.access_token, acct.refresh_token
end

--- Makes every current access token (of acct, or of all accounts) answer 401.
-- Refresh tokens stay valid, so a client can get a new access token.
function state.expire_tokens(acct)
  for _, a in pairs(acct and { acct } or accounts) do
    for t in pairs(a.access_tokens or {}) do by_access[t] = nil end
    a.access_tokens = {}
    a.access_token = nil
  end
end

--- Revokes a token (access or refresh). Returns true when it existed.
function state.revoke_token(token)
  local a = by_access[token]
  if a then
    by_access[token] = nil
    a.access_tokens[token] = nil
    if a.access_token == token then a.access_token = nil end
    return true
  end
  a = by_refresh[token]
  if a then by_refresh[token] = nil; a.refresh_token = nil; return true end
  return false
end

function state.account(id) return accounts[id] end
function state.account_for_private_key(k) return by_private[k] end
function state.account_for_public_key(k) return by_public[k] end
function state.account_for_access_token(t) return by_access[t] end
function state.account_for_refresh_token(t) return by_refresh[t] end
function state.account_for_client_id(c) return by_client[c] end

---------------------------------------------------------------- profiles

local IDENTS = { "email", "phone_number", "external_id" }
state.IDENTIFIERS = IDENTS

--- Finds a profile by one of id/email/phone_number/external_id (first present).
function state.find_profile(acct, ident)
  if ident.id ~= nil and ident.id ~= null then return acct.profiles[ident.id] end
  local idx = acct.profile_index
  for i = 1, 3 do
    local k = IDENTS[i]
    local v = ident[k]
    if v ~= nil and v ~= null then
      local id = idx[k][v]
      if id then return acct.profiles[id] end
    end
  end
  return nil
end

-- Returns the profile owning any of the identifiers in attrs other than `self`.
local function conflicting(acct, attrs, self)
  local idx = acct.profile_index
  for i = 1, 3 do
    local k = IDENTS[i]
    local v = attrs[k]
    if type(v) == "string" then
      local id = idx[k][v]
      if id and (not self or id ~= self.id) then return acct.profiles[id], k end
    end
  end
  return nil
end
state.conflicting_profile = conflicting

-- Merges `src` into `dst` key by key: cjson.null deletes, tables merge shallowly
-- (location, properties), everything else replaces.
local function merge_into(dst, src)
  for k, v in pairs(src) do
    if v == null then dst[k] = nil else dst[k] = v end
  end
end

local NESTED = { location = true, properties = true }

-- Applies attributes to a profile keeping the identifier indexes right.
local function apply(acct, p, attrs)
  local idx = acct.profile_index
  for k, v in pairs(attrs) do
    if k ~= "id" then
      local index = idx[k]
      if index then
        local old = p[k]
        if old ~= v then -- unchanged identifiers (the common case) cost nothing
          if old ~= nil then index[old] = nil end
          if v == null then p[k] = nil else p[k] = v; index[v] = p.id end
        end
      elseif NESTED[k] and type(v) == "table" then
        p[k] = p[k] or {}
        merge_into(p[k], v)
      elseif v == null then
        if NESTED[k] then p[k] = {} else p[k] = nil end
      else
        p[k] = v
      end
    end
  end
  p.updated = clock()
end
state.apply_profile_attributes = apply

--- Creates a profile from flat attributes (no duplicate check: callers decide).
function state.create_profile(acct, attrs)
  local now = clock()
  local p = { id = state.new_id(), properties = {}, location = {}, created = now, updated = now }
  acct.profiles[p.id] = p
  acct.profile_order[#acct.profile_order + 1] = p.id
  apply(acct, p, attrs)
  return p
end

--- Upserts by any identifier (id first, then email, phone_number, external_id).
-- JSON null clears a field, an absent field is left alone. Returns profile,
-- created; or nil, "conflict", other_profile when an identifier being set
-- belongs to a different profile; or nil, "not_found" for an unknown id.
function state.upsert_profile(acct, attrs)
  local p
  if attrs.id ~= nil and attrs.id ~= null then
    p = acct.profiles[attrs.id]
    if not p then return nil, "not_found" end
  else
    p = state.find_profile(acct, attrs)
  end
  if p then
    local other = conflicting(acct, attrs, p)
    if other then return nil, "conflict", other end
    apply(acct, p, attrs)
    return p, false
  end
  return state.create_profile(acct, attrs), true
end

--- Removes a profile (merge source) and its index entries.
function state.delete_profile(acct, p)
  local idx = acct.profile_index
  for i = 1, 3 do
    local k = IDENTS[i]
    if p[k] ~= nil and idx[k][p[k]] == p.id then idx[k][p[k]] = nil end
  end
  acct.profiles[p.id] = nil
  local order = acct.profile_order
  for i = #order, 1, -1 do
    if order[i] == p.id then table.remove(order, i) break end
  end
end

---------------------------------------------------------------- metrics

--- The metric named `name`, created on first use. Returns metric, created.
function state.metric_for_name(acct, name)
  local m = acct.metric_by_name[name]
  if m then return m, false end
  local now = clock()
  m = { id = state.new_id(), name = name, created = now, updated = now,
        integration = { object = "integration", id = "0eMvjm", name = "API", category = "API" } }
  acct.metrics[m.id] = m
  acct.metric_by_name[name] = m
  acct.metric_order[#acct.metric_order + 1] = m.id
  return m, true
end

state.reset()
return state
