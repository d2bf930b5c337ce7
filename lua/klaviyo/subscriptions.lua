--- Consent: subscribe and unsubscribe (email, SMS), suppress and unsuppress, back in stock.
--
--    local consent = client.consent
--    assert(consent:subscribe{
--      email = "ann@example.com",                       -- email marketing
--      phone_number = "+15005550006",                   -- SMS marketing needs...
--      sms_consent = { consented_at = os.time(),        -- ...when consent was given
--                      source = "checkout checkbox" },  -- ...and how
--      list = list_id,
--    })
--
-- SMS consent is a legal record (TCPA): without a phone number in E.164 and an opt-in record
-- saying when (`consented_at`) and how (`source`) consent was captured, nothing is sent and
-- the error says what is missing. Email consent is implied by giving an email address
-- (`email_consent = false` to leave email alone; a record table is optional). A live consent
-- (captured within the last day) is stamped by Klaviyo on arrival, with `source` kept as its
-- custom source; consent captured earlier is an import of past consent and must say
-- `historical = true` in its record, which sends `consented_at` with Klaviyo's
-- `historical_import` flag. Adding a profile to a list (`lists:add`) never changes consent;
-- this does.
-- @module klaviyo.subscriptions
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"

local type, error, tostring = type, error, tostring
local format = string.format
local concat = table.concat

-- The module's functions, and the methods of the object `new(client)` returns.
---@class klaviyo.subscriptions
local _M, mt = R.methods("subscriptions")

local RECORD_KEYS = V.set({ "consented_at", "source", "historical", "transactional" })

-- How old a live (non-historical) consent may be: older records are imports of past consent
-- and must say so (`historical = true`), because Klaviyo then treats them differently (it
-- stores their consented_at and starts no "joined list" flows).
local LIVE_WINDOW = 86400

