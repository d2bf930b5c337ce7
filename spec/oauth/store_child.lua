-- The child of stores_spec: runs one call of the file store at PATH and prints its result.
-- Run with a resource limit (file size, memory) to see how the store meets it.
--   lua store_child.lua ROOT BUILD_DIR PATH set ACCESS_TOKEN   -> "ok" | "failed: <err>"
--   lua store_child.lua ROOT BUILD_DIR PATH get                -> the type get answered
--   lua store_child.lua ROOT BUILD_DIR PATH set_lock ACCESS    -> set, then lock and unlock:
--                                                                 "ok" | "failed: <err>"
local root, build, path, op, access = arg[1], arg[2], arg[3], arg[4], arg[5]
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local store = require("klaviyo.oauth").stores.file(path)
if op == "get" then
  io.write(type(store:get()), "\n")
else
  local ok, err = store:set { access_token = access, refresh_token = "rt_" .. access, expires_at = 1 }
  if ok and op == "set_lock" then
    ok, err = store:lock()
    if ok then store:unlock() else err = err or "the lock is held" end
  end
  io.write(ok and "ok\n" or ("failed: " .. tostring(err) .. "\n"))
end
