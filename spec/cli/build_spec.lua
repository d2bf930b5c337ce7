-- client:build (what the command's --dry-run prints): the request client:call would send,
-- built by the core, with nothing sent.
local emu = require "helpers.emulator"
local klaviyo = require "klaviyo"
local cjson = require "cjson"

describe("client:build", function()
  it("gives the method, URL, headers and body client:call would send, and sends nothing", function()
    local acct = emu.account()
    local c = assert(klaviyo.new { api_key = acct.private_key, base_url = emu.url })
    local b = assert(c:build("create_event", { body = { data = { type = "event", attributes = {
      properties = {}, metric = { data = { type = "metric", attributes = { name = "M" } } },
      profile = { data = { type = "profile", attributes = { email = "b@example.com" } } } } } } }))
    assert.are.equal("POST", b.method)
    assert.are.equal(emu.url .. "/api/events", b.url)
    local auth
    for _, h in ipairs(b.headers) do if h[1] == "Authorization" then auth = h[2] end end
    assert.are.equal("Klaviyo-API-Key " .. acct.private_key, auth)
    -- the event got its unique_id, as client:call would give it
    assert.is_string(cjson.decode(b.body).data.attributes.unique_id)
    assert.are.same({}, emu.requests(acct))
  end)

  it("returns the core's refusal as nil, err and raises on misuse", function()
    local c = assert(klaviyo.new { base_url = emu.url })
    local b, err = c:build("get_lists", {})
    assert.is_nil(b)
    assert.are.equal("refused", err.kind)
    assert.are.equal("missing_credential", err.code)
    assert.has_error(function() c:build("get_lists", { bogus = 1 }) end,
      "klaviyo: get_lists: parameter bogus: unknown parameter")
  end)
end)
