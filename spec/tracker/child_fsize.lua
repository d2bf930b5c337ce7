-- Child process of disk_spec, run under a file size limit (`ulimit -f`) smaller than the
-- spool's allocation window: tracks events seq 1.. into SPOOL until track answers nil, err,
-- then closes the tracker (delivering). Writes "stored N", "refused <err>" and
-- "closed <true|err> acks_unwritten <n>" to stdout; a SIGXFSZ would kill it before.
-- usage: child_fsize.lua ROOT BUILD_DIR URL API_KEY SPOOL
local root, build, url, key, spool = ...
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local klaviyo = require "klaviyo"
local tracker = require "klaviyo.tracker"
local client = assert(klaviyo.new { api_key = key, base_url = url })
local t = assert(tracker.new(client, { spool = spool, auto = false }))
local n = 0
while n < 100000 do
  local uid, err = t:track { metric = "Placed Order",
    profile = { email = "z" .. (n + 1) .. "@example.com" }, properties = { seq = n + 1 } }
  if not uid then
    io.write("stored ", n, "\nrefused ", tostring(err), "\n")
    break
  end
  n = n + 1
end
local st = t:stats()
local ok, err = t:close(30)
io.write("closed ", tostring(ok or err), " acks_unwritten ", st.acks_unwritten, "\n")
