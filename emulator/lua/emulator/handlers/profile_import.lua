-- Bulk profile import jobs (bulk_import_profiles and the job reads): up to
-- 10,000 profiles or 5 MB per request. Invalid items reject the whole request
-- (400, one error per bad item, pointers naming it); valid requests become a
-- job that upserts the profiles shortly after (or when read), adds them to the
-- lists named, and keeps an import error for each profile it could not apply
-- (an identifier owned by another profile).
local cjson = require "cjson.safe"
local state = require "emulator.state"
local jsonapi = require "emulator.jsonapi"
local filter = require "emulator.filter"
local job_queue = require "emulator.jobs"
local profiles = require "emulator.handlers.profiles"
local groups = require "emulator.groups"
local flowrunner = require "emulator.flowrunner"

local null = cjson.null
local type, ipairs, pairs, format, tostring = type, ipairs, pairs, string.format, tostring

local M = {}

local MAX_PROFILES = 10000
local MAX_PAYLOAD = 5 * 1024 * 1024
local JOB_TYPE = "profile-bulk-import-job"

local function jobs_of(acct)
  if not acct.import_jobs then acct.import_jobs, acct.import_job_order = {}, {} end
  return acct.import_jobs
end

-- Applies a queued job: upserts, list joins, import errors.
local function run(acct, job)
  if job.status ~= "queued" then return end
  job.status = "processing"
  job.started_at = state.now()
  local seen = {}
  for i, item in ipairs(job.items) do
    local attrs = {}
    for k, v in pairs(item.attrs) do attrs[k] = v end
    if item.id then attrs.id = item.id end
    local p, created_or_err, other = state.upsert_profile(acct, attrs)
    if p then
      job.completed_count = job.completed_count + 1
      if not seen[p.id] then
        seen[p.id] = true
        job.profile_ids[#job.profile_ids + 1] = p.id
      end
      for _, list_id in ipairs(job.list_ids) do
        if acct.lists[list_id] and groups.join(acct.list_members, list_id, p.id) then
          flowrunner.on_list_join(acct, list_id, p.id)
        end
      end
    else
      job.failed_count = job.failed_count + 1
      local pointer = format("/data/attributes/profiles/data/%d", i - 1)
      local e
      if created_or_err == "conflict" then
        e = { code = "duplicate_profile", title = "Conflict.",
              detail = format("An identifier of this profile belongs to profile %s.", other.id) }
      else
        e = { code = "not_found", title = "Not found.",
              detail = format("Profile '%s' does not exist.", tostring(item.id)) }
      end
      e.id = state.new_id()
      e.source = { pointer = pointer }
      e.original_payload = item.original
      job.errors[#job.errors + 1] = e
    end
  end
  job.items = nil
  job.status = "complete"
  job.completed_at = state.now()
end

--- Completes every queued import job of `acct` (reads see a settled state).
function M.settle(acct) job_queue.settle(acct, "pending_imports", run) end

local function schedule(acct, job) job_queue.schedule(acct, "pending_imports", job, M.settle) end

local function iso_or_null(t) return t and state.iso(t) or null end

local function job_resource(req, job, fields)
  local base = "/api/profile-bulk-import-jobs/" .. job.id
  local lists = {}
  for i, id in ipairs(job.list_ids) do lists[i] = { type = "list", id = id } end
  local a = {
    status = job.status, created_at = state.iso(job.created), total_count = job.total_count,
    completed_count = job.completed_count, failed_count = job.failed_count,
    completed_at = iso_or_null(job.completed_at), started_at = iso_or_null(job.started_at),
    expires_at = state.iso(job.created + 7 * 86400),
  }
  local rel = function(name)
    return { self = req.base_url .. base .. "/relationships/" .. name,
             related = req.base_url .. base .. "/" .. name }
  end
  return jsonapi.resource(JOB_TYPE, job.id, jsonapi.sparse(a, fields), {
    lists = { data = jsonapi.array(lists), links = rel("lists") },
    profiles = { links = rel("profiles") },
    ["import-errors"] = { links = { related = req.base_url .. base .. "/import-errors" } },
  }, req.base_url .. base)
end

local function list_resource(req, l)
  return jsonapi.resource("list", l.id, {
    name = l.name or null, created = l.created and state.iso(l.created) or null,
    updated = l.updated and state.iso(l.updated) or null, opt_in_process = l.opt_in_process or null,
  }, nil, req.base_url .. "/api/lists/" .. l.id)
end

M.bulk_import_profiles = function(req)
  if req.body_size and req.body_size > MAX_PAYLOAD then
    return jsonapi.error(413, "request_too_large", "Request too large.",
      "A profile import may not be larger than 5 MB.")
  end
  local acct, data = req.account, req.body.data
  local attrs = data.attributes
  local wrapper = type(attrs) == "table" and attrs.profiles
  local items = type(wrapper) == "table" and wrapper.data
  local base = "/data/attributes/profiles/data"
  if type(items) ~= "table" or (items[1] == nil and next(items) ~= nil) then
    return jsonapi.invalid("'profiles.data' must be an array.", { pointer = base })
  end
  if #items == 0 then return jsonapi.invalid("At least one profile is required.", { pointer = base }) end
  if #items > MAX_PROFILES then
    return jsonapi.invalid("A profile import may hold at most 10,000 profiles.", { pointer = base })
  end
  local errors, clean = {}, {}
  for i, item in ipairs(items) do
    local pointer = format("%s/%d", base, i - 1)
    if type(item) ~= "table" or item.type ~= "profile" then
      local _, doc = jsonapi.invalid("Each item must be a 'profile' resource.",
        { pointer = pointer .. "/type" })
      errors[#errors + 1] = doc.errors[1]
    else
      local id = item.id ~= null and item.id or nil
      local c, _, doc = profiles.validate(item.attributes, pointer, id, id == nil)
      if not c then
        errors[#errors + 1] = doc.errors[1]
      else
        local original = type(item.attributes) == "table" and item.attributes or null
        clean[#clean + 1] = { attrs = c, id = id, original = original }
      end
    end
  end
  local list_ids = {}
  local rel = type(data.relationships) == "table" and data.relationships.lists
  local rel_data = type(rel) == "table" and rel.data or nil
  if rel_data ~= nil then
    if type(rel_data) ~= "table" then
      local _, doc = jsonapi.invalid("'relationships.lists.data' must be an array.",
        { pointer = "/data/relationships/lists/data" })
      errors[#errors + 1] = doc.errors[1]
    else
      for i, l in ipairs(rel_data) do
        if type(l) ~= "table" or l.type ~= "list" or type(l.id) ~= "string" or not acct.lists[l.id] then
          local name = type(l) == "table" and tostring(l.id) or "?"
          local _, doc = jsonapi.invalid(format("List '%s' does not exist.", name),
            { pointer = format("/data/relationships/lists/data/%d", i - 1) })
          errors[#errors + 1] = doc.errors[1]
        else
          list_ids[#list_ids + 1] = l.id
        end
      end
    end
  end
  if #errors > 0 then return 400, { errors = errors } end
  local job = { id = state.new_id(), status = "queued", created = state.now(), total_count = #clean,
                completed_count = 0, failed_count = 0, items = clean, list_ids = list_ids,
                profile_ids = {}, errors = {} }
  local jobs = jobs_of(acct)
  jobs[job.id] = job
  acct.import_job_order[#acct.import_job_order + 1] = job.id
  schedule(acct, job)
  return 202, { data = job_resource(req, job),
                links = { self = req.base_url .. "/api/profile-bulk-import-jobs/" .. job.id } }
end

local function find_job(req, id)
  local acct = req.account
  M.settle(acct)
  local job = jobs_of(acct)[id]
  if not job then
    return nil, jsonapi.not_found(format("Profile import job '%s' not found.", tostring(id)))
  end
  return job
end

M.get_bulk_import_profiles_job = function(req)
  local job, st, doc = find_job(req, req.params.job_id)
  if not job then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, JOB_TYPE)
  if fields == nil then return st, doc end
  local out = { data = job_resource(req, job, fields), links = { self = req.base_url .. req.path } }
  if req.query.include then
    for _, v in ipairs(jsonapi.split(req.query.include)) do
      if v ~= "lists" then
        return jsonapi.invalid(format("'%s' is not a valid include for import jobs.", v),
          { parameter = "include" })
      end
    end
    local inc = {}
    for _, id in ipairs(job.list_ids) do
      local l = req.account.lists[id]
      if l then inc[#inc + 1] = list_resource(req, l) end
    end
    out.included = jsonapi.array(inc)
  end
  return 200, out
end

local JOBS_FILTER = { status = { type = "string" } }

M.get_bulk_import_profiles_jobs = function(req)
  local acct = req.account
  M.settle(acct)
  jobs_of(acct)
  local fields, st, doc = jsonapi.fields(req, JOB_TYPE)
  if fields == nil then return st, doc end
  local pred
  if req.query.filter then
    local err
    pred, err = filter.compile(req.query.filter, JOBS_FILTER)
    if not pred then return jsonapi.invalid(err, { parameter = "filter" }) end
  end
  local sort = req.query.sort
  if sort and sort ~= "created_at" and sort ~= "-created_at" then
    return jsonapi.invalid(format("'%s' is not a valid sort for import jobs.", sort), { parameter = "sort" })
  end
  local items = {}
  for _, id in ipairs(acct.import_job_order) do
    local j = acct.import_jobs[id]
    if not pred or pred(j) then items[#items + 1] = j end
  end
  if sort == "-created_at" then
    local rev = {}
    for i = #items, 1, -1 do rev[#rev + 1] = items[i] end
    items = rev
  end
  return jsonapi.page(req, items, function(j) return job_resource(req, j, fields) end)
end

M.get_errors_for_bulk_import_profiles_job = function(req)
  local job, st, doc = find_job(req, req.params.id)
  if not job then return st, doc end
  local fields
  fields, st, doc = jsonapi.fields(req, "import-error")
  if fields == nil then return st, doc end
  return jsonapi.page(req, job.errors, function(e)
    return jsonapi.resource("import-error", e.id, jsonapi.sparse({
      code = e.code, title = e.title, detail = e.detail, source = e.source,
      original_payload = e.original_payload,
    }, fields))
  end)
end

M.get_profiles_for_bulk_import_profiles_job = function(req)
  local job, st, doc = find_job(req, req.params.id)
  if not job then return st, doc end
  local items = {}
  for _, id in ipairs(job.profile_ids) do
    local p = req.account.profiles[id]
    if p then items[#items + 1] = p end
  end
  return jsonapi.page(req, items, function(p) return profiles.resource(req, p) end)
end

M.get_profile_ids_for_bulk_import_profiles_job = function(req)
  local job, st, doc = find_job(req, req.params.id)
  if not job then return st, doc end
  return jsonapi.page(req, job.profile_ids, function(id) return { type = "profile", id = id } end)
end

-- The lists a job adds its profiles to: linkage only (ids_only) or the lists that still exist.
local function job_lists(req, ids_only)
  local job, st, doc = find_job(req, req.params.id)
  if not job then return st, doc end
  local data, lists = {}, req.account.lists
  for _, id in ipairs(job.list_ids) do
    if ids_only then
      data[#data + 1] = { type = "list", id = id }
    elseif lists[id] then
      data[#data + 1] = list_resource(req, lists[id])
    end
  end
  return 200, { data = jsonapi.array(data), links = { self = req.base_url .. req.path } }
end

M.get_list_ids_for_bulk_import_profiles_job = function(req) return job_lists(req, true) end

M.get_list_for_bulk_import_profiles_job = function(req) return job_lists(req, false) end

return M
