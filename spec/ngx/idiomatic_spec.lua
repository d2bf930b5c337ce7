-- The idiomatic specs (spec/idiomatic/*_spec.lua) run inside nginx: the test bed's /spec
-- location (ngxapp.specs) runs each file in the worker's content phase with a busted-compatible
-- runner (ngxapp.specrun) and luassert, so every client those specs make is created inside
-- nginx and picks the cosocket transport itself. Each inner test becomes one test here, which
-- fails with the inner message, and fails too when any client of the test was not "ngx".
-- The tests are listed here (outside nginx) with the same runner, so each has its own name.
local T = require "ngx.support"
local R = require "ngx.lua.ngxapp.specrun"
local luassert = require "luassert"
local lfs = require "lfs"

local IDIOMATIC = T.emu.root .. "/spec/idiomatic"

-- Every spec file of spec/idiomatic; clients: its tests each make clients (the pure units
-- make none; they run in nginx's LuaJIT all the same).
local FILES = {
  { name = "events", clients = true }, { name = "profiles", clients = true },
  { name = "consent", clients = true }, { name = "lists", clients = true },
  { name = "segments", clients = true }, { name = "flows", clients = true },
  { name = "metrics", clients = true }, { name = "client_api", clients = true },
  { name = "blame", clients = true }, { name = "hostile_answers", clients = true },
  { name = "resource" }, { name = "validate" },
  { name = "examples" },
}

-- What does not run inside nginx, and why, in one place: a file name with a reason (the whole
-- file), or a file name with {[test full name] = reason}.
local SKIP = {
  examples = "runs examples/*.lua as separate processes (io.popen), scripts rather than " ..
    "code in a worker; the examples run outside nginx in make test's examples step",
}

describe("idiomatic specs inside nginx", function()
  setup(function() T.start() end)
  teardown(function() T.stop() end)

  it("list every spec file of spec/idiomatic, and every skipped test exists", function()
    local on_disk, listed = {}, {}
    for f in lfs.dir(IDIOMATIC) do
      local name = f:match("^(.+)_spec%.lua$")
      if name then on_disk[#on_disk + 1] = name end
    end
    for _, f in ipairs(FILES) do listed[#listed + 1] = f.name end
    table.sort(on_disk); table.sort(listed)
    assert.same(on_disk, listed)
    for file, why in pairs(SKIP) do
      local names = {}
      for _, n in ipairs(R.names(R.load(IDIOMATIC .. "/" .. file .. "_spec.lua"))) do names[n] = true end
      if type(why) == "table" then
        for n in pairs(why) do
          assert.is_true(names[n] ~= nil, "skipped test not in " .. file .. ": " .. n)
        end
      end
    end
  end)

  for _, f in ipairs(FILES) do
    local names = R.names(R.load(IDIOMATIC .. "/" .. f.name .. "_spec.lua", { assert = luassert }))
    local skip = SKIP[f.name]
    describe(f.name .. "_spec.lua", function()
      if type(skip) == "string" then
        for _, name in ipairs(names) do pending(name .. " (not in nginx: " .. skip .. ")") end
        return
      end
      skip = skip or {}
      local out
      setup(function() out = T.run_spec(f.name, skip) end)

      local sends = f.clients and ", sending over cosockets" or ""
      it("ran in an nginx worker's content phase" .. sends, function()
        assert.is_nil(out.error)
        assert.equal("content", out.phase)
        assert.is_number(out.worker)
        assert.are_not.equal(tonumber(T.emu.my_pid()), out.worker)
        assert.equal(#names, #out.results)
        local calls = 0
        for _, r in ipairs(out.results) do calls = calls + (r.ngx_calls or 0) end
        if f.clients then assert.is_true(calls > 0) else assert.equal(0, calls) end
      end)

      for i, name in ipairs(names) do
        if skip[name] then
          pending(name .. " (not in nginx: " .. skip[name] .. ")")
        else
          it(name, function()
            local r = out.results and out.results[i]
            assert(r, "no result from nginx: " .. tostring(out.error))
            assert.equal(name, r.name)
            assert(r.status == "success", r.status .. " inside nginx: " .. tostring(r.message))
            local clients = r.clients or {}
            if f.clients then
              assert(#clients > 0, "the test made no client")
              for _, tr in ipairs(clients) do assert.equal("ngx", tr) end
            else
              assert.equal(0, #clients)
            end
          end)
        end
      end
    end)
  end
end)
