-- Runs klaviyo.webhooks.verify on the vectors of a JSON file (spec/sdk/webhooks_vectors_test.js
-- writes them with Node's crypto) and prints one JSON array: "ok" or the error code per vector.
--   LUA_CPATH='build/luajit/?.so;;' luajit spec/webhooks/run_vectors.lua FILE
package.path = "lua/?.lua;lua/?/init.lua;" .. package.path
local cjson = require "cjson"
local webhooks = require "klaviyo.webhooks"

local f = assert(io.open(assert(arg[1], "usage: run_vectors.lua FILE"), "rb"))
local vectors = cjson.decode(f:read("*a"))
f:close()
local out = {}
for i, v in ipairs(vectors) do
  local payload, err = webhooks.verify(v.secret, v.headers, v.body,
    { now = v.now, tolerance = v.tolerance })
  if payload then
    out[i] = { result = "ok", webhook_id = payload.meta.klaviyo_webhook_id,
               signature = webhooks.sign(v.secret, v.body, v.timestamp) }
  else
    out[i] = { result = err.code, signature = webhooks.sign(v.secret, v.body, v.timestamp) }
  end
end
io.write(cjson.encode(out), "\n")
