-- luacheck: globals ngx
-- The nginx side of ngx_spec: every worker hammers get_profiles from a timer for `seconds`
-- through an OAuth client whose tokens live in the shared dict; GET /results gives each
-- worker's {ok, fail, tokens (short hashes), err}.
local cjson = require "cjson.safe"
local M = {}

function M.init_worker(url, client_id, secret, tokens_json, seconds, redis_port)
  ngx.timer.at(0.5, function()
    local klaviyo = require "klaviyo"
    local oauth = require "klaviyo.oauth"
    local core = require "klaviyo.core"
    local store
    if redis_port then
      store = oauth.stores.redis { port = redis_port, key = "install-" .. client_id,
                                   initial = cjson.decode(tokens_json) }
    else
      store = oauth.stores.shdict("oauth", "install-1", cjson.decode(tokens_json))
    end
    local c = assert(klaviyo.new { base_url = url, limiter = false, oauth = {
      client_id = client_id, client_secret = secret, tokens = store, margin = 1 } })
    local r = { ok = 0, fail = 0, tokens = {}, err = "", worker = ngx.worker.id() }
    local seen = {}
    local stop = ngx.now() + seconds
    while ngx.now() < stop do
      local doc, err = c:call("get_profiles", {})
      if doc then r.ok = r.ok + 1 else
        r.fail = r.fail + 1
        if r.err == "" then r.err = tostring(err) end
      end
      local h = oauth.b64url(core.sha256(c.oauth_manager.current)):sub(1, 10)
      if not seen[h] then seen[h] = true; r.tokens[#r.tokens + 1] = h end
      ngx.sleep(0.01)
      ngx.update_time()
    end
    ngx.shared.oauth:set("result:" .. ngx.worker.id(), cjson.encode(r))
  end)
end

function M.results()
  local out = {}
  for i = 0, ngx.worker.count() - 1 do
    local v = ngx.shared.oauth:get("result:" .. i)
    if v then out[#out + 1] = cjson.decode(v) end
  end
  ngx.say(cjson.encode(out))
end

return M
