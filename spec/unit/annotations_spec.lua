-- Every public function of a documented module (config.ld's `file` list) carries LuaLS
-- annotations an editor reads: a `---@param` for each parameter, none for a parameter the
-- function lacks, and a `---@return`.
local scan = dofile("tools/api_scan.lua")

describe("LuaLS annotations", function()
  local files = scan.ld_files("config.ld")

  it("cover the library's public modules", function()
    local listed = {}
    for _, f in ipairs(files) do listed[f] = true end
    for _, m in ipairs({ "init", "events", "profiles", "profile_import", "subscriptions", "lists",
                         "segments", "flows", "metrics", "images", "client_api", "tracker",
                         "oauth", "webhooks", "paginate", "errors", "filter" }) do
      assert.is_true(listed["lua/klaviyo/" .. m .. ".lua"], m .. " is not in config.ld")
    end
  end)

  for _, path in ipairs(files) do
    it("are complete in " .. path, function()
      local fns = scan.functions(path)
      assert.is_true(#fns > 0, path .. ": no public function found")
      local problems = {}
      for _, fn in ipairs(fns) do
        for _, p in ipairs(scan.annotation_problems(fn)) do
          problems[#problems + 1] = string.format("%s:%d %s: %s", path, fn.line, fn.name, p)
        end
      end
      assert.are.equal("", table.concat(problems, "\n"))
    end)
  end

  -- The fields a ---@class in lua/klaviyo/types.lua declares.
  local function class_fields(name)
    local fields, inside = {}, false
    for l in io.lines("lua/klaviyo/types.lua") do
      local c = l:match("^%-%-%-@class%s+([%w_.]+)")
      if c then inside = (c == name) end
      local f = inside and l:match("^%-%-%-@field%s+([%w_]+)")
      if f then fields[#fields + 1] = f end
    end
    table.sort(fields)
    return fields
  end

  -- The keys of a `local NAME = { key = "type", ... }` table in a source file.
  local function table_keys(path, name)
    local f = assert(io.open(path))
    local src = f:read("*a")
    f:close()
    local body = assert(src:match("\nlocal " .. name .. " = (%b{})"), path .. ": no " .. name)
    local keys = {}
    for k in body:gmatch("([%a_][%w_]*)%s*=") do keys[#keys + 1] = k end
    table.sort(keys)
    return keys
  end

  it("give klaviyo.Options every option klaviyo.new accepts", function()
    assert.are.same(table_keys("lua/klaviyo/init.lua", "OPTIONS"), class_fields("klaviyo.Options"))
  end)

  it("give klaviyo.TrackerOptions every option the tracker accepts", function()
    assert.are.same(table_keys("lua/klaviyo/tracker.lua", "OPTIONS"),
      class_fields("klaviyo.TrackerOptions"))
  end)

  it("give klaviyo.Error every field of the error table", function()
    local want = { "kind", "status", "code", "title", "detail", "pointer", "parameter",
                   "retry_after", "operation", "request_id", "sent", "meta", "body", "expected",
                   "given" }
    table.sort(want)
    assert.are.same(want, class_fields("klaviyo.Error"))
  end)

  it("are checked: a missing or stray ---@param and a missing ---@return are reported", function()
    local fn = { name = "M.f", params = { "a", "b" },
                 comment = { "--- Does f.", "---@param a string", "---@param c number" } }
    local got = table.concat(scan.annotation_problems(fn), "|")
    assert.are.equal("no ---@param b|---@param c names no parameter|no ---@return", got)
    local ok = { name = "M:g", params = { "self", "x" },
                 comment = { "--- Does g.", "---@param x? table", "---@return boolean" } }
    assert.are.same({}, scan.annotation_problems(ok))
  end)
end)
