--- A profile import in progress: the `bulk_import_profiles` jobs `profiles:import` started.
--
--    local imp = assert(client.profiles:import(rows, { list = list_id }))
--    local jobs, err = imp:wait{ timeout = 60 }      -- until every job is complete/cancelled
--    for e, eerr in imp:errors() do print(e.code, e.title, e.detail) end
--
-- Klaviyo processes imports asynchronously (`queued` -> `processing` -> `complete` or
-- `cancelled`); `wait` polls each job (`get_bulk_import_profiles_job`) and `errors` reads the
-- per-profile import errors (`get_errors_for_bulk_import_profiles_job`).
-- @module klaviyo.profile_import
local V = require "klaviyo.validate"
local R = require "klaviyo.resource"
local errors = require "klaviyo.errors"

local type, setmetatable, error, pcall, require, pairs = type, setmetatable, error, pcall, require,
  pairs
local huge = math.huge
local clock = os.time

-- The module's functions, and the methods of the object `new` returns.
---@class klaviyo.profile_import
local _M = {}
local mt = { __index = _M }

local DONE = { complete = true, cancelled = true }

--- A new, empty import bound to a client (used by `profiles:import`).
---@param client klaviyo.Client
---@return klaviyo.profile_import # import with `jobs = {}`
function _M.new(client)
  return setmetatable({ client = client, jobs = {} }, mt)
end

--- Record a job (a flat `profile-bulk-import-job`).
---@param job table a flat profile-bulk-import-job
---@return table job
function _M:add(job)
  self.jobs[#self.jobs + 1] = job
end

-- The sleep to poll with: ngx.sleep inside OpenResty (yields, never blocks the worker), else
-- LuaSocket's socket.sleep. Returns nil when neither exists.
local function default_sleep()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.sleep) == "function" then return ngx.sleep end
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" then return socket.sleep end
  return nil
end

local function now()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and type(ngx.now) == "function" then return ngx.now() end
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket.gettime then return socket.gettime() end
  return clock()
end

--- Refresh every job's state once (`get_bulk_import_profiles_job`).
---@return table # the jobs (flat: `status`, `total_count`, `completed_count`, `failed_count`,
--   ...), or nil, err
function _M:refresh()
  V.self(self, mt, "import:refresh")
  for i = 1, #self.jobs do
    local doc, err = self.client:call("get_bulk_import_profiles_job", { job_id = self.jobs[i].id })
    if not doc then return nil, err end
    local job, jerr = R.from_document(doc, "get_bulk_import_profiles_job")
    if not job then return nil, jerr end
    self.jobs[i] = job
  end
  return self.jobs
end

--- Is every job finished (complete or cancelled), as of the last refresh?
---@return boolean
function _M:done()
  for i = 1, #self.jobs do
    if not DONE[self.jobs[i].status] then return false end
  end
  return true
end

--- Poll until every job is complete or cancelled.
---@param opts table? `timeout` (seconds, default 300), `interval` (seconds between
--   polls, default 1), `sleep` (function(seconds); default ngx.sleep or socket.sleep)
---@return table # the jobs, or nil, err (`err.code == "timeout"` when time ran out)
function _M:wait(opts)
  V.self(self, mt, "import:wait")
  opts = V.table_arg(opts or {}, V.set({ "timeout", "interval", "sleep" }), "import:wait", 1)
  local timeout, interval = opts.timeout or 300, opts.interval or 1
  -- numbers of seconds: a NaN would never pass the deadline and the loop would poll for ever
  for name, v in pairs({ timeout = timeout, interval = interval }) do
    if type(v) ~= "number" or v ~= v or v < 0 or (name == "interval" and v == huge) then
      error("import:wait: " .. name .. " must be a number of seconds (>= 0)", 2)
    end
  end
  local sleep = opts.sleep or default_sleep()
  if type(sleep) ~= "function" then
    error("import:wait: no sleep function (install LuaSocket or pass opts.sleep)", 2)
  end
  local deadline = now() + timeout
  while true do
    local jobs, err = self:refresh()
    if not jobs then return nil, err end
    if self:done() then return jobs end
    if now() + interval > deadline then
      return nil, errors.new("timeout", "get_bulk_import_profiles_job",
        "the import jobs did not finish within " .. timeout .. " s", { code = "timeout" })
    end
    sleep(interval)
  end
end

--- Iterate over the import errors of every job (`get_errors_for_bulk_import_profiles_job`).
---@return function # iterator of flat import errors (`code`, `title`, `detail`, `source`,
--   `original_payload`, `job_id`), `false, err` once on failure
function _M:errors()
  V.self(self, mt, "import:errors")
  local jobs, j, iter = self.jobs, 0, nil
  local client = self.client
  return function()
    while true do
      if iter then
        local item, err = iter()
        if item then
          item.job_id = jobs[j].id
          return item
        end
        if item == false then return false, err end
        iter = nil
      end
      j = j + 1
      if j > #jobs then return nil end
      iter = R.flat_iter(client:paginate("get_errors_for_bulk_import_profiles_job",
        { id = jobs[j].id }))
    end
  end
end

return _M
