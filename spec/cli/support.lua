-- Shared by spec/cli/*_spec.lua (not a spec itself): runs bin/klaviyo as a process under the
-- interpreter running busted, with the environment given, and keeps every byte it wrote so
-- a spec can check that no key ever appeared in any output.
local emu = require "helpers.emulator"
local cjson = require "cjson.safe"

local M = { emu = emu }

local INTERP = rawget(_G, "jit") and "luajit" or ("lua" .. _VERSION:match("%d+%.%d+"))
M.INTERP = INTERP
M.BIN = emu.root .. "/bin/klaviyo"

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
M.quote = quote

local function slurp(path)
  local f = io.open(path, "rb")
  local s = f and f:read("*a") or ""
  if f then f:close() end
  return s
end

-- Every output of every run, for the "the key never appears" checks.
M.outputs = {}

-- run{args..., env = {NAME = value}, stdin = text, memory_kb = N, stdout_to = PATH} ->
-- {code, stdout, stderr, err (decoded stderr JSON or nil), lines (stdout decoded line by
-- line), doc (stdout decoded)}. memory_kb caps the process's address space (ulimit -v);
-- stdout_to sends its standard output there instead (e.g. /dev/full).
function M.run(t)
  local out, err_path = os.tmpname(), os.tmpname()
  local env = { "env -u KLAVIYO_API_KEY -u KLAVIYO_PUBLIC_KEY" }
  for k, v in pairs(t.env or {}) do env[#env + 1] = k .. "=" .. quote(v) end
  local argv = {}
  for i = 1, #t do argv[i] = quote(t[i]) end
  local stdin, inp = " </dev/null", nil
  if t.stdin then
    inp = os.tmpname()
    local f = assert(io.open(inp, "wb"))
    f:write(t.stdin)
    f:close()
    stdin = " <" .. quote(inp)
  end
  local limit = t.memory_kb and ("ulimit -v " .. t.memory_kb .. "; ") or ""
  local cmd = limit .. table.concat(env, " ") .. " " .. INTERP .. " " .. quote(M.BIN) .. " " ..
    table.concat(argv, " ") .. stdin .. " >" .. (t.stdout_to or out) .. " 2>" .. err_path .. "; echo $?"
  local p = io.popen(cmd)
  local code = tonumber(p:read("*a"):match("(%d+)%s*$"))
  p:close()
  local r = { code = code, stdout = slurp(out), stderr = slurp(err_path) }
  os.remove(out)
  os.remove(err_path)
  if inp then os.remove(inp) end
  M.outputs[#M.outputs + 1] = r.stdout .. r.stderr
  r.err = cjson.decode(r.stderr)
  r.doc = cjson.decode(r.stdout)
  r.lines = {}
  for line in r.stdout:gmatch("[^\n]+") do r.lines[#r.lines + 1] = cjson.decode(line) end
  return r
end

-- A fresh emulator account with rate limits off, and the environment and options that point
-- the command at it.
function M.account()
  local acct = emu.account()
  emu.limits({ ["*"] = "off" }, acct)
  return acct, { KLAVIYO_API_KEY = acct.private_key, KLAVIYO_PUBLIC_KEY = acct.public_key }
end

-- The account's recorded requests, optionally one operation's.
M.requests = emu.requests

-- The path of a new temporary file holding `text`.
function M.tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

return M
