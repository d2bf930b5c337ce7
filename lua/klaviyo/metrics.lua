--- Metrics: one per event name, created by Klaviyo on the first event.
--
--    local m = client.metrics:find("Placed Order")     -- nil, err (code "not_found") if none yet
--    for m, err in client.metrics:each() do print(m.id, m.name) end
-- @module klaviyo.metrics
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"
local errors = require "klaviyo.errors"

local type = type

-- The module's functions, and the methods of the object `new(client)` returns.
---@class klaviyo.metrics
local _M, mt = R.methods("metrics")

--- Iterate over metrics (`get_metrics`).
---@param q table? `filter` (Klaviyo allows `integration.name` and `integration.category`)
---@return function # iterator of flat metrics (`id`, `name`, `integration`, ...); `false, err`
function _M:each(q)
  V.self(self, mt, "metrics:each")
  q = V.table_arg(q or {}, V.set({ "filter" }), "metrics:each", 1)
  return R.flat_iter(self.client:paginate("get_metrics", { filter = q.filter }))
end

--- Read a metric (`get_metric`).
---@param id string
---@return table # flat metric, or nil, err
function _M:get(id)
  V.self(self, mt, "metrics:get")
  V.id(id, "metrics:get", "metric")
  return R.one("get_metric", self.client:call("get_metric", { id = id }))
end

--- Find a metric by its name (Klaviyo cannot filter metrics by name, so this reads the
-- metric pages until it finds it).
---@param name string e.g. "Placed Order"
---@return table # flat metric, or nil, err (`err.code == "not_found"` when there is none)
function _M:find(name)
  V.self(self, mt, "metrics:find")
  V.argcheck(type(name) == "string" and name ~= "", "metrics:find", 1, "metric name", name)
  for m, err in self:each() do
    if not m then return nil, err end
    if m.name == name then return m end
  end
  return nil, errors.new("not_found", "get_metrics", "no metric named " .. name,
    { code = "not_found" })
end

--- Flows triggered by this metric (`get_flows_triggered_by_metric`).
---@param id string metric id
---@return table # array of flat flows, or nil, err
function _M:flows(id)
  V.self(self, mt, "metrics:flows")
  V.id(id, "metrics:flows", "metric")
  local op = "get_flows_triggered_by_metric"
  return R.many(op, self.client:call(op, { id = id }))
end

return _M
