-- Files for specs: a file's bytes, writing one, whether one exists, and a fresh temporary
-- directory. Not a spec itself.
local M = {}

--- The bytes of `path`, or nil and io.open's message when it cannot be read.
function M.read(path)
  local f, err = io.open(path, "rb")
  if not f then return nil, err end
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes `s` to `path` (replacing it); raises when it cannot.
function M.write(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

--- The size of the file at `path` in bytes; 0 when it cannot be opened.
function M.size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

function M.exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- A new empty directory under the temporary directory (the caller removes it).
function M.tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p '" .. dir .. "'"))
  return dir
end

return M
