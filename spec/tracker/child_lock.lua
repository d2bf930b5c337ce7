-- Child process of lock_spec: waits until the time START (so two children race), opens the
-- spool at SPOOL and writes to OUT "opened" or "refused <message>". The one that opened
-- acknowledges the 2 oldest pending records and appends 4 tagged with ROUND, keeps the spool
-- open until the file GO exists (its rival has answered by then), releases it and writes
-- "done".
-- usage: child_lock.lua ROOT BUILD_DIR SPOOL ROUND START GO OUT
local root, build, path, round, start, go, out_path = ...
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local socket = require "socket"
local spool = require "klaviyo.tracker.spool"

local out = assert(io.open(out_path, "ab"))
out:setvbuf("no")
while socket.gettime() < tonumber(start) do end
local sp, err = spool.open(path, { sync = "none" })
if not sp then
  out:write("refused ", tostring(err), "\n")
  os.exit(0)
end
out:write("opened\n")
local lines, _, endpos = sp:read(2, 1e9)
if #lines > 0 then assert(sp:ack(endpos, #lines)) end
for i = 1, 4 do
  assert(sp:append(string.format('{"round":%d,"i":%d}', tonumber(round), i)))
end
while not io.open(go, "rb") do socket.sleep(0.002) end
sp:release()
out:write("done\n")
