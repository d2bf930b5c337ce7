-- Pure unit specs for ngxapp.specrun, the busted-compatible runner that runs spec files inside
-- nginx (spec/ngx/idiomatic_spec.lua): order of hooks, names, failures, pending and skips, on
-- spec files written to a temporary directory.
local R = require "ngx.lua.ngxapp.specrun"
local luassert = require "luassert"

local PROBE = "ngx.specrun_probe"   -- the log the temporary spec files write to

local files = {}
local function spec_file(text)
  local base = os.tmpname()
  local path = base .. "_spec.lua"
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  files[#files + 1] = base
  files[#files + 1] = path
  return path
end

local log
before_each(function()
  log = {}
  package.loaded[PROBE] = log
end)
after_each(function()
  package.loaded[PROBE] = nil
  for _, p in ipairs(files) do os.remove(p) end
  files = {}
end)

local function load_run(text, opts)
  local tree = R.load(spec_file(text), { assert = luassert })
  return R.names(tree), R.run(tree, opts)
end

describe("specrun", function()
  it("runs hooks in busted's order and names tests by their describes", function()
    local names, results = load_run([[
      local log = require "ngx.specrun_probe"
      local function say(s) return function() log[#log + 1] = s end end
      describe("outer", function()
        setup(say("setup"))
        teardown(say("teardown"))
        before_each(say("before outer"))
        after_each(say("after outer"))
        it("one", say("one"))
        describe("inner", function()
          before_each(say("before inner"))
          after_each(say("after inner"))
          it("two", function() finally(say("finally")); log[#log + 1] = "two" end)
        end)
      end)
      it("top", say("top"))
    ]])
    assert.same({ "outer one", "outer inner two", "top" }, names)
    assert.same({ "setup", "before outer", "one", "after outer",
                  "before outer", "before inner", "two", "finally", "after inner", "after outer",
                  "teardown", "top" }, log)
    for i, r in ipairs(results) do
      assert.equal(names[i], r.name)
      assert.equal("success", r.status)
    end
  end)

  it("reports a failed assertion with its message and line, and goes on", function()
    local _, results = load_run([[
      local log = require "ngx.specrun_probe"
      describe("d", function()
        after_each(function() log[#log + 1] = "after" end)
        it("fails", function()
          assert.equal(1, 2)
        end)
        it("raises", function() error("boom") end)
        it("passes", function() log[#log + 1] = "passes" end)
      end)
    ]])
    assert.equal("failure", results[1].status)
    assert.matches("Expected objects to be equal", results[1].message)
    assert.matches("_spec%.lua:5:", results[1].message)
    assert.equal("failure", results[2].status)
    assert.matches("boom", results[2].message)
    assert.equal("success", results[3].status)
    assert.same({ "after", "after", "passes", "after" }, log)
  end)

  it("marks pending tests, skips the named ones without running them", function()
    local _, results = load_run([[
      local log = require "ngx.specrun_probe"
      pending("later")
      it("pends itself", function() pending("not yet"); log[#log + 1] = "ran on" end)
      it("skipped", function() log[#log + 1] = "skipped ran" end)
    ]], { skip = { skipped = "a reason" } })
    assert.same({ "pending", "pending", "skipped" },
      { results[1].status, results[2].status, results[3].status })
    assert.equal("a reason", results[3].message)
    assert.same({}, log)
  end)

  it("fails the tests of a block whose setup or before_each fails, without running them", function()
    local _, results = load_run([[
      local log = require "ngx.specrun_probe"
      describe("broken setup", function()
        setup(function() error("no account") end)
        it("a", function() log[#log + 1] = "a" end)
        describe("deeper", function() it("b", function() log[#log + 1] = "b" end) end)
      end)
      describe("broken before_each", function()
        before_each(function() error("no client") end)
        after_each(function() log[#log + 1] = "after" end)
        it("c", function() log[#log + 1] = "c" end)
      end)
    ]])
    assert.same({ "broken setup a", "broken setup deeper b", "broken before_each c" },
      { results[1].name, results[2].name, results[3].name })
    assert.matches("^setup: .*no account", results[1].message)
    assert.matches("^setup: .*no account", results[2].message)
    assert.matches("^before_each: .*no client", results[3].message)
    assert.same({ "after" }, log)
  end)

  it("calls before_test and after_test around each test that runs", function()
    local seen = {}
    local _, results = load_run([[ it("x", function() end) ]], {
      before_test = function(name) seen[#seen + 1] = "before " .. name end,
      after_test = function(name, r) seen[#seen + 1] = "after " .. name; r.extra = 1 end,
    })
    assert.same({ "before x", "after x" }, seen)
    assert.equal(1, results[1].extra)
  end)

  it("raises when the file does not load", function()
    assert.has_error(function() R.load(spec_file("describe(")) end)
    assert.has_error(function() R.load("/nonexistent/x_spec.lua") end)
  end)
end)
