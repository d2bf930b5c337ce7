-- Child process of crash_spec: tracks events seq FROM..TO into SPOOL, writing each seq to LOG
-- once track has returned it, until killed (or done).
-- usage: child_track.lua ROOT BUILD_DIR URL API_KEY SPOOL LOG FROM TO
local root, build, url, key, spool, log, from, to = ...
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local klaviyo = require "klaviyo"
local tracker = require "klaviyo.tracker"
local client = assert(klaviyo.new { api_key = key, base_url = url })
-- small compaction threshold: the kill also lands inside compactions
local t = assert(tracker.new(client, { spool = spool, batch = 1000, compact_bytes = 64 * 1024,
  backoff_base = 0.05 }))
local out = assert(io.open(log, "ab"))
out:setvbuf("no")
for i = tonumber(from), tonumber(to) do
  local uid, err = t:track { metric = "Placed Order", profile = { email = "c" .. i .. "@example.com" },
    properties = { seq = i } }
  if not uid then io.stderr:write(tostring(err), "\n") os.exit(1) end
  out:write(i, "\n")
end
assert(t:close(60))
out:write("done\n")
