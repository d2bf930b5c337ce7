-- The hostile catalogue (spec/hostile/catalogue.lua) through the libcurl transport: every
-- case against the hostile server, its result checked against the case's expectation, and
-- for cases that say how many requests may arrive (hostile callers: none) the server's count.
local S = require "hostile.support"

describe("hostile catalogue, libcurl transport", function()
  local url
  setup(function() url = S.start() end)
  teardown(function() S.stop() end)

  for _, case in ipairs(S.catalogue) do
    it(case.name, function()
      S.play(case)
      local res
      if case.isolate then res = S.run_curl_isolated(case, url, 20)
      else res = S.run_curl(case, url) end
      local ok, why = S.check(case, res, "curl")
      assert(ok, why)
      if case.requests then
        assert.equal(case.requests, S.count(), "requests the server received")
      end
    end)
  end
end)
