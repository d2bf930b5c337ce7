-- Runs one catalogue case through the libcurl transport and prints "RESULT <json>": the
-- child process of spec/hostile/support.lua's run_curl_isolated.
--   lua run_one.lua <case name> <server URL> <root of the checkout>
local name, url, root = arg[1], arg[2], arg[3]
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. root .. "/spec/?.lua;" .. package.path
local S = require "hostile.support"
local cjson = require("cjson.safe").new()

for _, case in ipairs(S.catalogue) do
  if case.name == name then
    io.write("RESULT ", assert(cjson.encode(S.run_curl(case, url))), "\n")
    os.exit(0)
  end
end
io.write("no case named ", name, "\n")
os.exit(1)
