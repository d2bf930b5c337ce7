--- klaviyo.oauth: the OAuth app's token lifecycle. authorize_url (PKCE S256 and state),
-- exchange (authorization code -> tokens), refresh, revoke, token stores, and the manager a
-- client built with `oauth = {...}` uses: it refreshes before expiry and once after a 401,
-- one refresh at a time per installation (the store's lock), others waiting for its result.
-- Tokens are {access_token =, refresh_token =, expires_at = epoch seconds, scope =}.
-- @module klaviyo.oauth
local core = require "klaviyo.core"
local errors = require "klaviyo.errors"
local V = require "klaviyo.validate"
local cjson = require("cjson").new()

local type, tostring, error, format, floor = type, tostring, error, string.format, math.floor
local concat, byte, pairs, pcall, find = table.concat, string.byte, pairs, pcall, string.find
local ngx = rawget(_G, "ngx")

local _M = {}

local AUTHORIZE = "https://www.klaviyo.com/oauth/authorize"
local BASE = "https://a.klaviyo.com"
local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

local function b64(s)
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = byte(s, i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local d = { floor(n / 262144) % 64, floor(n / 4096) % 64, floor(n / 64) % 64, n % 64 }
    local keep = b == nil and 2 or c == nil and 3 or 4
    for j = 1, 4 do out[#out + 1] = j <= keep and B64:sub(d[j] + 1, d[j] + 1) or "=" end
  end
  return concat(out)
end

-- base64url without padding (RFC 7636's encoding of the verifier and the challenge).
local function b64url(s) return (b64(s):gsub("+", "-"):gsub("/", "_"):gsub("=", "")) end
_M.b64url = b64url

local function escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(c) return format("%%%02X", byte(c)) end))
end

local function now()
  if ngx and ngx.now then return ngx.now() end
  local ok, socket = pcall(require, "socket")
  if ok then return socket.gettime() end
  return os.time()
end
_M.now = now

local function sleep(s)
  if ngx and ngx.sleep and ngx.get_phase() ~= "init" then return ngx.sleep(s) end
  require("socket").sleep(s)
end

local function need(t, k, where)
  if type(t[k]) ~= "string" or t[k] == "" then
    error(format("klaviyo.oauth.%s: %s must be a non-empty string", where, k), 3)
  end
end

--- authorize_url{client_id, redirect_uri, scope, state?, url?} -> url, verifier, state.
-- Keep the verifier and state for the redirect back (check its state, then exchange).
---@param o {client_id: string, redirect_uri: string, scope: string, state: string?, url: string?}
---@return string url
---@return string verifier
---@return string state
function _M.authorize_url(o)
  if type(o) ~= "table" then error("klaviyo.oauth.authorize_url: expected a table", 2) end
  need(o, "client_id", "authorize_url"); need(o, "redirect_uri", "authorize_url")
  need(o, "scope", "authorize_url")
  if o.state ~= nil then need(o, "state", "authorize_url") end
  local verifier = b64url(core.random_bytes(48))   -- 64 characters of [A-Za-z0-9_-]
  local state = o.state or b64url(core.random_bytes(16))
  local url = (o.url or AUTHORIZE) .. "?response_type=code&client_id=" .. escape(o.client_id)
    .. "&redirect_uri=" .. escape(o.redirect_uri) .. "&scope=" .. escape(o.scope)
    .. "&state=" .. escape(state) .. "&code_challenge_method=S256&code_challenge="
    .. b64url(core.sha256(verifier))
  return url, verifier, state
end

--- The challenge for a verifier: base64url(sha256(verifier)).
---@param verifier string
---@return string
function _M.challenge(verifier) return b64url(core.sha256(verifier)) end

local function basic(o)
  need(o, "client_id", "token"); need(o, "client_secret", "token")
  return "Basic " .. b64(o.client_id .. ":" .. o.client_secret)
end

-- The secrets a token call holds: the app's secret (as given, and inside the Basic
-- credential) and what it sends (refresh token, code, verifier, token; as given and
-- form-encoded, when they are long enough not to occur in any text by chance).
local SENT = { "refresh_token", "code", "verifier", "token" }
local function secrets(o, cred)
  local out = { cred, o.client_secret }
  for _, k in ipairs(SENT) do
    local v = o[k]
    if type(v) == "string" and #v >= 8 then
      out[#out + 1] = v
      if escape(v) ~= v then out[#out + 1] = escape(v) end
    end
  end
  return out
end

-- Every text of an error with the call's secrets replaced: a server that echoes one does not
-- put it in a log.
local function redact(err, o, cred)
  local list = secrets(o, cred)
  for k, v in pairs(err) do
    if type(v) == "string" then
      for _, secret in ipairs(list) do
        local i, j = find(v, secret, 1, true)
        while i do
          v = v:sub(1, i - 1) .. "[redacted]" .. v:sub(j + 1)
          i, j = find(v, secret, i + 10, true)
        end
      end
      err[k] = v
    end
  end
  return err
end

-- The core client and transport a token call goes through: a client's own (o.core,
-- o.transport, from its manager), else one made for this call at o.base_url, with the nginx
-- cosocket transport where this phase has cosockets.
local function sender(o)
  if o.core then return o.core, o.transport, false end
  local c, err = core.new { base_url = o.base_url or BASE, timeout = o.timeout }
  if not c then return nil, err end
  local ngx_transport = ngx and require "klaviyo.transport.ngx"
  if ngx_transport and ngx_transport.can_send() then
    return c, ngx_transport.new { timeout = o.timeout }, true
  end
  return c, false, true
end

-- One form-encoded POST to an OAuth endpoint through the library's request path (its
-- transports' limits, deadline and error kinds): status, doc (decoded JSON, {} when empty)
-- | nil, err. The request carries the app's Basic credential (auth "client"): no key, no token.
local function post(o, path, form, op)
  local cred = basic(o)
  local c, t, own = sender(o)
  if not c then return nil, errors.wrap(t, op) end
  local req = { operation = op, method = "POST", path = path, auth = "client", safe = false,
    headers = { { "Authorization", cred }, { "Content-Type", "application/x-www-form-urlencoded" },
                { "Accept", "application/json" } }, body = form }
  local res, err
  if t then res, err = t:request(c, req, op) else res, err = c:request(req) end
  if own then c:close() end
  local status, body
  if res then status, body = res.status, res.body
  elseif err.kind == "http" and err.status then status, body = err.status, err.body or ""
  else return nil, redact(errors.wrap(err, op), o, cred) end
  if body == "" then return status, {} end
  local ok, doc = pcall(cjson.decode, body)
  if not ok or type(doc) ~= "table" then
    return nil, redact(errors.new("decode", op, "the OAuth endpoint did not answer JSON",
                                  { status = status }), o, cred)
  end
  return status, doc, cred
end

-- A token the library puts in an Authorization header or a form: visible ASCII (no space,
-- CR, LF or NUL), at most MAX_TOKEN bytes.
local MAX_TOKEN = 8192
local function is_token(v)
  return type(v) == "string" and v ~= "" and #v <= MAX_TOKEN and not find(v, "[^\33-\126]")
end

-- An answer's expires_in as seconds to keep the token: at most MAX_LIFETIME; DEFAULT_LIFETIME
-- when it is missing, no number (NaN, a string) or not positive (a token that expired as it
-- was given would make every call refresh first; a 401 refreshes it if it really is dead).
local DEFAULT_LIFETIME, MAX_LIFETIME = 3600, 365 * 86400
local function lifetime(v)
  v = tonumber(v)
  if not v or v ~= v or v <= 0 then return DEFAULT_LIFETIME end
  return v > MAX_LIFETIME and MAX_LIFETIME or v
end

-- A POST to /oauth/token: tokens | nil, err. A 400 invalid_grant (revoked, uninstalled, used
-- or unknown code or refresh token) is kind "oauth_revoked"; others kind "oauth".
local function token(o, fields, op)
  local status, doc, cred = post(o, "/oauth/token", concat(fields, "&"), op)
  if not status then return nil, doc end
  if status == 200 and doc.access_token ~= nil then
    local bad = not is_token(doc.access_token) and "access_token"
      or doc.refresh_token ~= nil and doc.refresh_token ~= cjson.null and not is_token(doc.refresh_token)
         and "refresh_token"
    if bad then
      return nil, errors.new("oauth", op, "the token endpoint's " .. bad
        .. " is not a token (visible ASCII, at most " .. MAX_TOKEN .. " bytes)", { status = status })
    end
    return { access_token = doc.access_token, scope = type(doc.scope) == "string" and doc.scope or nil,
             refresh_token = doc.refresh_token ~= cjson.null and doc.refresh_token or nil,
             expires_at = now() + lifetime(doc.expires_in) }
  end
  local kind = doc.error == "invalid_grant" and "oauth_revoked" or "oauth"
  return nil, redact(errors.new(kind, op, tostring(doc.error_description or doc.error or "no detail"),
    { status = status, code = doc.error }), o, cred)
end

--- exchange{client_id, client_secret, code, verifier, redirect_uri, base_url?} -> tokens | nil, err
---@param o table client_id, client_secret, code, verifier, redirect_uri, base_url?
---@return klaviyo.OAuthTokens? tokens
---@return klaviyo.Error? err
function _M.exchange(o)
  need(o, "code", "exchange"); need(o, "verifier", "exchange"); need(o, "redirect_uri", "exchange")
  local v = o.verifier   -- RFC 7636's verifier; Klaviyo refuses any other ("Invalid code_verifier")
  if #v < 43 or #v > 128 or find(v, "[^A-Za-z0-9%-%._~]") then
    error("klaviyo.oauth.exchange: verifier must be 43 to 128 characters of A-Z a-z 0-9 . _ ~ -", 2)
  end
  return token(o, { "grant_type=authorization_code", "code=" .. escape(o.code),
    "code_verifier=" .. escape(o.verifier), "redirect_uri=" .. escape(o.redirect_uri) },
    "oauth_exchange")
end

--- refresh{client_id, client_secret, refresh_token, base_url?} -> tokens | nil, err. Keeps the
-- old refresh token when the answer carries none.
---@param o table client_id, client_secret, refresh_token, base_url?
---@return klaviyo.OAuthTokens? tokens
---@return klaviyo.Error? err
function _M.refresh(o)
  need(o, "refresh_token", "refresh")
  local t, err = token(o, { "grant_type=refresh_token", "refresh_token=" .. escape(o.refresh_token) },
                       "oauth_refresh")
  if t and not t.refresh_token then t.refresh_token = o.refresh_token end
  return t, err
end

--- revoke{client_id, client_secret, token, base_url?} -> true | nil, err
---@param o table client_id, client_secret, token, base_url?
---@return true? ok
---@return klaviyo.Error? err
function _M.revoke(o)
  need(o, "token", "revoke")
  local status, doc, cred = post(o, "/oauth/revoke", "token=" .. escape(o.token), "oauth_revoke")
  if not status then return nil, doc end
  if status == 200 then return true end
  return nil, redact(errors.new("oauth", "oauth_revoke", tostring(doc.error_description or doc.error),
                                { status = status, code = doc.error }), o, cred)
end

-- Stores: get() -> tokens | nil; set(tokens) -> true | nil, err; lock(seconds) -> true |
-- false (another holds it) | false, err (the store failed); unlock().
_M.stores = {
  memory = function(...) return require("klaviyo.oauth.store_memory").new(...) end,
  file = function(...) return require("klaviyo.oauth.store_file").new(...) end,
  shdict = function(...) return require("klaviyo.oauth.store_shdict").new(...) end,
  redis = function(...) return require("klaviyo.oauth.store_redis").new(...) end,
}

---------------------------------------------------------------- the client's manager

local manager = {}
manager.__index = manager
manager.__tostring = function() return "klaviyo.oauth manager" end

local MANAGER_OPTIONS = { client_id = "string", client_secret = "string", tokens = "table",
                          margin = "number", lock_timeout = "number" }

--- manager(o, base_url) for klaviyo.new's `oauth` option; raises on misuse. The client gives
-- it its core client and transport (manager:attach): the token calls go through them.
---@param o klaviyo.OAuthOptions
---@param base_url string?
---@return table manager
---@return string access_token
function _M.manager(o, base_url)
  V.options(o, MANAGER_OPTIONS, "klaviyo.new", "oauth option", 3)
  need(o, "client_id", "new"); need(o, "client_secret", "new")
  -- NaN would never reach a deadline nor let a token be fresh; infinity breaks the lock's expiry
  if o.margin ~= nil and not (o.margin >= 0 and o.margin < math.huge) then
    error("klaviyo.new: oauth option margin must be a non-negative number of seconds", 3)
  end
  if o.lock_timeout ~= nil and not (o.lock_timeout > 0 and o.lock_timeout < math.huge) then
    error("klaviyo.new: oauth option lock_timeout must be a positive number of seconds", 3)
  end
  local s = o.tokens
  if not s then error("klaviyo.new: oauth needs tokens (a store)", 3) end
  for _, m in ipairs({ "get", "set", "lock", "unlock" }) do
    if type(s[m]) ~= "function" then error("klaviyo.new: oauth tokens store has no " .. m, 3) end
  end
  local t = s:get()
  if type(t) ~= "table" or type(t.access_token) ~= "string" then
    error("klaviyo.new: the oauth tokens store holds no access_token", 3)
  end
  return setmetatable({ store = s, margin = o.margin or 60, lock_timeout = o.lock_timeout or 30,
    unsaved = false,
    creds = { client_id = o.client_id, client_secret = o.client_secret, base_url = base_url or BASE,
              core = false, transport = false } }, manager), t.access_token
end

--- manager:attach(c, transport): the client's core client and transport, which the token
-- calls go through (its timeout, body cap and hooks).
---@param c userdata the client's klaviyo.core client
---@param transport table|false|nil the client's nginx transport, if it has one
---@return nil
function manager:attach(c, transport)
  self.creds.core, self.creds.transport = c, transport or false
end

local function usable(t, margin, stale)
  return type(t) == "table" and is_token(t.access_token) and t.access_token ~= stale
    and (tonumber(t.expires_at) or math.huge) - margin > now()
end

-- Writes tokens a refresh got to the store: true | nil, err. Tokens the store did not keep
-- stay with the manager (the refresh token they replace may be spent already) and are
-- written again before its next token; until then its calls fail with this error.
local function save(self, t)
  local ok, err = self.store:set(t)
  if ok then self.unsaved = false; return true end
  self.unsaved = t
  return nil, errors.new("oauth", "oauth_refresh", "the token store did not keep the refreshed tokens: "
    .. tostring(err or "set answered " .. tostring(ok)))
end

-- The refresh, under the store's lock: token | nil, err | nil, false when another holder
-- replaced the refused refresh token meanwhile (its tokens stand: look again).
local function refresh_locked(self, stale)
  local s = self.store
  local t = s:get()   -- the holder before us may have refreshed
  if usable(t, self.margin, stale) then return t.access_token end
  if type(t) ~= "table" or type(t.refresh_token) ~= "string" then
    return nil, errors.new("oauth", "oauth_refresh", "the store holds no refresh token")
  end
  local c = self.creds
  local nt, err = _M.refresh { client_id = c.client_id, client_secret = c.client_secret,
    base_url = c.base_url, core = c.core, transport = c.transport, refresh_token = t.refresh_token }
  if nt then
    local kept
    kept, err = save(self, nt)
    if kept then return nt.access_token end
    return nil, err
  end
  if err.kind == "oauth_revoked" then
    local now_t = s:get()
    if type(now_t) == "table" and now_t.refresh_token ~= t.refresh_token then return nil, false end
    t.revoked = true
    s:set(t)
  end
  return nil, err
end

--- A usable access token: the store's when it is fresh (and not `stale`, the one a 401
-- refused), else one refresh under the store's lock; without the lock, waits for the holder's.
-- The lock is released whatever happens under it, a raise included (re-raised after).
---@param stale string? the token a 401 refused
---@return string? token
---@return klaviyo.Error? err
function manager:token(stale)
  local s, deadline = self.store, now() + self.lock_timeout
  if self.unsaved then
    local ok, err = save(self, self.unsaved)
    if not ok then return nil, err end
  end
  while true do
    local t = s:get()
    if usable(t, self.margin, stale) then return t.access_token end
    if type(t) == "table" and t.revoked then
      return nil, errors.new("oauth_revoked", "oauth_refresh", "the installation's refresh token was revoked",
                             { code = "invalid_grant" })
    end
    local locked, lerr = s:lock(self.lock_timeout)
    if locked then
      local ok, tok, err = pcall(refresh_locked, self, stale)
      s:unlock()
      if not ok then error(tok, 0) end
      if tok then return tok end
      if err then return nil, err end
    elseif lerr then
      return nil, errors.new("oauth", "oauth_refresh", "the token store's lock failed: " .. tostring(lerr))
    elseif now() > deadline then
      return nil, errors.new("oauth", "oauth_refresh", "timed out waiting for another refresh")
    else
      sleep(0.05)
    end
  end
end

return _M
