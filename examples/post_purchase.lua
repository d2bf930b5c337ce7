-- Post-purchase: an order is placed. One "Placed Order" event carries the order (items,
-- value) and triggers the thank-you flow; one "Ordered Product" event per line item feeds
-- product-level segments and recommendations, sent together as a bulk job.
--
--   KLAVIYO_BASE_URL=http://127.0.0.1:8787 lua5.4 examples/post_purchase.lua
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local env = require "example_env"
local say, check = env.say, env.check
env.connect()

local order = {
  id = ("ORD-%d"):format(os.time()),
  customer = { email = ("buyer+%d@example.com"):format(os.time()), first_name = "Ada",
               phone_number = "+15005550006", external_id = "crm-4711" },
  placed_at = os.time() - 30,
  currency = "EUR",
  items = {
    { sku = "TEA-01", name = "Green tea", quantity = 2, price = 12.25 },
    { sku = "POT-07", name = "Tea pot", quantity = 1, price = 60.00 },
    { sku = "CUP-02", name = "Cups (set of 4)", quantity = 1, price = 24.00 },
  },
}
local total = 0
for _, it in ipairs(order.items) do total = total + it.quantity * it.price end

-- The order id doubles as the unique_id: a webhook delivered twice records one order.
local uid = check("Placed Order", env.events:create{
  metric = "Placed Order", profile = order.customer, time = order.placed_at,
  value = total, value_currency = order.currency, unique_id = order.id,
  properties = { order_id = order.id, items = order.items, item_count = #order.items,
                 skus = { "TEA-01", "POT-07", "CUP-02" } },
})
say("Placed Order      %s  %.2f %s, %d items", uid, total, order.currency, #order.items)

local lines = {}
for i, it in ipairs(order.items) do
  lines[i] = { metric = "Ordered Product", profile = { email = order.customer.email },
    time = order.placed_at, value = it.quantity * it.price, value_currency = order.currency,
    unique_id = order.id .. ":" .. it.sku,
    properties = { order_id = order.id, sku = it.sku, name = it.name, quantity = it.quantity } }
end
local res = check("Ordered Product (bulk)", env.events:create_many(lines))
say("Ordered Product   %d events in %d bulk job(s)", res.events, res.jobs)

-- The profile now carries the identifiers the order had; read it back by external id.
local p = check("profile", env.profiles:get{ external_id = order.customer.external_id })
say("profile           %s  %s (%s)", p.id, p.email, p.first_name)

-- The events Klaviyo recorded for this profile (bulk jobs may take a moment).
local seen = 0
for _ = 1, 50 do
  seen = 0
  for e, err in env.events:each{ profile_id = p.id } do
    check("events", e, err)
    seen = seen + 1
  end
  if seen >= 1 + #order.items then break end
  require("socket").sleep(0.1)
end
say("events recorded   %d for this customer", seen)
if seen ~= 1 + #order.items then say("FAILED expected %d events", 1 + #order.items); os.exit(1) end

-- The same order delivered again by a retrying webhook: still one Placed Order.
check("Placed Order again", env.events:create{ metric = "Placed Order", profile = order.customer,
  time = order.placed_at, value = total, unique_id = order.id, properties = { order_id = order.id } })
local placed = 0
for e, err in env.events:each{ profile_id = p.id } do
  check("events", e, err)
  if e.event_properties.order_id == order.id and not e.event_properties.sku then
    placed = placed + 1
  end
end
say("after a resend    %d Placed Order event(s) for %s", placed, order.id)
if placed ~= 1 then os.exit(1) end
say("done")
