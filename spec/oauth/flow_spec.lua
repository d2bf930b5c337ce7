-- klaviyo.oauth against the emulator: the PKCE authorization-code flow, refresh before
-- expiry and after a 401, a revoked refresh token, and no secret in what the caller sees.
local S = require "oauth.support"
local C = require "client.support"
local klaviyo = require "klaviyo"
local oauth, emu = S.oauth, S.emu

local function client(acct, store, extra)
  local o = { client_id = acct.client_id, client_secret = acct.client_secret, tokens = store }
  for k, v in pairs(extra or {}) do o[k] = v end
  return assert(klaviyo.new { base_url = emu.url, oauth = o })
end

-- A POST to the emulator's token endpoint with the app's Basic credential: what emu.request
-- answers. `content_type` defaults to a form's.
local function token_request(acct, body, content_type)
  local mime = require "mime"
  return emu.request { method = "POST", path = "/oauth/token", body = body,
    headers = { ["content-type"] = content_type or "application/x-www-form-urlencoded",
                authorization = "Basic " .. mime.b64(acct.client_id .. ":" .. acct.client_secret) } }
end

-- get_profiles through `c` answers a document, and the account's tokens have been refreshed
-- `refreshes` times by then.
local function profiles_ok(c, acct, refreshes)
  local doc, err = c:call("get_profiles", {})
  assert.is_table(doc, tostring(err))
  assert.equal(refreshes, S.refreshes(acct))
end

