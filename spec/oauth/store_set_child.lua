-- The child of stores_spec: writes tokens to the file store at PATH and prints what set
-- answered ("ok" or "failed: <err>"). Run with a file size limit to see a write fail.
--   lua store_set_child.lua ROOT BUILD_DIR PATH ACCESS_TOKEN
local root, build, path, access = arg[1], arg[2], arg[3], arg[4]
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local store = require("klaviyo.oauth").stores.file(path)
local ok, err = store:set { access_token = access, refresh_token = "rt_" .. access, expires_at = 1 }
io.write(ok and "ok\n" or ("failed: " .. tostring(err) .. "\n"))
