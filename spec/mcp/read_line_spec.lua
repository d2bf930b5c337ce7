-- core.read_line(file, max): a line of a file with a bound; a longer line is skipped to its
-- newline without being kept, and reading goes on at the next line.
local core = require "klaviyo.core"

local function file_of(bytes)
  local f = io.tmpfile()
  f:write(bytes)
  f:seek("set", 0)
  return f
end

describe("core.read_line", function()
  it("gives each line without its newline, bytes as they are, the last one without a newline too", function()
    local f = file_of("ab\r\n\nc\0d\nlast")
    assert.equal("ab\r", core.read_line(f, 10))
    assert.equal("", core.read_line(f, 10))
    assert.equal("c\0d", core.read_line(f, 10))
    assert.equal("last", core.read_line(f, 10))
    assert.is_nil(core.read_line(f, 10))
    assert.is_nil(core.read_line(f, 10))
    f:close()
  end)

  it("answers false and the length for a line over max, then reads the next line", function()
    local f = file_of(string.rep("x", 11) .. "\n" .. string.rep("y", 10) .. "\nz")
    local line, n = core.read_line(f, 10)
    assert.is_false(line)
    assert.equal(11, n)
    assert.equal(string.rep("y", 10), core.read_line(f, 10))
    assert.equal("z", core.read_line(f, 10))
    f:close()
  end)

  it("raises for a closed file or a negative bound", function()
    local f = file_of("a\n")
    assert.has_error(function() core.read_line(f, -1) end)
    f:close()
    assert.has_error(function() core.read_line(f, 10) end)
    assert.has_error(function() core.read_line("a", 10) end)
  end)
end)
