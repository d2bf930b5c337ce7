-- Quickstart: create a profile, create a live flow triggered by a metric, send an event with
-- that metric, and see the flow run it started.
--
--   KLAVIYO_BASE_URL=http://127.0.0.1:8787 lua5.4 examples/quickstart.lua
--
-- Against the emulator (`make emulator`, or `make demo` which runs this script) no key is
-- needed: without KLAVIYO_API_KEY the script asks the emulator's admin API for a fresh
-- account. Against Klaviyo itself, set KLAVIYO_API_KEY (base URL defaults to
-- https://a.klaviyo.com); flow runs are only visible in the emulator, so that step says so.
-- Every step prints one line; any failure prints the error line and exits with status 1.
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local env = require "example_env"
local say, check = env.say, env.check

-- Without KLAVIYO_API_KEY, a fresh emulator account (see example_env.lua).
local client = env.connect()
local email = ("quickstart+%d@example.com"):format(os.time())
local metric_name = "Quickstart Signed Up"

-- 1. A profile. Errors are tables: a 409 names the profile that already holds the email.
local profile, perr = client:call("create_profile", { body = { data = { type = "profile",
  attributes = { email = email, first_name = "Ada", last_name = "Lovelace",
                 properties = { plan = "trial" } } } } })
local profile_id
if profile then
  profile_id = profile.data.id
elseif perr.status == 409 and perr.meta and perr.meta.duplicate_profile_id then
  profile_id = perr.meta.duplicate_profile_id
  say("profile exists    (%s)", tostring(perr))
else
  check("create_profile", nil, perr)
end
say("profile           %s <%s>", profile_id, email)

-- 2. The metric exists once an event used it: a backfilled event creates it without
-- triggering anything, then we look it up by name (Klaviyo filters metrics on their
-- integration only, so metrics:find lists them and picks).
check("create_event (backfill)", client:call("create_event", { body = { data = {
  type = "event", attributes = {
  metric = { data = { type = "metric", attributes = { name = metric_name } } },
  profile = { data = { type = "profile", attributes = { email = "setup@example.com" } } },
  properties = { setup = true }, backfill = true,
} } } }))
local metric = check("metrics:find", client.metrics:find(metric_name))
say("metric            %s %q", metric.id, metric_name)

-- 3. A flow triggered by that metric (created as a draft), then switched live.
local flow = check("create_flow", client:call("create_flow", { body = { data = { type = "flow", attributes = {
  name = "Quickstart welcome",
  definition = {
    triggers = { { type = "metric", id = metric.id } },
    actions = { { temporary_id = "wait", type = "time-delay",
                  data = { unit = "hours", value = 1, timezone = "profile" } } },
    entry_action_id = "wait",
  },
} } } }))
say("flow              %s %q (%s)", flow.data.id, flow.data.attributes.name, flow.data.attributes.status)
local live = check("update_flow", client:call("update_flow", { id = flow.data.id, body = { data = {
  type = "flow", id = flow.data.id, attributes = { status = "live" } } } }))
say("flow status       %s", live.data.attributes.status)

-- 4. The event that triggers it, with a unique_id so a retry could never fire it twice.
local unique_id = ("quickstart-%d"):format(os.time())
check("create_event", client:call("create_event", { body = { data = { type = "event",
  attributes = {
  metric = { data = { type = "metric", attributes = { name = metric_name } } },
  profile = { data = { type = "profile", attributes = { email = email } } },
  properties = { source = "examples/quickstart.lua" }, unique_id = unique_id,
} } } }))
say("event             %q for %s (unique_id %s)", metric_name, email, unique_id)

-- 5. The flow run it started (the emulator shows them; Klaviyo has no such API). Without our
-- own account id (key given in the environment) all accounts' runs are read and ours picked
-- by flow id.
if env.has_admin then
  local runs = env.flow_runs() or {}
  local n = 0
  for _, run in ipairs(runs) do
    if run.flow_id == flow.data.id then
      n = n + 1
      say("flow run          %s: flow %s for profile %s (trigger %s)", tostring(run.id),
        run.flow_id, tostring(run.profile_id), tostring(run.trigger))
    end
  end
  if n ~= 1 then say("FAILED expected exactly one flow run, saw %d", n); os.exit(1) end
else
  say("flow run          visible in Klaviyo's UI (the emulator's admin API is not available here)")
end
client:close()
say("done")
