-- Shared by spec/idiomatic/*_spec.lua (not a spec itself): a fresh emulator account and
-- client per test, the idiomatic modules bound to it, and what the emulator received for
-- that account (so "nothing was sent" is checked on the account's own requests).
local emu = require "helpers.emulator"
local klaviyo = require "klaviyo"

local M = { emu = emu, klaviyo = klaviyo }

-- client field -> module, as the client is meant to expose them.
M.MODULES = {
  events = "klaviyo.events", profiles = "klaviyo.profiles", consent = "klaviyo.subscriptions",
  lists = "klaviyo.lists", segments = "klaviyo.segments", flows = "klaviyo.flows",
  metrics = "klaviyo.metrics", client_api = "klaviyo.client_api",
}

-- The module object for `name` on `client`: the client's own field once init.lua wires it,
-- else the module bound by hand.
function M.mod(client, name)
  local ok, v = pcall(function() return client[name] end)
  if ok and type(v) == "table" then return v end
  return require(M.MODULES[name]).new(client)
end

-- A fresh account with rate limits off (specs send thousands of requests) and a client.
-- auth: "private" (default) or "public".
function M.setup(auth, opts)
  local acct = emu.account(opts)
  emu.limits({ ["*"] = "off" }, acct)
  local o = { base_url = emu.url }
  if auth == "public" then o.public_key = acct.public_key else o.api_key = acct.private_key end
  local client = assert(klaviyo.new(o))
  local t = { acct = acct, client = client }
  for name in pairs(M.MODULES) do t[name] = M.mod(client, name) end
  return t
end

-- The account's recorded requests (oldest first), optionally only one operation's.
M.requests = emu.requests

-- Decoded JSON body of a recorded request.
local cjson = require "cjson.safe"
function M.body(rec)
  local b = rec.request_body
  if type(b) == "string" then return cjson.decode(b) end
  return b
end

local function pack(...) return { n = select("#", ...), ... } end

-- Runs fn and asserts the account's emulator received nothing meanwhile; returns fn's results.
function M.nothing_sent(acct, fn)
  local before = #emu.requests(acct)
  local r = pack(fn())
  local after = #emu.requests(acct)
  assert(before == after, ("expected nothing sent, but %d request(s) arrived"):format(after - before))
  return (table.unpack or unpack)(r, 1, r.n)
end

-- Collects an iterator's items; raises with the error when it yields false, err.
function M.collect(iter)
  local out = {}
  for item, err in iter do
    if not item then error(tostring(err), 2) end
    out[#out + 1] = item
  end
  return out
end

return M
