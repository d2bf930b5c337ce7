---@meta
-- luacheck: no unused
-- LuaLS types shared by the library's modules: the client, its options, the error table and
-- the tables the API hands back. lua-language-server reads this file for completion and type
-- checks; Lua never requires it (nothing here runs).

---@class klaviyo.Error
---@field kind string what failed: "http", "transport", "refused", "decode", "encode", "oauth", ...
---@field status integer? the HTTP status Klaviyo answered with
---@field code string? Klaviyo's error code (e.g. "invalid", "throttled")
---@field title string? Klaviyo's error title
---@field detail string? what was wrong, in words
---@field pointer string? JSON pointer to the offending part of the request body
---@field parameter string? the query parameter Klaviyo refused
---@field expected string? a body refused locally: what the spec wants at `pointer`
---@field given string? a body refused locally: what the body holds there
---@field retry_after number? seconds to wait before retrying (from Retry-After)
---@field operation string? the operation id of the call
---@field request_id string? Klaviyo's request id, for support
---@field sent boolean? whether the request may have reached Klaviyo
---@field meta table? Klaviyo's error `meta`
---@field body string? the response body as received

---@class klaviyo.RetryOptions
---@field attempts integer? attempts in all (default 4)
---@field max_time number? seconds for all attempts (default 60)
---@field base number? first back-off in seconds (default 0.5)
---@field cap number? longest back-off in seconds (default 20)

---@class klaviyo.Limits
---@field burst number? requests per second
---@field steady number? requests per minute
---@field daily number? requests per day

---@class klaviyo.LimiterOptions
---@field store "local"|"redis"|"shdict"|nil where the rate limiter keeps its state (default "local")
---@field url string? Redis URL, for store "redis": redis://[:password@]host[:port][/db]
---@field dict string? lua_shared_dict name, for store "shdict"
---@field lock_ttl number? seconds a dead worker's lock on a key lasts, for store "shdict" (1)
---@field safety number? share of Klaviyo's limits to use, in (0, 1] (default 0.95)
---@field prefix string? prefix of the limiter's Redis keys
---@field limits table<string, klaviyo.Limits>? per-operation limits
---@field account string? names the account in limiter keys

---@class klaviyo.OAuthStore
---@field get fun(self: klaviyo.OAuthStore): klaviyo.OAuthTokens?
---@field set fun(self: klaviyo.OAuthStore, tokens: klaviyo.OAuthTokens)
---@field lock fun(self: klaviyo.OAuthStore, seconds: number): boolean
---@field unlock fun(self: klaviyo.OAuthStore)

---@class klaviyo.OAuthTokens
---@field access_token string
---@field refresh_token string?
---@field expires_at number? epoch seconds
---@field scope string?

---@class klaviyo.OAuthOptions
---@field client_id string
---@field client_secret string
---@field tokens klaviyo.OAuthStore where the installation's tokens live (klaviyo.oauth.stores)
---@field margin number? refresh this many seconds before expiry (default 60)
---@field lock_timeout number? seconds to wait for another refresh (default 30)

---@class klaviyo.Options
---@field api_key string? private API key (pk_...)
---@field access_token string? OAuth access token (instead of api_key)
---@field public_key string? public key (company id) for the client API
---@field base_url string? default "https://a.klaviyo.com"
---@field revision string? API revision header
---@field timeout number? seconds for a whole request
---@field connect_timeout number? seconds to connect
---@field refresh (fun(client: klaviyo.Client): string?, any)? new access token after a 401
---@field user_agent string? User-Agent header
---@field transport "curl"|"ngx"|nil how bytes move (default "ngx" inside nginx, else "curl")
---@field limiter klaviyo.LimiterOptions|false|nil client-side rate limiting (false: none)
---@field retry klaviyo.RetryOptions? retry policy
---@field limits table<string, klaviyo.Limits>? per-operation limits, by operation id
---@field account string? names the account in limiter keys (default a hash of the key)
---@field oauth klaviyo.OAuthOptions? an OAuth app's installation, refreshed before expiry
---@field proxy string? a proxy URL for every request (curl transport; named, so used for loopback too)
---@field ca_file string? PEM file of the CAs that verify the server (curl transport)
---@field ca_path string? directory of hashed CA certificates (curl transport)
---@field client_cert string? PEM client certificate, for servers that ask for one (curl transport)
---@field client_key string? the client certificate's private key (curl transport)
---@field on_request fun(info: table)? called before every attempt (credentials redacted)
---@field on_response fun(info: table)? called after every attempt (status, duration, error code)
---@field validate boolean? check request bodies against Klaviyo's spec before sending (default true)