-- Check an opt-in record {consented_at=, source=, historical=}. Returns
-- {at = ISO time, source =, historical =} (false when there is no record and none is
-- required), or nil, message. Wrong Lua types raise (level: the user's call).
local function opt_in(rec, channel, required, now)
  if rec == nil or rec == true then
    if required then
      return nil, channel .. " consent needs an opt-in record: " .. channel ..
        "_consent = { consented_at = <when consent was captured>, source = <how, e.g. " ..
        "\"checkout checkbox\"> }"
    end
    return false
  end
  if type(rec) ~= "table" then
    error(format("consent:subscribe: %s_consent must be a table {consented_at=, source=}, " ..
      "true or false", channel), 4)
  end
  V.known(rec, RECORD_KEYS, "consent:subscribe (" .. channel .. "_consent)", 5)
  local missing = {}
  if rec.consented_at == nil then missing[#missing + 1] = "consented_at (when)" end
  if rec.source == nil or rec.source == "" then missing[#missing + 1] = "source (how)" end
  if #missing > 0 then
    return nil, channel .. " opt-in record is missing " .. concat(missing, " and ")
  end
  if type(rec.source) ~= "string" then
    error(format("consent:subscribe: %s_consent.source must be a string", channel), 4)
  end
  if rec.historical ~= nil and type(rec.historical) ~= "boolean" then
    error(format("consent:subscribe: %s_consent.historical must be a boolean", channel), 4)
  end
  local t, msg = V.parse_time(rec.consented_at)
  if not t then return nil, channel .. " consent: " .. msg end
  now = now or os.time()
  if t > now + 300 then
    return nil, channel .. " consent: consented_at " .. V.iso(t) .. " is in the future"
  end
  if not rec.historical and t < now - LIVE_WINDOW then
    return nil, channel .. " consent: consented_at " .. V.iso(t) .. " is more than a day " ..
      "old; importing past consent needs historical = true in the opt-in record"
  end
  return { at = V.iso(t), source = rec.source, historical = rec.historical or false }
end

-- The refusal for an email or phone number (E.164) Klaviyo would reject; nil when valid.
local function bad_email(op, email)
  if not V.is_email(email) then
    return V.refuse(op, "email is not a valid address: " .. tostring(email), "/email")
  end
end

local function bad_phone(op, phone)
  if not V.is_e164(phone) then
    return V.refuse(op, "phone_number must be in E.164 format (e.g. +15005550006), got " ..
      tostring(phone), "/phone_number")
  end
end

--- Check a subscribe request and build the profile attributes with their `subscriptions`
-- (shared by `consent:subscribe` and `client_api:subscribe`). `consented_at` is sent only
-- for historical records (Klaviyo accepts it only with `historical_import`); a live consent
-- is stamped by Klaviyo when it arrives, and its `source` is sent as `custom_source`.
-- @local
-- @return attrs, custom_source, historical; or nil, err
---@param s table the subscribe request
---@param op string the operation id
---@return table|nil attrs
---@return string|klaviyo.Error|nil custom_source_or_err
---@return boolean? historical
function _M.consent_profile(s, op)
  if s.email == nil and s.phone_number == nil then
    return nil, V.refuse(op, "subscribe needs an email and/or a phone_number (E.164)")
  end
  -- an opt-in record for a channel without its identifier would be dropped unsent while the
  -- call reports success: the caller believes a consent was recorded that was not
  if s.phone_number == nil and s.sms_consent ~= nil and s.sms_consent ~= false then
    return nil, V.refuse(op, "sms_consent needs a phone_number (E.164) to subscribe",
      "/sms_consent")
  end
  if s.email == nil and s.email_consent ~= nil and s.email_consent ~= false then
    return nil, V.refuse(op, "email_consent needs an email to subscribe", "/email_consent")
  end
  local attrs, subs, records = {}, {}, {}
  if s.email ~= nil and s.email_consent ~= false then
    local bad = bad_email(op, s.email)
    if bad then return nil, bad end
    local rec, msg = opt_in(s.email_consent, "email", false)
    if rec == nil then return nil, V.refuse(op, msg, "/email_consent") end
    attrs.email = s.email
    subs.email = { marketing = { consent = "SUBSCRIBED" } }
    if rec then records[#records + 1] = { rec, subs.email.marketing } end
  end
  if s.phone_number ~= nil then
    local bad = bad_phone(op, s.phone_number)
    if bad then return nil, bad end
    attrs.phone_number = s.phone_number
    if s.sms_consent ~= false then
      local rec, msg = opt_in(s.sms_consent, "sms", true)
      if not rec then return nil, V.refuse(op, msg, "/sms_consent") end
      subs.sms = { marketing = { consent = "SUBSCRIBED" } }
      records[#records + 1] = { rec, subs.sms.marketing }
      if s.sms_consent.transactional then
        subs.sms.transactional = { consent = "SUBSCRIBED" }
        records[#records + 1] = { rec, subs.sms.transactional }
      end
    end
  end
  if subs.email == nil and subs.sms == nil then
    return nil, V.refuse(op, "nothing to subscribe: every channel was switched off")
  end
  local source, historical
  for i = 1, #records do
    local rec, target = records[i][1], records[i][2]
    if source and source ~= rec.source then
      error("consent:subscribe: email_consent.source and sms_consent.source differ; Klaviyo " ..
        "keeps one source per request: subscribe them in two calls", 3)
    end
    if historical ~= nil and historical ~= rec.historical then
      error("consent:subscribe: one request is either a historical import or a live " ..
        "consent: subscribe email and SMS in two calls", 3)
    end
    source, historical = rec.source, rec.historical
    if rec.historical then target.consented_at = rec.at end
  end
  attrs.subscriptions = subs
  return attrs, source, historical or false
end

--- Send one resource (`data`) with `op`, related to the list `list_id` when one is given
-- (`consent:subscribe`, `consent:unsubscribe` and `client_api:subscribe` share it).
-- @local
---@return boolean # true, or nil, err
---@param client klaviyo.Client
---@param op string the operation id
---@param data table the resource
---@param list_id string? the list
function _M.send_to_list(client, op, data, list_id)
  if list_id ~= nil then
    data.relationships = { list = { data = { type = "list", id = list_id } } }
  end
  local ok, err = client:call(op, { body = { data = data } })
  if not ok then return nil, err end
  return true
end

local SUB_KEYS = V.set({ "email", "phone_number", "list", "email_consent", "sms_consent" })

--- Subscribe one profile to email and/or SMS marketing (`bulk_subscribe_profiles`).
---@param s table `email` and/or `phone_number` (E.164); `list` (list id, optional: the
--   profile also joins it); `email_consent` (default true when an email is given; false skips
--   email; or an opt-in record table); `sms_consent` (required with a phone number: the
--   opt-in record `{consented_at=, source=, historical=?, transactional=?}`, or false to skip
--   SMS). An opt-in record: `consented_at` (when: epoch seconds or ISO 8601, within the last
--   day unless `historical = true`), `source` (how, e.g. "checkout checkbox").
---@return boolean # true (Klaviyo accepted the job), or nil, err
function _M:subscribe(s)
  V.self(self, mt, "consent:subscribe")
  V.table_arg(s, SUB_KEYS, "consent:subscribe", 1)
  local op = "bulk_subscribe_profiles"
  local attrs, source, historical = _M.consent_profile(s, op)
  if not attrs then return nil, source end
  local data = { type = "profile-subscription-bulk-create-job", attributes = {
    profiles = { data = { { type = "profile", attributes = attrs } } },
    custom_source = source,
    historical_import = historical or nil,
  } }
  if s.list ~= nil then
    V.argcheck(type(s.list) == "string" and s.list ~= "", "consent:subscribe", 1,
      "list id string in list", s.list)
  end
  return _M.send_to_list(self.client, op, data, s.list)
end

local UNSUB_KEYS = V.set({ "email", "phone_number", "list" })

--- Unsubscribe one profile from email and/or SMS marketing (`bulk_unsubscribe_profiles`).
---@param s table `email` (email marketing), `phone_number` (E.164; SMS marketing), `list`
---@return boolean # true, or nil, err
function _M:unsubscribe(s)
  V.self(self, mt, "consent:unsubscribe")
  V.table_arg(s, UNSUB_KEYS, "consent:unsubscribe", 1)
  local op = "bulk_unsubscribe_profiles"
  local attrs, subs = {}, {}
  if s.email ~= nil then
    local bad = bad_email(op, s.email)
    if bad then return nil, bad end
    attrs.email = s.email
    subs.email = { marketing = { consent = "UNSUBSCRIBED" } }
  end
  if s.phone_number ~= nil then
    local bad = bad_phone(op, s.phone_number)
    if bad then return nil, bad end
    attrs.phone_number = s.phone_number
    subs.sms = { marketing = { consent = "UNSUBSCRIBED" } }
  end
  if attrs.email == nil and attrs.phone_number == nil then
    return nil, V.refuse(op, "unsubscribe needs an email and/or a phone_number (E.164)")
  end
  attrs.subscriptions = subs
  local data = { type = "profile-subscription-bulk-delete-job", attributes = {
    profiles = { data = { { type = "profile", attributes = attrs } } } } }
  return _M.send_to_list(self.client, op, data, s.list)
end

-- suppress/unsuppress share their body: emails, or a list/segment whose members are meant.
-- Its misuse errors name the method's caller: the methods call it as a statement, never as a
-- tail call.
local function suppression(self, op, jtype, fname, s)
  V.table_arg(s, V.set({ "email", "emails", "list", "segment" }), fname, 1, 4)
  local emails = s.emails or (s.email and { s.email }) or {}
  if type(emails) ~= "table" then error(fname .. ": emails must be an array of strings", 3) end
  local data = { type = jtype, attributes = {} }
  local n, hmsg, hptr = V.dense(emails, "/emails")
  if not n then return nil, V.refuse(op, hmsg, hptr) end
  if n > 0 then
    local profiles = {}
    for i = 1, n do
      if not V.is_email(emails[i]) then
        return nil, V.refuse(op, "not a valid email address: " .. tostring(emails[i]),
          "/emails/" .. (i - 1))
      end
      profiles[i] = { type = "profile", attributes = { email = emails[i] } }
    end
    data.attributes.profiles = { data = profiles }
  end
  if s.list then data.relationships = { list = { data = { type = "list", id = s.list } } } end
  if s.segment then
    data.relationships = data.relationships or {}
    data.relationships.segment = { data = { type = "segment", id = s.segment } }
  end
  if #emails == 0 and not s.list and not s.segment then
    return nil, V.refuse(op, fname .. " needs email, emails, list or segment")
  end
  local ok, err = self.client:call(op, { body = { data = data } })
  if not ok then return nil, err end
  return true
end

--- Suppress email addresses (`bulk_suppress_profiles`): no more email marketing to them.
---@param s table `email` or `emails` (array), or `list` / `segment` (their members)
---@return boolean # true, or nil, err
function _M:suppress(s)
  V.self(self, mt, "consent:suppress")
  local ok, err = suppression(self, "bulk_suppress_profiles", "profile-suppression-bulk-create-job",
    "consent:suppress", s)
  return ok, err
end

--- Lift a suppression (`bulk_unsuppress_profiles`).
---@param s table `email` or `emails`, or `list` / `segment`
---@return boolean # true, or nil, err
function _M:unsuppress(s)
  V.self(self, mt, "consent:unsuppress")
  local ok, err = suppression(self, "bulk_unsuppress_profiles", "profile-suppression-bulk-delete-job",
    "consent:unsuppress", s)
  return ok, err
end

local BIS_KEYS = V.set({ "variant", "channels", "email", "phone_number", "external_id", "id" })
local CHANNELS = V.set({ "EMAIL", "SMS", "PUSH", "WHATSAPP" })

--- Check, build and send a back-in-stock subscription (`consent:back_in_stock` and
-- `client_api:back_in_stock` share it). Call it from the method itself, not as a tail call:
-- programmer errors are raised at the method's caller.
-- @local
---@return boolean # true, or nil, err
---@param client klaviyo.Client
---@param s table the subscription
---@param fname string the calling method, for messages
---@param op string the operation id
function _M.send_back_in_stock(client, s, fname, op)
  V.table_arg(s, BIS_KEYS, fname, 1, 4)
  if type(s.variant) ~= "string" or s.variant == "" then
    return nil, V.refuse(op, "variant (the catalog variant id, e.g. " ..
      "\"$custom:::$default:::SKU-1\") is required", "/variant")
  end
  local channels = s.channels or { "EMAIL" }
  if type(channels) == "string" then channels = { channels } end
  if type(channels) ~= "table" or #channels == 0 then
    error(fname .. ": channels must be an array such as {\"EMAIL\", \"SMS\"}", 3)
  end
  local list = {}
  for i = 1, #channels do
    local c = type(channels[i]) == "string" and channels[i]:upper() or nil
    if not CHANNELS[c] then
      error(format("%s: unknown channel %s (EMAIL, SMS, PUSH or WHATSAPP)", fname,
        tostring(channels[i])), 3)
    end
    list[i] = c
    if c == "SMS" and not V.is_e164(s.phone_number) then
      return nil, V.refuse(op, "an SMS back-in-stock alert needs phone_number in E.164 " ..
        "(e.g. +15005550006)", "/phone_number")
    end
    if c == "EMAIL" and not V.is_email(s.email) and not s.id and not s.external_id then
      return nil, V.refuse(op, "an EMAIL back-in-stock alert needs an email address", "/email")
    end
  end
  local ok, msg, ptr = V.profile_identity({ id = s.id, email = s.email,
    phone_number = s.phone_number, external_id = s.external_id })
  if not ok then return nil, V.refuse(op, msg, ptr) end
  local attrs = { email = s.email, phone_number = s.phone_number, external_id = s.external_id }
  local kl = require "klaviyo"
  local done, err = client:call(op, { body = { data = { type = "back-in-stock-subscription",
    attributes = { channels = kl.array(list),
      profile = { data = { type = "profile", id = s.id, attributes = attrs } } },
    relationships = { variant = { data = { type = "catalog-variant", id = s.variant } } } } } })
  if not done then return nil, err end
  return true
end

--- Subscribe a profile to a back-in-stock alert for a catalog variant
-- (`create_back_in_stock_subscription`). SMS alerts need a phone number in E.164 (and the
-- profile's SMS consent, see `subscribe`).
---@param s table `variant` (catalog variant id), `channels` (default `{"EMAIL"}`), `email`,
--   `phone_number`, `external_id`, `id`
---@return boolean # true, or nil, err
function _M:back_in_stock(s)
  V.self(self, mt, "consent:back_in_stock")
  local ok, err = _M.send_back_in_stock(self.client, s, "consent:back_in_stock",
    "create_back_in_stock_subscription")
  return ok, err
end

return _M
