-- klaviyo.oauth token store in a JSON file shared by processes on one host: written to a
-- temporary file (mode 0600) and renamed over the old one, so readers see one or the other;
-- no step runs a command (a fork of the whole process, an nginx worker too);
-- the refresh lock is an flock on PATH.lock (the core's spool lock: a dead holder's lapses).
-- A PATH that is a symlink is followed: the write replaces its target, beside which the lock
-- sits, so stores opened through the link and on the target share one file and one lock.
local json = require "klaviyo.oauth.store_json"
local core = require "klaviyo.core"
local M = {}
local mt = { __index = M, __tostring = function() return "klaviyo.oauth file store" end }

-- new(path, initial_tokens?): the initial tokens are written when the file does not exist.
function M.new(path, initial)
  if type(path) ~= "string" or path == "" or path:find("\0", 1, true) then
    error("klaviyo.oauth: file store needs a path (without NUL bytes)", 2)
  end
  local s = setmetatable({ path = path, held = false }, mt)
  if initial and not io.open(path, "r") then assert(s:set(initial)) end
  return s
end

-- The tokens, or nil when the file is missing, holds no JSON or is over MAX_FILE bytes (read
-- no further: a path may name a device or a file that never ends).
local MAX_FILE = 65536
function M:get()
  local f = io.open(self.path, "rb")
  if not f then return nil end
  local raw = f:read(MAX_FILE + 1)
  f:close()
  if not raw or #raw > MAX_FILE then return nil end
  return json.decode(raw)
end

-- The file PATH names, its symlinks followed (as readlink -f); PATH when it cannot be resolved.
local function resolve(path) return core.realpath(path) or path end

-- set(tokens) -> true | nil, err. Every step is checked (encoding, write, fsync, rename): on
-- any failure the temporary file is removed and the old file stays whole. The temporary file
-- is created 0600 whatever the umask, before the tokens are written (core.write_private). The
-- directory is synced after the rename, or a crash could bring back the old file (and its
-- refresh token, which the refresh that wrote this one has spent).
function M:set(t)
  local body, jerr = json.encode(t)
  if not body then return nil, jerr end
  local path = resolve(self.path)
  local tmp = path .. ".tmp" .. tostring(core.random_bytes(6):gsub(".", function(c)
    return string.format("%02x", c:byte()) end))
  local ok, err = core.write_private(tmp, body)   -- removed again if it fails
  if not ok then return nil, err end
  ok, err = os.rename(tmp, path)
  if not ok then os.remove(tmp); return nil, err end
  local dir = path:match("^(.*)/[^/]*$") or "."
  ok, err = core.fsync_path(dir == "" and "/" or dir)
  if not ok then return nil, err end
  return true
end

-- lock() -> true | false (another holds it) | false, err (the lock file cannot be taken: the
-- core's spool lock says "is in use" only for a lock another holds)
function M:lock()
  if self.held then return false end
  local l, err = core.spool_lock(resolve(self.path))
  if not l then return false, not tostring(err):find(" is in use", 1, true) and err or nil end
  self.held = l
  return true
end

function M:unlock()
  if self.held then self.held:release(); self.held = false end
  return true
end

return M
