-- klaviyo.core's file operations (src/lua_file.c): realpath as `readlink -f` resolves, and
-- write_private's new file, mode 0600 whatever the umask, written whole or not left behind.
local core = require "klaviyo.core"
local P = require "helpers.process"

local slurp = require("helpers.files").read

local function sh(cmd) return (P.sh(cmd):gsub("\n$", "")) end

describe("klaviyo.core file operations", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. P.quote(dir .. "/real")))
    dir = sh("cd " .. P.quote(dir) .. " && pwd -P")   -- the temporary directory may be a link
  end)
  after_each(function() os.execute("rm -rf " .. P.quote(dir)) end)

  describe("realpath", function()
    it("follows every symlink, as readlink -f does", function()
      assert(io.open(dir .. "/real/f", "w")):close()
      assert(os.execute(("ln -s real %s && ln -s ../real/f %s"):format(P.quote(dir .. "/d"),
        P.quote(dir .. "/real/l"))))
      for _, p in ipairs({ dir .. "/d/f", dir .. "/d/l", dir .. "/d/../real/./f" }) do
        assert.equal(dir .. "/real/f", core.realpath(p))
        assert.equal(sh("readlink -f -- " .. P.quote(p)), core.realpath(p))
      end
    end)

    it("a last component that does not exist, or a link to one, is kept as named", function()
      assert(os.execute(("ln -s real %s && ln -s new %s && ln -s /%s/real/abs %s"):format(
        P.quote(dir .. "/d"), P.quote(dir .. "/real/dangling"), dir:sub(2), P.quote(dir .. "/real/to_abs"))))
      for _, p in ipairs({ dir .. "/d/missing", dir .. "/d/dangling", dir .. "/d/to_abs" }) do
        assert.equal(sh("readlink -f -- " .. P.quote(p)), core.realpath(p), p)
      end
      assert.equal(dir .. "/real/new", core.realpath(dir .. "/d/dangling"))
    end)

    it("nil, err naming the path when a directory on it is missing, or links loop", function()
      local p = dir .. "/nowhere/f"
      local r, err = core.realpath(p)
      assert.is_nil(r)
      assert.matches("cannot resolve " .. p:gsub("%p", "%%%0") .. ": No such file", err)
      assert(os.execute(("ln -s b %s && ln -s a %s"):format(P.quote(dir .. "/a"), P.quote(dir .. "/b"))))
      r, err = core.realpath(dir .. "/a")
      assert.is_nil(r)
      assert.matches("symbolic links", err)
    end)

    it("a path holding a NUL byte raises", function()
      assert.has_error(function() core.realpath(dir .. "/f\0x") end)
      assert.has_error(function() core.write_private(dir .. "/f\0x", "") end)
      assert.has_error(function() core.fsync_path(dir .. "\0x") end)
    end)
  end)

  describe("write_private", function()
    it("creates the file 0600 even under umask 277, holding every byte", function()
      local p, body = dir .. "/t.json", ("x"):rep(200000) .. "\0end"
      local script = ("package.cpath = %q .. '/?.so;' .. package.cpath " ..
        "local f = io.open(%q, 'rb') local b = f:read('*a') f:close() " ..
        "print(require('klaviyo.core').write_private(%q, b))"):format(P.build_dir(), dir .. "/body", p)
      local f = assert(io.open(dir .. "/body", "wb"))
      f:write(body)
      f:close()
      assert.equal("true", sh(("umask 277; %s -e %s"):format(P.interpreter(), P.quote(script))))
      assert.equal("600", sh("stat -c %a " .. P.quote(p)))
      assert.equal(body, slurp(p))
    end)

    it("never an existing file, never through a symlink: nil, err, the file untouched", function()
      local p = dir .. "/t.json"
      local f = assert(io.open(p, "w"))
      f:write("old")
      f:close()
      local ok, err = core.write_private(p, "new")
      assert.is_nil(ok)
      assert.matches("cannot create " .. p:gsub("%p", "%%%0") .. ": File exists", err)
      assert.equal("old", slurp(p))
      assert(os.execute(("ln -s %s %s"):format(P.quote(dir .. "/real/target"), P.quote(dir .. "/link"))))
      ok, err = core.write_private(dir .. "/link", "new")
      assert.is_nil(ok)
      assert.matches("cannot create", err)
      assert.is_nil(slurp(dir .. "/real/target"))
    end)

    it("a write that fails (file size limit) leaves no file", function()
      local p = dir .. "/big"
      local script = ("package.cpath = %q .. '/?.so;' .. package.cpath " ..
        "print(require('klaviyo.core').write_private(%q, ('x'):rep(100000)))"):format(P.build_dir(), p)
      local out = sh(("trap '' XFSZ; ulimit -f 8; %s -e %s"):format(P.interpreter(), P.quote(script)))
      assert.matches("^nil\tcannot write " .. p:gsub("%p", "%%%0") .. ": File too large", out)
      assert.is_nil(slurp(p))
    end)
  end)
end)
