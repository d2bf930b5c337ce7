-- Back in stock by SMS: a shopper ticks "text me when it's back" on a sold-out product.
-- SMS marketing needs the phone number in E.164 and a record of consent (when and how it
-- was captured); without them the library sends nothing and says what is missing.
--
--   KLAVIYO_BASE_URL=http://127.0.0.1:8787 lua5.4 examples/back_in_stock_sms.lua
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local env = require "example_env"
local say, check = env.say, env.check
env.connect()

local phone = "+15005550006"
local variant = "$custom:::$default:::TEA-01-250G"  -- the catalog variant that sold out
local form = { ticked_at = os.time() - 5, source = "product page: notify-me checkbox" }

-- 1. What a careless integration would send is refused before the network.
local _, err = env.consent:subscribe{ phone_number = "(500) 555-0006",
  sms_consent = { consented_at = form.ticked_at, source = form.source } }
say("refused           %s", err.detail)
_, err = env.consent:subscribe{ phone_number = phone }
say("refused           %s", err.detail)

-- 2. SMS consent with its opt-in record: when and how the shopper agreed.
check("subscribe SMS", env.consent:subscribe{ phone_number = phone,
  sms_consent = { consented_at = form.ticked_at, source = form.source } })
local p = check("profile", env.profiles:get({ phone_number = phone }, { subscriptions = true }))
local sms = p.subscriptions.sms.marketing
say("sms consent       %s via %s (%s)", sms.consent, tostring(sms.method_detail or sms.method),
  tostring(sms.consent_timestamp))

-- 3. The back-in-stock alert itself, on the SMS channel.
check("back in stock", env.consent:back_in_stock{ variant = variant, channels = { "SMS" },
  phone_number = phone })
say("alert requested   %s by SMS for %s", phone, variant)

-- 4. Changed their mind: unsubscribe SMS marketing.
check("unsubscribe", env.consent:unsubscribe{ phone_number = phone })
p = check("profile", env.profiles:get({ phone_number = phone }, { subscriptions = true }))
say("sms consent       %s", p.subscriptions.sms.marketing.consent)
say("done")
