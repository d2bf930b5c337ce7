-- Metrics: one per event name, created by the first event that uses it.
-- get_metrics (filters on name and integration), get_metric. The flow-trigger
-- reads of the Metrics tag live in flows.lua.
local state = require "emulator.state"
local jsonapi = require "emulator.jsonapi"
local filter = require "emulator.filter"

local ipairs = ipairs

local M = {}

--- Resource for a metric (fields[metric] honoured when req has it).
function M.resource(req, m, fields)
  local a = { name = m.name, created = state.iso(m.created), updated = state.iso(m.updated),
              integration = m.integration }
  local base = "/api/metrics/" .. m.id
  return jsonapi.resource("metric", m.id, jsonapi.sparse(a, fields), {
    ["flow-triggers"] = { links = { self = req.base_url .. base .. "/relationships/flow-triggers",
                                    related = req.base_url .. base .. "/flow-triggers" } },
  }, req.base_url .. base)
end

local METRIC_FILTER = {
  ["integration.name"] = { type = "string",
                           get = function(m) return m.integration and m.integration.name end },
  ["integration.category"] = { type = "string",
                               get = function(m) return m.integration and m.integration.category end },
  ["and"] = true,
}

M.get_metrics = function(req)
  local acct = req.account
  local fields, st, doc = jsonapi.fields(req, "metric")
  if fields == nil then return st, doc end
  local pred
  if req.query.filter then
    local err
    pred, err = filter.compile(req.query.filter, METRIC_FILTER)
    if not pred then return jsonapi.invalid(err, { parameter = "filter" }) end
  end
  local items = {}
  for _, id in ipairs(acct.metric_order) do
    local m = acct.metrics[id]
    if m and (not pred or pred(m)) then items[#items + 1] = m end
  end
  -- Klaviyo pages metrics 200 at a time (no page[size] parameter).
  return jsonapi.page(req, items, function(m) return M.resource(req, m, fields) end, { default_size = 200 })
end

M.get_metric = function(req)
  return jsonapi.get_one(req, req.account.metrics, "Metric", "metric",
    function(m, fields) return M.resource(req, m, fields) end)
end

return M
