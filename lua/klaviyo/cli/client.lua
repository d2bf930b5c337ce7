-- klaviyo.cli.client: the client the command talks through, made from the environment
-- (KLAVIYO_API_KEY, KLAVIYO_PUBLIC_KEY) or --key-file, --base-url, --revision and
-- --limiter redis://...; and, for --dry-run, a stand-in whose call builds the request with
-- client:build, prints it (credentials redacted) and stops before anything is sent.
local gsub, lower = string.gsub, string.lower

local out = require "klaviyo.cli.output"
local args = require "klaviyo.cli.args"

local _M = {}

local function read_key(path)
  local text, err = args.read_file(path, "--key-file")
  if not text then return nil, err end
  text = gsub(gsub(text, "^%s+", ""), "%s+$", "")
  if text == "" then return nil, "--key-file: the file is empty" end
  return text
end

-- client | nil, err (err: the library's error, or a usage error).
function _M.new(opts)
  local klaviyo = require "klaviyo"
  local o = { transport = "curl" }
  local key = os.getenv("KLAVIYO_API_KEY")
  if opts["key-file"] then
    local k, msg = read_key(opts["key-file"])
    if not k then return nil, out.usage(msg) end
    key = k
  end
  local public = os.getenv("KLAVIYO_PUBLIC_KEY")
  out.secret(key)
  if key and key ~= "" then o.api_key = key end
  if public and public ~= "" then o.public_key = public end
  o.base_url = opts["base-url"]
  o.revision = opts.revision
  if opts["no-validate"] then o.validate = false end
  local lim = opts.limiter
  if lim then
    if not lim:match("^rediss?://") then
      return nil, out.usage("--limiter takes a redis://[:password@]host[:port][/db] URL")
    end
    out.secret(lim:match("^rediss?://:?([^@/]+)@"))
    o.limiter = { store = "redis", url = lim }
  end
  local ok, c, err = pcall(klaviyo.new, o)
  if not ok then return nil, out.usage(c) end
  return c, err
end

-- A request from c:build as one JSON object: the Authorization header's credential and
-- every secret the command holds are redacted.
local function shown(b)
  local headers = {}
  for i, h in ipairs(b.headers or {}) do
    local name, value = h[1], h[2]
    if lower(name) == "authorization" then value = (value:match("^(%S+)%s") or "") .. " [redacted]" end
    headers[i] = { name, value }
  end
  return { method = b.method, url = b.url, headers = headers, body = b.body or out.null }
end

local STOP = {}
_M.STOP = STOP

-- The dry-run stand-in: the client's methods, but call and paginate print the first request
-- they would send and raise STOP (caught by the command, which then exits 0).
function _M.dry(client)
  local function build(_, op_id, params, opts)
    local b, err = client:build(op_id, params, opts)
    if not b then return nil, err end
    out.json(shown(b))
    error(STOP, 0)
  end
  local proxy = { call = build, paginate = build, pages = build }
  return setmetatable(proxy, { __index = client })
end

return _M