---@class klaviyo.CallOptions
---@field retry klaviyo.RetryOptions? retry policy for this call (attempts, max_time)
---@field idempotent boolean? allow repeating a call that is not safe to repeat by itself
---@field validate boolean? check this call's body against Klaviyo's spec (default: the client's)

---@class klaviyo.Response
---@field status integer
---@field headers table<string, string>
---@field ratelimit table?

---@class klaviyo.Request
---@field method string
---@field url string
---@field headers string[][] {name, value} pairs
---@field body string?

---@class klaviyo.Client
---@field events klaviyo.events
---@field profiles klaviyo.profiles
---@field consent klaviyo.subscriptions
---@field lists klaviyo.lists
---@field segments klaviyo.segments
---@field flows klaviyo.flows
---@field metrics klaviyo.metrics
---@field client_api klaviyo.client_api
---@field images klaviyo.images
local Client = {}

-- The client's methods, as lua/klaviyo/init.lua defines them.

---@param op_id string operation id (see klaviyo.operations)
---@param params table? path, query and body parameters
---@param opts klaviyo.CallOptions?
---@return any|nil doc the decoded document (true for an empty body)
---@return klaviyo.Response|klaviyo.Error res_or_err
function Client:call(op_id, params, opts) end

---@param op_id string operation id
---@param params table? parameters as for call
---@param opts klaviyo.CallOptions?
---@return klaviyo.Request? req
---@return klaviyo.Error? err
function Client:build(op_id, params, opts) end

---@param requests table[] list of {operation_id, params [, opts]}
---@param opts {concurrency: integer?}?
---@return table[] results {doc, response} or {nil, err}, in order
function Client:batch(requests, opts) end

---@param op_id string a GET operation id
---@param params table?
---@return fun(): table|false|nil, klaviyo.Error? pages iterator of page documents
function Client:pages(op_id, params) end

---@param op_id string a GET operation id
---@param params table?
---@return fun(): table|false|nil, klaviyo.Error? items iterator of resources
function Client:paginate(op_id, params) end

---@param opts klaviyo.TrackerOptions
---@return klaviyo.Tracker? tracker
---@return klaviyo.Error? err
function Client:tracker(opts) end

---@return table<string, table> counters by operation id
function Client:stats() end

---@param token string
---@return true? ok
---@return klaviyo.Error? err
function Client:set_access_token(token) end

---@return true
function Client:close() end

---@class klaviyo.TrackerOptions
---@field spool string path of the spool file (`%w` = nginx worker id)
---@field batch integer? events per job (default and max 1000)
---@field interval number? seconds between deliveries (default 1)
---@field max_spool_bytes number? back-pressure threshold (default 64 MiB)
---@field max_batch_bytes number? bytes per job (default 5 MB)
---@field sync "always"|"batch"|"none"|nil when the spool is fsynced (default "batch")
---@field on_reject fun(err: klaviyo.Error, entry: table)? called for each refused event
---@field auto boolean? deliver from track (default true)
---@field flush_timeout number? seconds (default 60)
---@field backoff_base number? seconds (default 0.5)
---@field backoff_cap number? seconds (default 30)
---@field compact_bytes number? compact the spool past this size (default 1 MiB)
---@field timer boolean? nginx flusher timer (default true inside nginx)
---@field concurrency integer? jobs sent at once by one delivery, 1..16

---@class klaviyo.FilterExpr
---@field text string the filter text
