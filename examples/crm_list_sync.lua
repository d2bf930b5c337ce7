-- CRM list sync: mirror a CRM segment ("VIP customers", a few thousand rows) into a Klaviyo
-- list. Profiles go in through bulk import jobs (10,000 rows / 5 MB each, made by the
-- library); people who left the segment are removed 1000 at a time. Adding to a list does
-- not subscribe anyone: consent stays what it was.
--
--   KLAVIYO_BASE_URL=http://127.0.0.1:8787 lua5.4 examples/crm_list_sync.lua [rows]
package.path = (arg and arg[0] and arg[0]:match("^(.*)/[^/]*$") or ".") .. "/?.lua;" .. package.path
local env = require "example_env"
local say, check = env.say, env.check
env.connect{ no_limits = true }

local ROWS = tonumber(arg and arg[1]) or 3000

-- The CRM export: external ids, emails, names, and a property the campaigns use.
local function crm_row(i)
  return { external_id = ("crm-%06d"):format(i), email = ("vip%06d@example.com"):format(i),
           first_name = "Customer", last_name = tostring(i),
           properties = { crm_tier = i % 10 == 0 and "platinum" or "gold", crm_since = 2015 + i % 10 } }
end
local rows = {}
for i = 1, ROWS do rows[i] = crm_row(i) end

-- 1. The list (found by name, created on the first run).
local list = nil
for l, err in env.lists:each{ name = "VIP customers" } do list = check("lists", l, err) end
list = list or check("create list", env.lists:create{ name = "VIP customers" })
say("list              %s  %q", list.id, list.name)

-- 2. Import every row into the list, then wait for the jobs.
local started = os.time()
local import = check("import", env.profiles:import(rows, { list = list.id }))
say("import            %d rows in %d job(s)", ROWS, #import.jobs)
local jobs = check("wait", import:wait{ timeout = 120, interval = 0.2 })
local function count(x) return type(x) == "number" and ("%d"):format(x) or "?" end
for _, j in ipairs(jobs) do
  say("  job %s  %s  %s/%s done, %s failed", j.id, j.status, count(j.completed_count),
    count(j.total_count), count(j.failed_count))
end
for e, err in import:errors() do
  check("import errors", e, err)
  say("  import error: %s %s", tostring(e.code), tostring(e.detail))
end

-- 3. Read the members back (100 per page) and index them by external id.
local members, by_external = 0, {}
for p, err in env.lists:members(list.id, { fields = { "email", "external_id" } }) do
  check("members", p, err)
  members = members + 1
  if p.external_id then by_external[p.external_id] = p.id end
end
say("members           %d after %d s", members, os.time() - started)
if members ~= ROWS then say("FAILED expected %d members", ROWS); os.exit(1) end

-- 4. Next night's export lost every third customer: remove them, 1000 per request.
local leaving = {}
for i = 3, ROWS, 3 do leaving[#leaving + 1] = by_external[("crm-%06d"):format(i)] end
local removed = check("remove", env.lists:remove(list.id, leaving))
local left = 0
for p, err in env.lists:members(list.id) do check("members", p, err); left = left + 1 end
say("removed           %d; %d members remain", removed, left)
if left ~= ROWS - removed then os.exit(1) end
say("done")
