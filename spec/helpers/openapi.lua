-- Klaviyo's OpenAPI spec as the specs read it: its path in the repository and its document,
-- decoded once per process. Not a spec itself.
local cjson = require "cjson"
local F = require "helpers.files"
local P = require "helpers.process"

local M = { path = P.root .. "/openapi/klaviyo-stable-2026-07-15.json" }

local doc
--- The decoded spec (the same table on every call).
function M.doc()
  if doc == nil then doc = cjson.decode(assert(F.read(M.path))) end
  return doc
end

return M
