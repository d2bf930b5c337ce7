-- `klaviyo call` passes query values through client:call's check: a value the spec does not
-- allow exits 3 (refused locally) naming the parameter, and nothing is sent.
local C = require "cli.support"
local emu = C.emu
local run = C.run

local BASE = "--base-url=" .. emu.url

describe("klaviyo (the command) and query values", function()
  for _, verb in ipairs { "call", "pages" } do
    it(verb .. " refuses a filter or an enum value the operation does not allow, sending nothing",
      function()
        local acct, env = C.account()
        for _, case in ipairs {
          { "get_metrics", 'filter=equals(name,"Placed Order")', "filter", "integration.name" },
          { "get_profiles", "sort=nme", "sort", "-created" },
          { "get_profiles", "fields[profile]=emial", "fields[profile]", 'did you mean \\"email\\"' },
        } do
          local r = run { verb, case[1], case[2], BASE, env = env }
          assert.are.equal(3, r.code, r.stderr)
          assert.matches(case[3], r.stderr, 1, true)
          assert.matches(case[4], r.stderr, 1, true)
          assert.matches("refused", r.stderr, 1, true)
        end
        assert.are.same({}, C.requests(acct))
      end)
  end
end)
