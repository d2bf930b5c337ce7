-- Klaviyo's OAuth endpoints (/oauth/token, /oauth/revoke) and their admin calls: an app's
-- settings (redirect URIs, refresh-token rotation, access-token lifetime), the consent step
-- of the authorization-code grant with PKCE (stands in for the user's "Allow"), and a count
-- of refreshes per account. An app is an account's client_id/client_secret.
local ffi = require "ffi"
local state = require "emulator.state"

local ngx = ngx
local type, pairs, ipairs, tostring = type, pairs, ipairs, tostring

ffi.cdef [[ unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md); ]]
local md = ffi.new("unsigned char[32]")

local M = {}
local codes, generation = {}, nil   -- authorization codes, cleared by a reset

local function app(acct)
  acct.oauth = acct.oauth or { redirect_uris = {}, rotate = false, ttl = 3600, refreshes = 0 }
  return acct.oauth
end

local function b64url(s)
  return (ngx.encode_base64(s):gsub("+", "-"):gsub("/", "_"):gsub("=", ""))
end

local function s256(verifier)
  ffi.C.SHA256(verifier, #verifier, md)
  return b64url(ffi.string(md, 32))
end

local function fresh_codes()
  if generation ~= state.generation then codes, generation = {}, state.generation end
  return codes
end

local function client_from_basic()
  local auth = ngx.var.http_authorization
  local b64 = auth and auth:match("^Basic%s+(%S+)%s*$")
  if not b64 then return nil end
  local id, secret = (ngx.decode_base64(b64) or ""):match("^([^:]*):(.*)$")
  local acct = id and state.account_for_client_id(id)
  if acct and acct.client_secret == secret then return acct end
  return nil
end

-- The form body, or nil when the request is not form-encoded.
local function form()
  local ctype = ngx.var.content_type or ""
  if not ctype:find("^application/x%-www%-form%-urlencoded") then return nil end
  ngx.req.read_body()
  return ngx.req.get_post_args(100) or {}
end

-- A fresh access token (and, for a new grant or with rotation, a fresh refresh token, the old
-- one revoked); the access token dies after the app's lifetime.
local function grant(reply, acct, new_refresh)
  local a = app(acct)
  local access = state.issue_tokens(acct, not new_refresh)
  if a.expire then   -- a lifetime set through the admin API (the default one never ends here)
    local gen = state.generation
    ngx.timer.at(a.ttl, function()
      if state.generation == gen then state.revoke_token(access) end
    end)
  end
  local scopes = {}
  for s in pairs(acct.scopes) do scopes[#scopes + 1] = s end
  table.sort(scopes)
  return reply(200, {
    access_token = access, token_type = "Bearer", expires_in = a.ttl,
    refresh_token = acct.refresh_token, scope = table.concat(scopes, " "),
  })
end

local VERIFIER = "^[%w%._~%-]+$"

local function code_grant(reply, err, acct, args)
  local c = type(args.code) == "string" and fresh_codes()[args.code]
  if not c or c.acct ~= acct or c.used then
    return err(400, "invalid_grant", "The authorization code is invalid, expired or used.")
  end
  if args.redirect_uri ~= c.redirect_uri then
    return err(400, "invalid_grant", "redirect_uri does not match the authorization request.")
  end
  local v = args.code_verifier
  if type(v) ~= "string" or #v < 43 or #v > 128 or not v:find(VERIFIER) then
    return err(400, "invalid_request", "Invalid code_verifier")
  end
  if s256(v) ~= c.challenge then return err(400, "invalid_grant", "Code challenge failed") end
  c.used = true
  return grant(reply, acct, true)
end

function M.token(reply)
  local function err(status, e, desc) return reply(status, { error = e, error_description = desc }) end
  local acct = client_from_basic()
  if not acct then return err(401, "invalid_client", "Client authentication failed.") end
  local args = form()
  if not args then return err(400, "invalid_grant_type", "The body must be form-encoded.") end
  if args.grant_type == "authorization_code" then return code_grant(reply, err, acct, args) end
  if args.grant_type ~= "refresh_token" then
    return err(400, "unsupported_grant_type", "Unsupported grant_type.")
  end
  local rt = args.refresh_token
  local owner = type(rt) == "string" and state.account_for_refresh_token(rt)
  if not owner or owner ~= acct then
    return err(400, "invalid_grant", "The refresh token is invalid or revoked.")
  end
  local a = app(acct)
  a.refreshes = a.refreshes + 1
  return grant(reply, acct, a.rotate)
end

function M.revoke(reply)
  local function err(status, e, desc) return reply(status, { error = e, error_description = desc }) end
  local acct = client_from_basic()
  if not acct then return err(401, "invalid_client", "Client authentication failed.") end
  local args = form() or {}
  local token = args.token
  if type(token) ~= "string" or token == "" then return err(400, "invalid_request", "Missing token.") end
  local owner = state.account_for_refresh_token(token) or state.account_for_access_token(token)
  if owner == acct then
    -- Revoking the refresh token uninstalls the app: its access tokens die too.
    if state.account_for_refresh_token(token) then state.expire_tokens(acct) end
    state.revoke_token(token)
  end
  return reply(200, {})
end

-- Admin routes: POST oauth/app {account, redirect_uris, rotate, access_token_ttl} sets the
-- account's app; POST oauth/authorize {client_id, redirect_uri, scope, state, code_challenge,
-- code_challenge_method} gives {code, state, location}; GET oauth/refreshes?account= counts.
function M.register(routes, h)
  local reply, bad = h.reply, h.bad
  routes["POST oauth/app"] = function()
    local body = h.read_json()
    local acct = body and h.which_account(body)
    if not acct then return bad("oauth/app needs an account", acct == false and 404 or 400) end
    local a = app(acct)
    if body.redirect_uris ~= nil then
      if type(body.redirect_uris) ~= "table" then return bad("redirect_uris must be an array") end
      a.redirect_uris = {}
      for _, u in ipairs(body.redirect_uris) do a.redirect_uris[tostring(u)] = true end
    end
    if body.rotate ~= nil then a.rotate = body.rotate == true end
    local ttl = body.access_token_ttl
    if ttl ~= nil then
      if type(ttl) ~= "number" or ttl <= 0 then return bad("access_token_ttl must be positive") end
      a.ttl, a.expire = ttl, true
    end
    return reply(200, { client_id = acct.client_id, client_secret = acct.client_secret,
                        rotate = a.rotate, access_token_ttl = a.ttl })
  end
  routes["POST oauth/authorize"] = function()
    local b = h.read_json()
    if not b then return bad("body must be a JSON object") end
    local acct = type(b.client_id) == "string" and state.account_for_client_id(b.client_id)
    if not acct then return bad("unknown client_id") end
    if not app(acct).redirect_uris[tostring(b.redirect_uri)] then
      return bad("redirect_uri not registered")
    end
    if b.code_challenge_method ~= "S256" then return bad("code_challenge_method must be S256") end
    if type(b.code_challenge) ~= "string" or not b.code_challenge:find("^[%w_%-]+$") then
      return bad("code_challenge must be base64url")
    end
    local code = {}
    for i = 1, 32 do code[i] = string.char(96 + math.random(26)) end
    code = "emu_code_" .. table.concat(code)
    fresh_codes()[code] = { acct = acct, redirect_uri = b.redirect_uri, challenge = b.code_challenge }
    local st = type(b.state) == "string" and b.state or nil
    return reply(200, { code = code, state = st, location = b.redirect_uri .. "?code=" .. code
      .. (st and ("&state=" .. ngx.escape_uri(st)) or "") })
  end
  routes["GET oauth/refreshes"] = function()
    local acct = h.which_account()
    if not acct then return bad("oauth/refreshes needs an account", acct == false and 404 or 400) end
    return reply(200, { refreshes = app(acct).refreshes })
  end
end

return M
