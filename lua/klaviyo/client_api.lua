--- Client-side calls (`/client/*`), made with the public key (site ID) only.
--
--    local kl = klaviyo.new{ public_key = "AbC123" }   -- no private key: safe in a kiosk, an app
--    local uid = assert(kl.client_api:track{ metric = "Viewed Product",
--      profile = { email = "ann@example.com" }, properties = { sku = "A1" } })
--    assert(kl.client_api:identify{ email = "ann@example.com", first_name = "Ann" })
--    assert(kl.client_api:subscribe{ email = "ann@example.com", list = list_id })
--    assert(kl.client_api:back_in_stock{ variant = variant_id, channels = { "EMAIL" },
--      email = "ann@example.com" })
--
-- The same local checks as the server-side modules apply (identifiers, E.164, ingestion
-- limits, SMS opt-in records).
-- @module klaviyo.client_api
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"
local events = require "klaviyo.events"
local layout = require "klaviyo.event_layout"
local consent = require "klaviyo.subscriptions"

local type = type

-- The module's functions, and the methods of the object `new(client)` returns (a client made
-- with `public_key`).
---@class klaviyo.client_api
local _M, mt = R.methods("client_api")

--- Track an event from the client side (`create_client_event`); a `unique_id` is generated
-- when absent, so a resend is recorded once.
---@param ev table as `events:create` (`metric`, `profile`, `properties`, `value`, `time`,
--   `unique_id`, ...)
---@return string # the unique_id, or nil, err, unique_id
function _M:track(ev)
  V.self(self, mt, "client_api:track")
  local attrs, msg, ptr, uid = events.build(ev, "client_api:track", "", nil)
  if not attrs then
    return nil, V.refuse("create_client_event", msg, ptr), type(ev) == "table" and ev.unique_id
      or nil
  end
  local ok, err = self.client:call("create_client_event", { body = layout.event_body(attrs, msg) })
  if not ok then return nil, err, uid end
  return uid
end

--- Create or update a profile from the client side (`create_client_profile`).
---@param p table flat profile with an identifier (`email`, `phone_number` (E.164) or
--   `external_id`) and attributes
---@return boolean # true, or nil, err
function _M:identify(p)
  V.self(self, mt, "client_api:identify")
  V.argcheck(type(p) == "table", "client_api:identify", 1, "table", p)
  local op = "create_client_profile"
  local ok, msg, ptr = V.profile_identity(p, "")
  if not ok then return nil, V.refuse(op, msg, ptr) end
  local res = R.unflatten("profile", p)
  local size, vmsg, vptr = V.value(res.attributes, V.LIMITS)
  if not size then return nil, V.refuse(op, vmsg, vptr) end
  local done, err = self.client:call(op, { body = { data = res } })
  if not done then return nil, err end
  return true
end

local SUB_KEYS = V.set({ "email", "phone_number", "list", "email_consent", "sms_consent" })

--- Subscribe from the client side (`create_client_subscription`): a list is required; SMS
-- needs a phone number in E.164 and an opt-in record, as `consent:subscribe`.
---@param s table `list` (id, required), `email`, `phone_number`, `email_consent`,
--   `sms_consent = {consented_at=, source=}`
---@return boolean # true, or nil, err
function _M:subscribe(s)
  V.self(self, mt, "client_api:subscribe")
  V.table_arg(s, SUB_KEYS, "client_api:subscribe", 1)
  local op = "create_client_subscription"
  if type(s.list) ~= "string" or s.list == "" then
    return nil, V.refuse(op, "a client-side subscription needs the list to subscribe to", "/list")
  end
  local attrs, source, historical = consent.consent_profile(s, op)
  if not attrs then return nil, source end
  if historical then
    return nil, V.refuse(op, "a client-side subscription records consent given now; import " ..
      "past (historical) consent with consent:subscribe and a private key")
  end
  return consent.send_to_list(self.client, op, { type = "subscription",
    attributes = { custom_source = source,
      profile = { data = { type = "profile", attributes = attrs } } } }, s.list)
end

--- Ask to be told when a variant is back in stock (`create_client_back_in_stock_subscription`).
---@param s table `variant` (catalog variant id), `channels` (default `{"EMAIL"}`), `email`,
--   `phone_number` (E.164, needed for SMS), `external_id`
---@return boolean # true, or nil, err
function _M:back_in_stock(s)
  V.self(self, mt, "client_api:back_in_stock")
  local ok, err = consent.send_back_in_stock(self.client, s, "client_api:back_in_stock",
    "create_client_back_in_stock_subscription")
  return ok, err
end

return _M
