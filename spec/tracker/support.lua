-- Shared by the tracker specs: an emulator account with a live flow on a metric (so the
-- emulator counts flow runs), clients, temporary spool paths, and reading back what the
-- emulator holds.
local emu = require "helpers.emulator"
local P = require "helpers.process"
local live_flow = require "helpers.live_flow"

local M = { emu = emu }

-- The checkout, the interpreter running this spec (for child processes), its C module
-- directory, shell quoting and a command's output.
M.root, M.interpreter, M.build_dir, M.quote, M.sh = P.root, P.interpreter, P.build_dir, P.quote, P.sh

--- A client for `acct`. By default without the client's own retries and rate limiter, where
-- the client has them: the specs show the tracker's re-sends alone make delivery
-- exact, and the emulator's limits are off. `defaults = true` keeps the client's defaults.
function M.client(acct, defaults)
  local klaviyo = require "klaviyo"
  local opts = { api_key = acct.private_key, base_url = emu.url }
  if not defaults then
    local ok, c = pcall(klaviyo.new, { api_key = acct.private_key, base_url = emu.url,
      limiter = false, retry = { attempts = 1 } })
    if ok and c then return c end -- a client without those options raises: use its defaults
  end
  return assert(klaviyo.new(opts))
end

--- A fresh account, rate limits off, with a live flow triggered by `metric`.
-- Returns acct, flow_id.
function M.account(metric, limits_on)
  local acct = emu.account()
  if not limits_on then emu.limits({ ["*"] = "off" }, acct) end
  local c = M.client(acct)
  local id = live_flow(c, metric or "Placed Order", "Tracker flow")
  c:close()
  return acct, id
end

--- The event number `seq` of a spec: a Placed Order by <tag><seq>@example.com with
-- properties.seq (what check_exact counts), and the fields of `extra` set on it.
function M.event(tag, seq, extra)
  local e = { metric = "Placed Order", profile = { email = tag .. seq .. "@example.com" },
              properties = { seq = seq } }
  for k, v in pairs(extra or {}) do e[k] = v end
  return e
end

--- The set of seq numbers 1..n (what check_exact expects after n events).
function M.all(n)
  local t = {}
  for i = 1, n do t[i] = true end
  return t
end

local n = 0
--- A spool path no other test uses (and none of its companion files exist).
function M.spool_path(tag)
  n = n + 1
  local p = os.tmpname()
  os.remove(p)
  p = p .. "-" .. (tag or "spool") .. "-" .. n
  for _, s in ipairs({ "", ".tmp", ".lock", ".damaged" }) do os.remove(p .. s) end
  return p
end

function M.cleanup(p)
  for _, s in ipairs({ "", ".tmp", ".lock", ".damaged" }) do os.remove(p .. s) end
end

--- What a tracker test starts from: a fresh account with its live flow, a client for it and a
-- spool path no other test uses (`tag` in its name). Returns acct, flow_id, client, path.
function M.fixture(tag)
  local acct, flow = M.account()
  return acct, flow, M.client(acct), M.spool_path(tag)
end

--- Every event the account holds: array of {id, seq = properties.seq, uid = properties.uid}.
function M.events(acct)
  emu.admin("GET", "jobs?settle=1&account=" .. acct.account_id)
  local out = {}
  local cursor
  repeat
    local q = { ["page[size]"] = 1000, ["fields[event]"] = "event_properties" }
    if cursor then q["page[cursor]"] = cursor end
    local st, _, body, raw = emu.api(acct, "GET", "/api/events", { query = q })
    assert(st == 200, raw)
    for _, ev in ipairs(body.data) do
      local p = ev.attributes.event_properties or {}
      out[#out + 1] = { id = ev.id, seq = p.seq, uid = p.uid }
    end
    local nxt = body.links and body.links.next
    cursor = type(nxt) == "string" and nxt:match("page%%5Bcursor%%5D=([^&]+)") or
      (type(nxt) == "string" and nxt:match("page%[cursor%]=([^&]+)")) or nil
  until not cursor
  return out
end

--- Flow runs of the account's flow: map event_id -> count, total.
function M.runs(acct, flow_id)
  local by_event, total = {}, 0
  for _, r in ipairs(emu.flow_runs(acct)) do
    if r.flow_id == flow_id then
      total = total + 1
      by_event[r.event_id] = (by_event[r.event_id] or 0) + 1
    end
  end
  return by_event, total
end

--- The events held for `seqs` (set of seq numbers expected): returns a report table
-- {held, missing, extra, twice, runs_bad} (all counts; 0 everywhere is exact delivery).
function M.check_exact(acct, flow_id, expected, maybe)
  local evs = M.events(acct)
  local runs = M.runs(acct, flow_id)
  local seen = {}
  local r = { held = 0, missing = 0, extra = 0, twice = 0, runs_bad = 0 }
  for _, ev in ipairs(evs) do
    if ev.seq ~= nil then
      r.held = r.held + 1
      if seen[ev.seq] then r.twice = r.twice + 1 end
      seen[ev.seq] = true
      if not expected[ev.seq] and not (maybe and maybe[ev.seq]) then r.extra = r.extra + 1 end
      if runs[ev.id] ~= 1 then r.runs_bad = r.runs_bad + 1 end
    end
  end
  for seq in pairs(expected) do if not seen[seq] then r.missing = r.missing + 1 end end
  return r
end

return M
