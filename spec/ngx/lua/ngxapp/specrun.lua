-- ngxapp.specrun: a small busted-compatible runner, so spec files written for busted run where
-- busted cannot: inside an nginx worker (spec/ngx/idiomatic_spec.lua runs spec/idiomatic's
-- files through the test bed's /spec location, ngxapp.specs). Pure Lua: the wrapper spec
-- uses it outside nginx too, to list a file's tests before nginx runs them.
-- It gives a spec file what those files use: describe/context, it, pending, before_each,
-- after_each, setup/teardown (and their lazy_/strict_ names), finally, and the `assert` the
-- caller passes (luassert). Order as in busted: a describe's setup once before its tests and
-- teardown after them; before_each outer to inner, after_each inner to outer (also after a
-- failure); a test's full name is its describes' names and its own joined by spaces.
--   local R = require "ngxapp.specrun"
--   local tree = R.load(path, { assert = require "luassert" })   -- raises if it cannot load
--   R.names(tree)  -> { full names, in file order }
--   R.run(tree, { skip = {[full name] = reason}, before_test = f(name),
--                 after_test = f(name, result) })
--     -> { {name =, status = "success"|"failure"|"pending"|"skipped", message =}, ... }
local M = {}

local PENDING = {}   -- raised by pending() inside a test: the test is pending, not failed

local function node(name, parent)
  return { name = name, parent = parent, children = {}, setup = {}, teardown = {},
           before_each = {}, after_each = {} }
end

local function full_name(parent, name)
  local parts = { name }
  while parent and parent.name do
    table.insert(parts, 1, parent.name)
    parent = parent.parent
  end
  return table.concat(parts, " ")
end

-- loadfile with an environment, on Lua 5.1/LuaJIT (setfenv) and 5.2+ (loadfile's env).
local function loadfile_env(path, env)
  local setfenv = rawget(_G, "setfenv")
  if setfenv then
    local chunk, err = loadfile(path)
    if chunk then setfenv(chunk, env) end
    return chunk, err
  end
  return loadfile(path, "t", env)
end

-- Loads the spec file at `path`, running its describe blocks to register the tests (as busted
-- does before running any). opts.assert: the `assert` the file sees. Returns the tree.
function M.load(path, opts)
  local root = node(nil, nil)
  local current, running = root, nil
  local env = setmetatable({}, { __index = _G })
  env.assert = opts and opts.assert or assert

  local function hook(kind)
    return function(fn)
      if running then error(kind .. " inside a test", 2) end
      table.insert(current[kind], fn)
    end
  end
  env.describe = function(name, fn)
    if running then error("describe inside a test", 2) end
    local d = node(tostring(name), current)
    table.insert(current.children, d)
    current = d
    local ok, err = pcall(fn)
    current = d.parent
    if not ok then error(err, 0) end
  end
  env.context = env.describe
  env.it = function(name, fn)
    if running then error("it inside a test", 2) end
    table.insert(current.children, { test = true, name = full_name(current, tostring(name)), fn = fn })
  end
  env.pending = function(name)
    if running then error(PENDING, 0) end
    table.insert(current.children, { test = true, name = full_name(current, tostring(name)) })
  end
  env.finally = function(fn)
    if not running then error("finally outside a test", 2) end
    table.insert(running.finally, fn)
  end
  env.setup, env.teardown = hook("setup"), hook("teardown")
  env.lazy_setup, env.lazy_teardown = env.setup, env.teardown
  env.strict_setup, env.strict_teardown = env.setup, env.teardown
  env.before_each, env.after_each = hook("before_each"), hook("after_each")

  local chunk, err = loadfile_env(path, env)
  if not chunk then error(err, 0) end
  chunk()
  root.set_running = function(t) running = t end
  return root
end

local function each_test(n, fn)
  for _, c in ipairs(n.children) do
    if c.test then fn(c) else each_test(c, fn) end
  end
end

-- The full names of the tree's tests, in file order.
function M.names(tree)
  local out = {}
  each_test(tree, function(t) out[#out + 1] = t.name end)
  return out
end

-- The error's text, and where in a spec file it was raised (the first frame in one).
local function describe_error(e)
  if e == PENDING then return PENDING end
  local msg = type(e) == "string" and e or tostring(e)
  local where
  for line in debug.traceback("", 2):gmatch("[^\n]+") do
    where = line:match("^%s*(%S+_spec%.lua:%d+):")
    if where then break end
  end
  if where and not msg:find(where, 1, true) then msg = msg .. " (at " .. where .. ")" end
  return msg
end

local function call(fn)
  local ok, err = xpcall(fn, describe_error)
  if ok then return true end
  return false, err
end

-- Runs each function of `list` in order; the first failure's message, or nil.
local function call_all(list)
  for _, fn in ipairs(list) do
    local ok, err = call(fn)
    if not ok then return err == PENDING and "pending() outside a test" or err end
  end
end

-- The before_each lists from the outermost describe to `n`.
local function chain(n)
  local out = {}
  while n do
    table.insert(out, 1, n)
    n = n.parent
  end
  return out
end

local function run_test(tree, block, t, opts, results)
  local result = { name = t.name }
  results[#results + 1] = result
  local reason = opts.skip and opts.skip[t.name]
  if reason then
    result.status, result.message = "skipped", reason
    return
  end
  if not t.fn then
    result.status = "pending"
    return
  end
  if opts.before_test then opts.before_test(t.name) end
  local state = { finally = {} }
  tree.set_running(state)
  local blocks = chain(block)
  local err
  for _, b in ipairs(blocks) do
    err = call_all(b.before_each)
    if err then err = "before_each: " .. err; break end
  end
  local pending = false
  if not err then
    local ok, terr = call(t.fn)
    if not ok then
      if terr == PENDING then pending = true else err = terr end
    end
  end
  local ferr = call_all(state.finally)
  for i = #blocks, 1, -1 do
    local aerr = call_all(blocks[i].after_each)
    ferr = ferr or (aerr and "after_each: " .. aerr)
  end
  tree.set_running(nil)
  err = err or ferr
  if err then result.status, result.message = "failure", err
  elseif pending then result.status = "pending"
  else result.status = "success" end
  if opts.after_test then opts.after_test(t.name, result) end
end

local function run_block(tree, block, opts, results)
  local err = call_all(block.setup)
  if err then
    each_test(block, function(t)
      results[#results + 1] = { name = t.name, status = "failure", message = "setup: " .. err }
    end)
  else
    for _, c in ipairs(block.children) do
      if c.test then run_test(tree, block, c, opts, results)
      else run_block(tree, c, opts, results) end
    end
  end
  local terr = call_all(block.teardown)
  if terr and #results > 0 and results[#results].status == "success" then
    results[#results].status, results[#results].message = "failure", "teardown: " .. terr
  end
end

-- Runs the tree's tests in file order; one result per test (see the top of this file).
function M.run(tree, opts)
  local results = {}
  run_block(tree, tree, opts or {}, results)
  return results
end

return M
