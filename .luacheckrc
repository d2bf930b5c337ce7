-- luacheck settings: library code runs on every Lua; nginx-side code sees `ngx`.
std = "max"
max_line_length = 110
exclude_files = { "build/**", "tools/node/node_modules/**" }
files["spec/**"] = { std = "+busted" }
files["emulator/lua/**"] = { globals = { "ngx" } }
files["lua/klaviyo/transport/ngx.lua"] = { read_globals = { "ngx" } }
files["lua/klaviyo/transport/ngx_http.lua"] = { read_globals = { "ngx" } }
files["lua/klaviyo/operations.lua"] = { max_line_length = false }
