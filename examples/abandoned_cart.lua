-- Abandoned cart: a shopper starts checkout; a live flow triggered by "Started Checkout"
-- starts for them, once, even if the event is sent twice (a retry after a lost answer).
--
--   KLAVIYO_BASE_URL=http://127.0.0.1:8787 lua5.4 examples/abandoned_cart.lua
--
-- Against the emulator no key is needed (see example_env.lua). Against Klaviyo, set
-- KLAVIYO_API_KEY; the flow step then uses an existing "Started Checkout" flow if you have one.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local env = require "example_env"
local say, check = env.say, env.check
env.connect()

local METRIC = "Started Checkout"
local shopper = { email = ("cart+%d@example.com"):format(os.time()), first_name = "Grace" }

-- 1. The metric exists once Klaviyo recorded one event of it. A backfilled event records
--    history without starting flows, so it is a safe way to create the metric up front.
local metric = env.metrics:find(METRIC)
if not metric then
  check("backfill event", env.events:create{ metric = METRIC, backfill = true,
    profile = { email = "setup@example.com" }, properties = { setup = true } })
  metric = check("find metric", env.metrics:find(METRIC))
end
say("metric            %s  %s", metric.id, metric.name)

-- 2. A live flow triggered by the metric (on Klaviyo you would build it in the editor).
local flows = check("flows triggered by metric", env.flows:triggered_by{ metric = metric.id })
local flow = flows[1]
if not flow then
  flow = check("create flow", env.flows:create{ name = "Abandoned cart", status = "live",
    trigger = { metric = metric.id } })
end
say("flow              %s  %q is %s", flow.id, flow.name, flow.status)

-- 3. The shopper starts checkout: one event with the cart. The library gives it a
--    unique_id, so sending it again is harmless.
local cart = {
  metric = METRIC, profile = shopper, value = 84.50, value_currency = "EUR",
  properties = {
    checkout_url = "https://shop.example.com/checkout/abc123",
    items = { { sku = "TEA-01", name = "Green tea", quantity = 2, price = 12.25 },
              { sku = "POT-07", name = "Tea pot", quantity = 1, price = 60.00 } },
    item_count = 3,
  },
}
local uid = check("send Started Checkout", env.events:create(cart))
say("event sent        unique_id %s", uid)

-- 4. The same event again (as a retry would send it): recorded once, the flow starts once.
cart.unique_id = uid
check("resend", env.events:create(cart))
say("event resent      same unique_id: Klaviyo keeps the first only")

local runs = env.flow_runs()
if runs then
  local mine = 0
  for _, r in ipairs(runs) do if r.flow_id == flow.id then mine = mine + 1 end end
  say("flow runs         %d for %q (one per recorded event)", mine, flow.name)
  if mine ~= 1 then say("FAILED expected exactly one flow run"); os.exit(1) end
else
  say("flow runs         visible in Klaviyo's flow analytics (the emulator shows them here)")
end

-- 5. What Klaviyo would refuse never leaves the process.
local _, err = env.events:create{ metric = METRIC, profile = { first_name = "No identifier" } }
say("refused locally   %s", tostring(err))
say("done")
