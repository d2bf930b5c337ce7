-- The smallest parameters an operation (an entry of klaviyo.operations) builds with, body
-- aside: "x" for each path parameter and required header, 1 or a value the spec allows for each
-- required query parameter but company_id (which a public-key client fills in). Not a spec itself.
local allowed_value = require("helpers.query_values").allowed_value

return function(op)
  local params = {}
  for _, name in ipairs(op.path_params) do params[name] = "x" end
  for _, q in ipairs(op.query) do
    if q.required and q.name ~= "company_id" then params[q.name] = q.integer and 1 or allowed_value(q) end
  end
  for _, h in ipairs(op.headers or {}) do if h.required then params[h.name] = "x" end end
  return params
end
