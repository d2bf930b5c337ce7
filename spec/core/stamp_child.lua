-- A child of stamp_spec (its own process: klaviyo.core reads klaviyo.event_layout once per
-- Lua state). Usage: <lua> stamp_child.lua ROOT BUILD_DIR STAMP_KEY
-- Replaces klaviyo.event_layout with one whose STAMP_KEY is the argument, then prints the body
-- c:build encodes for a create_event with unique_ids, or "raised: <message>".
local root, build, key = arg[1], arg[2], arg[3]
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
package.loaded["klaviyo.event_layout"] = { STAMP = { create_event = { "data", "attributes" } },
                                          STAMP_KEY = key }
local core = require "klaviyo.core"
local c = assert(core.new { api_key = "pk_stamp_child" })
local ok, b, err = pcall(c.build, c, { operation = "create_event", method = "POST", path = "/api/events",
  body = { data = { attributes = { a = 1 } } }, unique_ids = true })
if not ok then io.write("raised: ", tostring(b), "\n")
elseif not b then io.write("error: ", tostring(err and err.detail), "\n")
else io.write(b.body, "\n") end
