-- Child process of hostile_spec: opens the spool at SPOOL and prints "opened" or
-- "refused <message>" (run under a timeout: an open that blocks is the failure it looks for).
-- usage: child_open.lua ROOT BUILD_DIR SPOOL
local root, build, path = ...
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local spool = require "klaviyo.tracker.spool"

local sp, err = spool.open(path, { sync = "none" })
if not sp then
  io.write("refused ", tostring(err), "\n")
else
  sp:release()
  io.write("opened\n")
end
