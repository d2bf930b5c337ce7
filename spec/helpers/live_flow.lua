-- A live flow on a metric, made through a klaviyo client `c`: the metric named `metric` is made
-- first by a backfilled event (which starts nothing), then a flow triggered by it with one
-- day's time delay as its only action, so that the emulator counts a flow run for each later
-- event of the metric. Returns the flow's id and the metric's. Not a spec itself.
local klaviyo = require "klaviyo"

return function(c, metric, name)
  assert(c:call("create_event", { body = { data = { type = "event", attributes = {
    properties = {}, backfill = true, unique_id = "seed-" .. metric,
    metric = { data = { type = "metric", attributes = { name = metric } } },
    profile = { data = { type = "profile", attributes = { email = "seed@example.com" } } } } } } }))
  -- get_metrics cannot filter on name: metrics:find lists and picks
  local mid = assert(c.metrics:find(metric)).id
  local flow = assert(c:call("create_flow", { body = { data = { type = "flow", attributes = {
    name = name, definition = {
      triggers = { { type = "metric", id = mid } },
      actions = { { temporary_id = "d1", type = "time-delay", data = { unit = "days", value = 1 },
                    links = { next = klaviyo.null } } },
      entry_action_id = "d1" } } } } }))
  local fid = flow.data.id
  assert(c:call("update_flow", { id = fid,
    body = { data = { type = "flow", id = fid, attributes = { status = "live" } } } }))
  return fid, mid
end
