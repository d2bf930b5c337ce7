-- Child process of proxy_spec: with proxies set in its environment, sends requests with a
-- private key to URL and prints one line per step ("<step> ok" or "<step> <error code>").
-- usage: proxy_child.lua ROOT BUILD_DIR URL API_KEY
local root, build, url, key = ...
package.path = root .. "/lua/?.lua;" .. root .. "/lua/?/init.lua;" .. package.path
package.cpath = build .. "/?.so;" .. package.cpath
local klaviyo = require "klaviyo"

local function report(step, ok, err)
  io.write(step, " ", ok and "ok" or tostring(err and err.code), "\n")
end

local client = assert(klaviyo.new { api_key = key, base_url = url, retry = { attempts = 1 } })
report("get_profiles", client:call("get_profiles", {}))
for i = 1, 2 do   -- two profiles: pages of one follow a links.next
  report("create_profile", client:call("create_profile", { body = { data = { type = "profile",
    attributes = { email = "proxy-child" .. i .. "@example.com" } } } }))
end
for doc, err in client:pages("get_profiles", { ["page[size]"] = 1 }) do
  report("page", doc, err)
end
client:close()
-- a private key over plain http to a host that is not loopback is still refused
report("plain_remote", klaviyo.new { api_key = key, base_url = "http://example.com" })
