-- OAuth: a 401 calls the client's refresh function once and repeats the request once with the
-- new token. The refresh function here gets a real new token from the emulator's token
-- endpoint, as an app would from Klaviyo's.
local S = require "client.support"
local klaviyo = S.klaviyo
local mime = require "mime"

-- POST /oauth/token (where Klaviyo has it) grant_type=refresh_token with Basic client credentials.
local function token_endpoint(acct)
  return function()
    local form = "grant_type=refresh_token&refresh_token=" .. S.emu.escape(acct.refresh_token)
    local status, _, doc, raw = S.emu.request {
      method = "POST", path = "/oauth/token", body = form,
      headers = { ["content-type"] = "application/x-www-form-urlencoded",
                  authorization = "Basic " .. mime.b64(acct.client_id .. ":" .. acct.client_secret) },
    }
    if status ~= 200 then
      return nil, "token endpoint answered " .. tostring(status) .. " " .. tostring(raw)
    end
    if doc.refresh_token then acct.refresh_token = doc.refresh_token end
    return doc.access_token
  end
end

-- The get_profiles requests recorded after `mark`: a 401's record may carry no account (the
-- token names none), so other account-less records of the run could come between; the
-- request under test is counted by its operation.
local function profiles_since(mark) return S.since(mark, "get_profiles") end

describe("OAuth refresh", function()
  it("refreshes once on a 401 and repeats the request", function()
    local acct = S.emu.account()
    local calls = 0
    local fetch = token_endpoint(acct)
    local client
    client = assert(klaviyo.new { access_token = acct.access_token, base_url = S.emu.url,
      refresh = function(c)
        calls = calls + 1
        assert.equal(client, c)
        return fetch()
      end })
    assert.is_table((client:call("get_profiles", {})))
    assert.equal(0, calls)
    assert.equal(200, (S.emu.admin("POST", "expire-tokens", { account = acct.account_id })))
    local mark = S.mark()
    local doc, err = client:call("get_profiles", {})
    assert.is_table(doc, tostring(err))
    assert.equal(1, calls)
    local recs = profiles_since(mark)
    assert.equal(2, #recs)
    assert.equal(401, recs[1].status)
    assert.equal(200, recs[2].status)
    -- the new token stays in use
    assert.is_table((client:call("get_profiles", {})))
    assert.equal(1, calls)
    client:close()
  end)

  it("repeats at most once and returns the 401 when the new token fails too", function()
    local acct = S.emu.account()
    local calls = 0
    local client = assert(klaviyo.new { access_token = acct.access_token, base_url = S.emu.url,
      refresh = function() calls = calls + 1; return "still_not_a_valid_token" end })
    S.emu.admin("POST", "expire-tokens", { account = acct.account_id })
    local mark = S.mark()
    local ok, err = client:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal(401, err.status)
    assert.equal(1, calls)
    assert.equal(2, #profiles_since(mark))
    client:close()
  end)

  it("returns the 401 with the refresh error when refresh fails", function()
    local acct = S.emu.account()
    local client = assert(klaviyo.new { access_token = acct.access_token, base_url = S.emu.url,
      refresh = function() return nil, "invalid_grant" end })
    S.emu.admin("POST", "expire-tokens", { account = acct.account_id })
    local mark = S.mark()
    local ok, err = client:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal(401, err.status)
    assert.equal("invalid_grant", err.refresh_error)
    assert.matches("%(refresh failed: invalid_grant%)", tostring(err))
    assert.equal(1, #profiles_since(mark))
    client:close()
  end)

  it("without a refresh function a 401 is returned as is", function()
    local acct = S.emu.account()
    local client = assert(klaviyo.new { access_token = acct.access_token, base_url = S.emu.url })
    S.emu.admin("POST", "expire-tokens", { account = acct.account_id })
    local ok, err = client:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal(401, err.status)
    client:close()
  end)

  -- The refresh function may itself call the client, even the same operation: the request
  -- being refreshed is repeated as it was (calls do not share a request table).
  it("repeats the refreshed request as it was, after a call made by the refresh function", function()
    local acct = S.emu.account()
    local fetch = token_endpoint(acct)
    local client
    client = assert(klaviyo.new { access_token = acct.access_token, base_url = S.emu.url,
      refresh = function(c)
        local token = assert(fetch())
        assert(c:set_access_token(token))
        assert.is_table((c:call("get_profiles", { ["page[size]"] = 7 })))
        return token
      end })
    assert.is_table((client:call("get_profiles", {})))   -- the client has made this call before
    S.emu.admin("POST", "expire-tokens", { account = acct.account_id })
    local mark = S.mark()
    local doc, err = client:call("get_profiles", { ["page[size]"] = 2 })
    assert.is_table(doc, tostring(err))
    local recs = profiles_since(mark)
    assert.equal(3, #recs)
    local sizes = {}
    for i, r in ipairs(recs) do
      sizes[i] = ("%d %s"):format(r.status, S.query_value(r.query, "page[size]"))
    end
    assert.same({ "401 2", "200 7", "200 2" }, sizes)
    client:close()
  end)

  it("set_access_token replaces the token", function()
    local acct = S.emu.account()
    local client = assert(klaviyo.new { access_token = "expired_token_value", base_url = S.emu.url })
    local ok, err = client:call("get_profiles", {})
    assert.is_nil(ok)
    assert.equal(401, err.status)
    assert.is_true(client:set_access_token(acct.access_token))
    assert.is_table((client:call("get_profiles", {})))
    local bad, serr = client:set_access_token("has space")
    assert.is_nil(bad)
    assert.equal("refused", serr.kind)
    client:close()
  end)
end)
