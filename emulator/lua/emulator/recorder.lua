-- What the emulator received and answered: a bounded ring for
-- GET /__emulator/requests, counters for GET /__emulator/stats, and the
-- optional journal file (one JSON object per exchange, kept across resets)
-- that the contract check reads after a test run.
local cjson = require "cjson.safe"

local encode = cjson.encode
local pairs, sub = pairs, string.sub

local M = {}

local RING = 20000
local MAX_KEPT_BODY = 1024 * 1024
local ring, head, count = {}, 0, 0
local stats = {}
local journal

function M.reset()
  ring, head, count = {}, 0, 0
  stats = {}
end

function M.open_journal(path)
  if path and path ~= "" then
    local f, err = io.open(path, "a")
    if not f then return nil, err end
    f:setvbuf("no")
    journal = f
  end
  return true
end

local function keep(body)
  if body and #body > MAX_KEPT_BODY then
    return sub(body, 1, MAX_KEPT_BODY), true
  end
  return body, nil
end

--- Records one exchange. `e` = {method, path, query, operation, status,
-- raw_header, request_body, response_body, connection, account, fault (true
-- when a fault rule changed the answer)}.
function M.record(e)
  local op = e.operation
  if op then
    local s = stats[op]
    if not s then s = { answers = 0, throttled = 0, statuses = {} }; stats[op] = s end
    local st = e.status
    if st == 429 then s.throttled = s.throttled + 1 else s.answers = s.answers + 1 end
    s.statuses[st] = (s.statuses[st] or 0) + 1 -- numeric keys: no string per request
  end
  if journal then
    journal:write(encode({
      method = e.method, path = e.path, query = e.query, operation = op, status = e.status,
      request_body = e.request_body, response_body = e.response_body,
      content_type = e.content_type, fault = e.fault,
    }), "\n")
  end
  e.request_body, e.request_truncated = keep(e.request_body)
  e.response_body, e.response_truncated = keep(e.response_body)
  head = head % RING + 1
  ring[head] = e
  if count < RING then count = count + 1 end
end

-- Secrets never leave the emulator: Authorization values are masked.
local function headers_of(raw)
  local out = {}
  if not raw then return out end
  local first = true
  for line in raw:gmatch("[^\r\n]+") do
    if first then
      first = false
    else
      local name, value = line:match("^([^:]+):%s*(.*)$")
      if name then
        name = name:lower()
        if name == "authorization" then
          local scheme = value:match("^(%S+)")
          value = (scheme or "") .. " ***"
        end
        out[name] = value
      end
    end
  end
  return out
end

--- Recorded exchanges, oldest first. filter: {account=, operation=, limit=}. The ring is read
-- from the newest end and stops at `limit` matches: specs ask for the last few records many
-- times a run, and a full ring is 20,000 entries (each answer parses its entries' headers).
function M.list(filter)
  filter = filter or {}
  local limit = tonumber(filter.limit)
  if limit and limit < 0 then limit = nil end
  local picked = {}
  for i = 0, count - 1 do
    if limit and #picked >= limit then break end
    local e = ring[(head - 1 - i) % RING + 1]
    if (not filter.account or e.account == filter.account)
      and (not filter.operation or e.operation == filter.operation) then
      picked[#picked + 1] = e
    end
  end
  local out = {}
  for i = #picked, 1, -1 do
    local e = picked[i]
    out[#out + 1] = {
      seq = e.seq, method = e.method, path = e.path, query = e.query, operation = e.operation,
      status = e.status, headers = headers_of(e.raw_header), request_body = e.request_body,
      response_body = e.response_body, connection = e.connection, account = e.account,
      request_truncated = e.request_truncated, response_truncated = e.response_truncated,
      fault = e.fault,
    }
  end
  return out
end

function M.stats()
  local out = {}
  for op, s in pairs(stats) do
    local statuses = {}
    for st, n in pairs(s.statuses) do statuses[tostring(st)] = n end
    out[op] = { answers = s.answers, throttled = s.throttled, statuses = statuses }
  end
  return out
end

return M
