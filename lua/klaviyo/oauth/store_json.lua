-- klaviyo.oauth stores' one reading and writing of tokens as JSON: a store's content that is
-- no JSON (truncated, hostile) is no tokens, never a raise; tokens that cannot be written
-- (a NaN, an infinity) are an error, never a raise.
local cjson = require("cjson").new()
local M = {}

-- encode(tokens) -> text | nil, err
function M.encode(t)
  local ok, v = pcall(cjson.encode, t)
  if ok then return v end
  return nil, "the tokens cannot be written as JSON: " .. tostring(v)
end

-- decode(text) -> the tokens, or nil when text is no string or no JSON
function M.decode(v)
  if type(v) ~= "string" then return nil end
  local ok, t = pcall(cjson.decode, v)
  return ok and t or nil
end

return M
