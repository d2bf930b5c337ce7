-- Shared by spec/oauth/*_spec.lua: an emulator account set up as an OAuth app, installed
-- through the PKCE flow, and the emulator's count of refreshes.
local emu = require "helpers.emulator"
local oauth = require "klaviyo.oauth"

local M = { emu = emu, oauth = oauth, REDIRECT = "https://app.example/callback" }

-- An account whose app has `opts` (rotate, access_token_ttl) and the tokens of one install.
function M.install(opts)
  local acct = emu.account()
  local body = { account = acct.account_id, redirect_uris = { M.REDIRECT } }
  for k, v in pairs(opts or {}) do body[k] = v end
  local st, _, raw = emu.admin("POST", "oauth/app", body)
  assert(st == 200, "oauth/app: " .. tostring(st) .. " " .. tostring(raw))
  local url, verifier, state = oauth.authorize_url { client_id = acct.client_id,
    redirect_uri = M.REDIRECT, scope = "profiles:read profiles:write" }
  local q = {}
  for k, v in url:gmatch("[?&]([^=]+)=([^&]*)") do
    q[k] = v:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end)
  end
  local doc
  st, doc, raw = emu.admin("POST", "oauth/authorize", q)
  assert(st == 200, "oauth/authorize: " .. tostring(st) .. " " .. tostring(raw))
  assert(doc.state == state)
  local tokens = assert(oauth.exchange { client_id = acct.client_id, client_secret = acct.client_secret,
    base_url = emu.url, code = doc.code, verifier = verifier, redirect_uri = M.REDIRECT })
  return acct, tokens
end

function M.refreshes(acct)
  local st, doc, raw = emu.admin("GET", "oauth/refreshes?account=" .. acct.account_id)
  assert(st == 200, "oauth/refreshes: " .. tostring(st) .. " " .. tostring(raw))
  return doc.refreshes
end

return M
