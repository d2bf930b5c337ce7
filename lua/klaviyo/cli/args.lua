-- klaviyo.cli.args: reads the command line into {words = {...}, pairs = {{name, value}...},
-- opts = {name = value}}. `name=value` words are parameters (a name may repeat); words
-- starting with `--` are options (`--name value` or `--name=value`); anything else is a
-- positional word (after `--`, every word is). An option given twice, or a word starting
-- with `-` that is no option, is a usage mistake: nil, message. Credentials are never taken
-- from the command line: `ps` shows it to every user of the machine.
local format, sub, find, concat = string.format, string.sub, string.find, table.concat

local _M = {}

-- Option -> true when it takes a value, false for a flag.
local OPTIONS = {
  ["key-file"] = true, ["base-url"] = true, limiter = true, revision = true, body = true,
  properties = true, ["unique-id"] = true, value = true, ["value-currency"] = true, time = true,
  ["consented-at"] = true, source = true, list = true,
  ["dry-run"] = false, ["no-validate"] = false, help = false, ["read-only"] = false, historical = false,
  transactional = false, backfill = false,
}

-- Options that would put a secret on the command line.
local SECRET = { key = true, ["api-key"] = true, ["private-key"] = true, ["access-token"] = true,
                 token = true }

function _M.parse(argv)
  local words, pairs_, opts = {}, {}, {}
  local i, n = 1, #argv
  while i <= n do
    local a = argv[i]
    if a == "-h" then
      opts.help = true
    elseif a == "--" then
      for j = i + 1, n do words[#words + 1] = argv[j] end
      break
    elseif sub(a, 1, 2) == "--" then
      local name, value = a:match("^%-%-([^=]+)=(.*)$")
      name = name or sub(a, 3)
      if SECRET[name] then
        return nil, format("--%s: credentials are read from the environment (KLAVIYO_API_KEY, " ..
          "KLAVIYO_PUBLIC_KEY) or --key-file, never from an argument", name)
      end
      local takes = OPTIONS[name]
      if takes == nil then return nil, format("unknown option --%s", name) end
      if takes then
        if value == nil then
          i = i + 1
          value = argv[i]
          if value == nil then return nil, format("option --%s needs a value", name) end
        end
        if opts[name] ~= nil then return nil, format("option --%s given twice", name) end
        opts[name] = value
      else
        if value ~= nil then return nil, format("option --%s takes no value", name) end
        opts[name] = true
      end
    elseif sub(a, 1, 1) == "-" and #a > 1 then
      return nil, format("unknown option %s (put -- before a word starting with -)", a)
    else
      local eq = find(a, "=", 1, true)
      if eq and eq > 1 and not find(sub(a, 1, eq - 1), "[%s]") then
        pairs_[#pairs_ + 1] = { sub(a, 1, eq - 1), sub(a, eq + 1) }
      else
        words[#words + 1] = a
      end
    end
    i = i + 1
  end
  return { words = words, pairs = pairs_, opts = opts }
end

-- Splits a list value given comma-separated ("a,b") into its items.
function _M.split(v)
  local out = {}
  for item in (v .. ","):gmatch("([^,]*),") do
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

-- The most bytes read from a file or standard input: Klaviyo takes no request over 5 MB, and
-- a file without end (/dev/zero) must not fill the memory.
_M.MAX_INPUT = 5 * 1024 * 1024

-- All of an open file up to MAX_INPUT bytes: the text, or nil, message naming `what`.
local function read_all(f, what)
  local parts, n = {}, 0
  while true do
    local chunk, err = f:read(65536)
    if chunk == nil then
      if err then return nil, format("%s: cannot read: %s", what, tostring(err)) end
      return concat(parts)
    end
    n = n + #chunk
    if n > _M.MAX_INPUT then
      return nil, format("%s: more than %d bytes (Klaviyo takes at most 5 MB a request)", what,
        _M.MAX_INPUT)
    end
    parts[#parts + 1] = chunk
  end
end

-- The text of the file at `path`, or nil, message naming `what` (the option).
function _M.read_file(path, what)
  local f, err = io.open(path, "rb")
  if not f then return nil, format("%s: cannot read %s", what, tostring(err)) end
  local text, msg = read_all(f, what)
  f:close()
  return text, msg
end

-- Reads `@file` or `-` (standard input): the text, or nil, message. Anything else is the
-- text itself.
function _M.source(v, what)
  if v == "-" then return read_all(io.stdin, what) end
  if sub(v, 1, 1) ~= "@" then return v end
  return _M.read_file(sub(v, 2), what)
end

return _M
