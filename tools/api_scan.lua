-- Finds the public functions of the library's documented modules, for the annotation spec
-- (spec/unit/annotations_spec.lua) and the documentation check (tools/docs-check).
-- The documented modules are config.ld's `file` list. A public function is one defined at the
-- top level on the table the module returns (`function M.f(...)`, `function M:f(...)`,
-- `M.f = function(...)`) or a method of an object it hands out (`function obj:f(...)`).
-- Each comes with the comment block directly above it.
local _M = {}

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

-- The `file` list of an LDoc configuration file (config.ld is Lua).
function _M.ld_files(path)
  local env = {}
  local src = read(path or "config.ld")
  local chunk
  if setfenv then
    chunk = assert(loadstring(src, "=config.ld"))
    setfenv(chunk, env)
  else
    chunk = assert(load(src, "=config.ld", "t", env))
  end
  chunk()
  return env.file
end

local function params_of(list)
  local out = {}
  for p in list:gmatch("[^,%s]+") do out[#out + 1] = p end
  return out
end

-- Public functions of one source file: a list of {name =, line =, params = {...},
-- comment = {lines above, top first}}. `params` holds `self` for a method declared with `:`.
function _M.functions(path)
  local lines = {}
  for l in (read(path) .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local mod
  for i = #lines, 1, -1 do
    mod = lines[i]:match("^return%s+([%a_][%w_]*)%s*$")
    if mod or lines[i]:match("%S") then break end
  end
  local found = {}
  for i, l in ipairs(lines) do
    local tbl, sep, name, list = l:match("^function%s+([%a_][%w_]*)([.:])([%a_][%w_]*)%s*%(([^)]*)%)")
    if not tbl then
      tbl, name, list = l:match("^([%a_][%w_]*)%.([%a_][%w_]*)%s*=%s*function%s*%(([^)]*)%)")
      sep = "."
    end
    if tbl and (tbl == mod or sep == ":") then
      local params = params_of(list)
      if sep == ":" then table.insert(params, 1, "self") end
      local comment, j = {}, i - 1
      while j >= 1 and lines[j]:match("^%s*%-%-") do
        table.insert(comment, 1, lines[j])
        j = j - 1
      end
      found[#found + 1] = { name = tbl .. sep .. name, line = i, params = params, comment = comment }
    end
  end
  return found
end

-- LuaLS annotations in a comment block: the names given by `---@param` and whether a
-- `---@return` is there.
function _M.annotations(comment)
  local params, returns = {}, false
  for _, l in ipairs(comment) do
    local p = l:match("^%s*%-%-%-@param%s+([%a_][%w_]*%??)") or l:match("^%s*%-%-%-@param%s+(%.%.%.)")
    if p then params[#params + 1] = (p:gsub("%?$", "")) end
    if l:match("^%s*%-%-%-@return") then returns = true end
  end
  return params, returns
end

-- What is wrong with one function's LuaLS annotations, as a list of messages.
function _M.annotation_problems(fn)
  local problems = {}
  local given, returns = _M.annotations(fn.comment)
  local has = {}
  for _, p in ipairs(given) do has[p] = true end
  local takes = {}
  for _, p in ipairs(fn.params) do
    takes[p] = true
    -- `self` of a `:` method is implied; LuaLS takes it from the class
    if not has[p] and not (p == "self" and fn.name:find(":", 1, true)) then
      problems[#problems + 1] = "no ---@param " .. p
    end
  end
  for _, p in ipairs(given) do
    if not takes[p] then problems[#problems + 1] = "---@param " .. p .. " names no parameter" end
  end
  if not returns then problems[#problems + 1] = "no ---@return" end
  return problems
end

-- Whether a comment block is a doc comment LDoc reads: it opens with `---` followed by text
-- (not a LuaLS `---@` tag alone).
function _M.documented(comment)
  for _, l in ipairs(comment) do
    if l:match("^%s*%-%-%-[^@%-]") or l:match("^%s*%-%-%-$") then return true end
  end
  return false
end

return _M