describe("klaviyo.oauth", function()
  it("authorize_url carries PKCE S256: challenge = base64url(sha256(verifier)), no padding", function()
    local url, verifier, state = oauth.authorize_url { client_id = "cid", redirect_uri = "https://x/cb",
      scope = "profiles:read events:write" }
    assert.matches("^[%w_%-]+$", verifier)
    assert.is_true(#verifier >= 43 and #verifier <= 128)
    assert.matches("^https://www%.klaviyo%.com/oauth/authorize%?response_type=code&", url)
    assert.matches("code_challenge_method=S256", url, 1, true)
    assert.matches("scope=profiles%3Aread%20events%3Awrite", url, 1, true)
    assert.matches("state=" .. state, url, 1, true)
    local ch = url:match("code_challenge=([^&]+)")
    -- computed independently: printf %s VERIFIER | openssl dgst -sha256 -binary | base64
    -- (MHH3DgjR4gmFLa4ORbL5uKyVqebZ8PMY0bq+55pIliI=), then made base64url without padding
    assert.equal("MHH3DgjR4gmFLa4ORbL5uKyVqebZ8PMY0bq-55pIliI",
      oauth.challenge("dBjftJeZ4CVP-mJ92K9qdhb2e3ycrUbSJUm2RwVhW9M"))
    assert.equal(oauth.challenge(verifier), ch)
    assert.not_matches("=", ch)
  end)

  it("runs the full PKCE flow from authorize URL to a first call", function()
    local acct, tokens = S.install()
    assert.matches("^emu_at_", tokens.access_token)
    assert.matches("^emu_rt_", tokens.refresh_token)
    assert.is_true(tokens.expires_at > os.time())
    local c = client(acct, oauth.stores.memory(tokens))
    profiles_ok(c, acct, 0)
    c:close()
  end)

  it("the emulator refuses a wrong verifier, a malformed one, a used code and a bad client", function()
    local acct = emu.account()
    emu.admin("POST", "oauth/app", { account = acct.account_id, redirect_uris = { S.REDIRECT } })
    local _, verifier = oauth.authorize_url { client_id = acct.client_id, redirect_uri = S.REDIRECT,
                                              scope = "a" }
    local st, doc = emu.admin("POST", "oauth/authorize", { client_id = acct.client_id,
      redirect_uri = S.REDIRECT, scope = "a", state = "s", code_challenge_method = "S256",
      code_challenge = oauth.challenge(verifier) })
    assert.equal(200, st)
    local base = "grant_type=authorization_code&redirect_uri=" .. emu.escape(S.REDIRECT)
      .. "&code=" .. doc.code
    local s1, _, d1 = token_request(acct, base .. "&code_verifier=short")
    assert.equal(400, s1); assert.equal("Invalid code_verifier", d1.error_description)
    local s2, _, d2 = token_request(acct, base .. "&code_verifier=" .. string.rep("a", 50))
    assert.equal(400, s2); assert.equal("invalid_grant", d2.error)
    assert.equal("Code challenge failed", d2.error_description)
    local s3 = token_request(acct, base .. "&code_verifier=" .. verifier)
    assert.equal(200, s3)
    local s4, _, d4 = token_request(acct, base .. "&code_verifier=" .. verifier)
    assert.equal(400, s4); assert.equal("invalid_grant", d4.error)
    local t, err = oauth.exchange { client_id = acct.client_id, client_secret = "wrong",
      base_url = emu.url, code = doc.code, verifier = verifier, redirect_uri = S.REDIRECT }
    assert.is_nil(t)
    assert.equal("oauth", err.kind); assert.equal("invalid_client", err.code); assert.equal(401, err.status)
    local s5, _, d5 = token_request(acct, "{}", "application/json")
    assert.equal(400, s5); assert.equal("invalid_grant_type", d5.error)
  end)

  it("refreshes before expiry, once, and keeps the rotated refresh token", function()
    local acct, tokens = S.install { rotate = true, access_token_ttl = 2 }
    local store = oauth.stores.memory(tokens)
    local c = client(acct, store, { margin = 1 })
    profiles_ok(c, acct, 0)
    emu.sleep(1.2)   -- within the margin: the next call refreshes first
    local mark = C.mark()
    profiles_ok(c, acct, 1)
    assert.are_not.equal(tokens.refresh_token, store:get().refresh_token)
    assert.are_not.equal(tokens.access_token, store:get().access_token)
    -- refreshed before sending: one request, no 401 first (a 401's record names no account)
    local recs = C.since(mark)
    assert.equal(1, #recs)
    assert.equal(200, recs[1].status)
    profiles_ok(c, acct, 1)
    c:close()
  end)

  it("refreshes once after a 401 (a token revoked early)", function()
    local acct, tokens = S.install()
    local c = client(acct, oauth.stores.memory(tokens))
    emu.admin("POST", "expire-tokens", { account = acct.account_id })
    profiles_ok(c, acct, 1)
    c:close()
  end)

  it("a revoked refresh token gives oauth_revoked, no retry, and no secret in the error", function()
    local acct, tokens = S.install { access_token_ttl = 1 }
    local store = oauth.stores.memory(tokens)
    local c = client(acct, store)
    assert(oauth.revoke { client_id = acct.client_id, client_secret = acct.client_secret,
      base_url = emu.url, token = tokens.refresh_token })
    local before = #emu.requests(acct)
    local ok, err = c:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal("oauth_revoked", err.kind)
    local ok2, err2 = c:call("get_profiles", {})   -- remembered: no second token request
    assert.is_nil(ok2)
    assert.equal("oauth_revoked", err2.kind)
    assert.equal(0, S.refreshes(acct))
    assert.equal(before, #emu.requests(acct))
    for _, s in ipairs({ tostring(err), tostring(err2), tostring(c), tostring(store) }) do
      for _, secret in ipairs({ acct.client_secret, tokens.access_token, tokens.refresh_token }) do
        assert.is_nil(s:find(secret, 1, true), s)
      end
    end
    c:close()
  end)

  it("refuses misuse of the oauth option", function()
    assert.has_error(function() klaviyo.new { oauth = { client_id = "a", client_secret = "b" } } end,
      "klaviyo.new: oauth needs tokens (a store)")
    assert.has_error(function()
      klaviyo.new { access_token = "x", oauth = { client_id = "a", client_secret = "b",
                                                  tokens = oauth.stores.memory({ access_token = "t" }) } }
    end, "klaviyo.new: oauth replaces api_key, access_token and refresh")
  end)
end)
