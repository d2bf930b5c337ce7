-- A misused method of an idiomatic module raises at the caller's line: every public method of
-- every module is called with arguments of the wrong type, and each error it raises must name
-- this file and the line of the call, however the module passes the work on inside.
-- Nothing reaches a server: the client's base URL is a closed loopback port.
local klaviyo = require "klaviyo"

local MODULES = { "client", "events", "profiles", "consent", "lists", "segments", "flows", "metrics",
                  "client_api", "images" }

-- A client of each test's own (inside nginx, every test's clients are checked for the
-- cosocket transport).
local function new_client()
  return assert(klaviyo.new { api_key = "pk_blame", base_url = "http://127.0.0.1:9",
                              public_key = "PUBKEY", limiter = false, retry = { attempts = 1 } })
end

-- The call whose line every raised error must name (a local function, not a tail call, so
-- that the method's caller is this line).
local CALL_LINE = debug.getinfo(1, "l").currentline + 2
local function call(obj, name, ...)
  local ok, err = pcall(function(...) local r = obj[name](obj, ...); return r end, ...)
  return ok, err
end

-- Wrong-typed arguments in each position the methods take.
local BAD = { { 42 }, { "x", 42 }, { {}, 42 }, { "x", {}, 42 }, { true } }

-- Functions of a module's table that are not methods of its objects: the constructor, what
-- the modules share with each other, and the client's module-level functions (close is left
-- out: it would end the client before the other methods are tried).
local NOT_METHODS = { new = true, check = true, build = true, consent_profile = true,
                      send_to_list = true, send_back_in_stock = true, close = true, array = true,
                      object = true, encode = true }

-- The public methods of a module's object.
local function methods(mod)
  local out = {}
  local index = getmetatable(mod).__index
  if type(index) == "function" then index = klaviyo end   -- the client: its methods are klaviyo's
  for name, f in pairs(index) do
    if type(f) == "function" and not NOT_METHODS[name] and name:sub(1, 1) ~= "_" then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

describe("a misused idiomatic method", function()
  for _, m in ipairs(MODULES) do
    it(m .. ": raises at the caller's line", function()
      local client = new_client()
      local mod = m == "client" and client or client[m]
      local raised, wrong = 0, {}
      local where = ("blame_spec.lua:%d: "):format(CALL_LINE)
      for _, name in ipairs(methods(mod)) do
        for _, args in ipairs(BAD) do
          local ok, err = call(mod, name, (table.unpack or unpack)(args))
          if not ok then
            raised = raised + 1
            if not (type(err) == "string" and err:find(where, 1, true)) then
              wrong[#wrong + 1] = ("%s:%s(%d arguments) raised %q"):format(m, name, #args, tostring(err))
            end
          end
        end
      end
      assert.is_true(raised > 0, m .. ": no misuse raised at all")
      assert(#wrong == 0, "not raised at " .. where .. ":\n" .. table.concat(wrong, "\n"))
    end)
  end
end)
