-- Consent state of profiles, stored on the profile in the spec's `Subscriptions` shape
-- (profile.subscriptions) so the profile serializer can emit it unchanged for
-- `additional-fields[profile]=subscriptions`. Only subscribing changes consent: adding a
-- profile to a list never does (Klaviyo keeps the two apart on purpose).
local cjson = require("cjson.safe")
local state = require("emulator.state")
local jsonapi = require("emulator.jsonapi")
local filter = require("emulator.filter")

local null = cjson.null
local type, ipairs, pairs, format = type, ipairs, pairs, string.format

local _M = {}

--- Consent of a profile that was never subscribed.
function _M.default()
  return {
    email = {marketing = {can_receive_email_marketing = false, consent = "NEVER_SUBSCRIBED"}},
    sms = {
      marketing = {can_receive_sms_marketing = false, consent = "NEVER_SUBSCRIBED"},
      transactional = {can_receive_sms_transactional = false, consent = "NEVER_SUBSCRIBED"},
    },
  }
end

--- What get_profile(s) shows for `additional-fields[profile]=subscriptions`.
function _M.view(profile)
  return profile.subscriptions or _M.default()
end

local function subs(profile)
  local s = profile.subscriptions
  if not s then
    s = _M.default()
    profile.subscriptions = s
  end
  return s
end

--- E.164: a plus, a non-zero country digit, at most 15 digits in all.
function _M.is_e164(s)
  return type(s) == "string" and s:match("^%+[1-9]%d+$") ~= nil and #s >= 8 and #s <= 16
end

-- Suppressions lifted by a new subscription (bounces and invalid addresses stay).
local LIFTED = {UNSUBSCRIBE = true, SPAM_COMPLAINT = true, USER_SUPPRESSED = true}

local function email_can_receive(m)
  return m.consent == "SUBSCRIBED" and not (m.suppression and m.suppression[1] ~= nil)
end

