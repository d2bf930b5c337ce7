-- POST /spec {file = "events", skip = {[test full name] = reason}}: runs
-- spec/idiomatic/<file>_spec.lua inside this nginx worker (content phase, LuaJIT, cosockets)
-- with ngxapp.specrun and luassert, and answers
--   {results = {{name, status, message, clients = {"ngx", ...}, ngx_calls = n}, ...},
--    phase =, worker =}  or  {error = "..."}
-- clients: the transport of every client klaviyo.new made during the test ("ngx" when its
-- transport is klaviyo.transport.ngx, "curl" for none); ngx_calls: the calls that went through
-- that transport's request (cosockets). Both are counted by wrapping klaviyo.new and the
-- transport's request for the run only; they are put back afterwards.
-- The specs' own emulator admin calls (spec/helpers/emulator.lua, LuaSocket) block this
-- worker while they run: acceptable in the test bed, where nothing else uses it meanwhile.
-- Their waits for emulator jobs (emu.sleep) use ngx.sleep here, so those do not block.
-- luacheck: globals ngx
local ngx = ngx
local cjson = require("cjson.safe").new()
local runner = require "ngxapp.specrun"

local _M = {}

local ROOT = debug.getinfo(1, "S").source:match("^@(.*)/spec/ngx/lua/ngxapp/[^/]*$")
local busy = false

local function reply(status, t)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(cjson.encode(t))
end

local function run(file, skip)
  local klaviyo = require "klaviyo"
  local ngx_transport = require "klaviyo.transport.ngx"
  local emu = require "helpers.emulator"
  local real_new, real_request, real_sleep = klaviyo.new, ngx_transport.request, emu.sleep
  local clients, calls

  local function transport_of(c)
    if c.transport == nil then return "curl" end
    local mt = getmetatable(c.transport)
    return (mt and mt.__index == ngx_transport) and "ngx" or "other"
  end

  local ok, res = pcall(function()
    -- without it, spec/helpers/emulator.lua would start an emulator of its own
    if (os.getenv("KLAVIYO_EMULATOR_URL") or "") == "" then
      error("KLAVIYO_EMULATOR_URL is not set in nginx (the test bed's env directive)")
    end
    local tree = runner.load(ROOT .. "/spec/idiomatic/" .. file .. "_spec.lua",
                             { assert = require "luassert" })
    klaviyo.new = function(...)
      local c, err = real_new(...)
      if c then clients[#clients + 1] = transport_of(c) end
      return c, err
    end
    ngx_transport.request = function(...)
      calls = calls + 1
      return real_request(...)
    end
    emu.sleep = ngx.sleep
    return runner.run(tree, {
      skip = skip,
      before_test = function() clients, calls = {}, 0 end,
      after_test = function(_, r) r.clients, r.ngx_calls = clients, calls end,
    })
  end)
  klaviyo.new, ngx_transport.request, emu.sleep = real_new, real_request, real_sleep
  return ok, res
end

function _M.serve()
  ngx.req.read_body()
  local input = cjson.decode(ngx.req.get_body_data() or "")
  if type(input) ~= "table" or type(input.file) ~= "string" or not input.file:match("^[%w_]+$") then
    return reply(400, { error = "expected {file = <name of spec/idiomatic/<name>_spec.lua>}" })
  end
  if input.skip ~= nil and type(input.skip) ~= "table" then
    return reply(400, { error = "skip must be an object {[test name] = reason}" })
  end
  -- The spies above are per worker: one run at a time.
  if busy then return reply(409, { error = "a spec file is already running" }) end
  busy = true
  local ok, res = run(input.file, input.skip)
  busy = false
  if not ok then return reply(200, { error = tostring(res) }) end
  reply(200, { results = res, phase = ngx.get_phase(), worker = ngx.worker.pid() })
end

return _M