--- Records consent for `channel` ("email"|"sms") and `kind` ("marketing"|"transactional").
-- `at` is the ISO time consent was captured; `method` how (API, form, ...).
function _M.subscribe(profile, channel, kind, at, method, method_detail)
  local s = subs(profile)
  local now = state.iso(state.now())
  s[channel] = s[channel] or {}
  local c = s[channel][kind] or {}
  s[channel][kind] = c
  c.consent = "SUBSCRIBED"
  c.consent_timestamp = at or now
  c.last_updated = now
  c.method = method or "API"
  c.method_detail = method_detail
  if channel == "email" then
    if c.suppression then
      local kept = {}
      for _, sup in ipairs(c.suppression) do
        if not LIFTED[sup.reason] then kept[#kept + 1] = sup end
      end
      c.suppression = kept[1] and kept or nil
    end
    c.can_receive_email_marketing = email_can_receive(c)
  else
    c["can_receive_sms_" .. kind] = true
  end
end

--- Global unsubscribe of one channel/kind.
function _M.unsubscribe(profile, channel, kind, method)
  local s = subs(profile)
  local now = state.iso(state.now())
  s[channel] = s[channel] or {}
  local c = s[channel][kind] or {}
  s[channel][kind] = c
  c.consent = "UNSUBSCRIBED"
  c.consent_timestamp = now
  c.last_updated = now
  c.method = method or "API"
  if channel == "email" then
    c.can_receive_email_marketing = false
  else
    c["can_receive_sms_" .. kind] = false
  end
end

--- Unsubscribes email marketing from one list only (a list-level suppression).
function _M.list_unsubscribe(profile, list_id)
  local c = subs(profile).email.marketing
  local ls = c.list_suppressions or {}
  for _, x in ipairs(ls) do
    if x.list_id == list_id then return end
  end
  ls[#ls + 1] = {list_id = list_id, reason = "UNSUBSCRIBE", timestamp = state.iso(state.now())}
  c.list_suppressions = ls
  c.last_updated = state.iso(state.now())
end

--- Manual suppression (bulk_suppress_profiles): the profile cannot receive email
-- marketing whatever its consent.
function _M.suppress(profile)
  local c = subs(profile).email.marketing
  local sup = c.suppression or {}
  for _, x in ipairs(sup) do
    if x.reason == "USER_SUPPRESSED" then return end
  end
  sup[#sup + 1] = {reason = "USER_SUPPRESSED", timestamp = state.iso(state.now())}
  c.suppression = sup
  c.can_receive_email_marketing = false
  c.last_updated = state.iso(state.now())
end

--- Lifts only USER_SUPPRESSED; bounces, invalid addresses and unsubscribes remain.
function _M.unsuppress(profile)
  local c = profile.subscriptions and profile.subscriptions.email and
    profile.subscriptions.email.marketing
  if not c or not c.suppression then return end
  local kept = {}
  for _, x in ipairs(c.suppression) do
    if x.reason ~= "USER_SUPPRESSED" then kept[#kept + 1] = x end
  end
  c.suppression = kept[1] and kept or nil
  c.can_receive_email_marketing = email_can_receive(c)
  c.last_updated = state.iso(state.now())
end

local function present(v) return v ~= nil and v ~= null end

local function bad(pointer, detail) return jsonapi.invalid(detail, {pointer = pointer}) end

local function not_emulated(what)
  return jsonapi.error(501, "not_implemented", "Not implemented.",
    format("The Klaviyo emulator does not emulate %s consent.", what))
end

--- Channels a `subscriptions` object of a request asks for: list of {channel, kind, at}
-- (each consent must be `want`; `at` from consented_at, required and in the past for
-- historical imports). `attrs`/`profile` tell which identifiers the profile will have.
-- WhatsApp, push and open tracking answer 501 (not emulated). Returns channels or nil,
-- status, doc (pointers under `ptr`).
function _M.requested(asked, attrs, profile, ptr, want, historical)
  if type(asked) ~= "table" then
    return nil, bad(ptr, "Each profile needs a 'subscriptions' object.")
  end
  if present(asked.whatsapp) then return nil, not_emulated("WhatsApp") end
  if present(asked.push) then return nil, not_emulated("push") end
  local out = {}
  for _, ch in ipairs({"email", "sms"}) do
    local c = asked[ch]
    if present(c) then
      if type(c) ~= "table" then return nil, bad(ptr .. "/" .. ch, "must be an object") end
      for kind, v in pairs(c) do
        local p = ptr .. "/" .. ch .. "/" .. kind
        if ch == "email" and kind == "open_tracking" then
          return nil, not_emulated("email open tracking")
        end
        if not ((ch == "email" and kind == "marketing") or
                (ch == "sms" and (kind == "marketing" or kind == "transactional"))) then
          return nil, bad(p, format("Unknown subscription '%s.%s'.", ch, kind))
        end
        if type(v) ~= "table" or v.consent ~= want then
          return nil, bad(p .. "/consent", format("consent must be '%s'.", want))
        end
        local at
        if present(v.consented_at) then
          local t = filter.parse_datetime(v.consented_at)
          if not t then
            return nil, bad(p .. "/consented_at", "consented_at must be an ISO-8601 datetime.")
          end
          if historical and t > state.now() then
            return nil, bad(p .. "/consented_at", "consented_at must be in the past.")
          end
          at = state.iso(t)
        elseif historical then
          return nil, bad(p .. "/consented_at",
            "consented_at is required when historical_import is true.")
        end
        local ident = ch == "email" and "email" or "phone_number"
        local have = attrs[ident] or (profile and profile[ident])
        if not have then
          return nil, bad(p, ch == "email" and "Email consent needs an email address."
            or "SMS consent needs a phone_number in E.164.")
        end
        out[#out + 1] = {channel = ch, kind = kind, at = at}
      end
    end
  end
  if not out[1] then return nil, bad(ptr, "No channel to change was given.") end
  return out
end

return _M
