-- LuaRocks package for lua-klaviyo: the C core (klaviyo.core, on the system libcurl) and the
-- Lua modules. `luarocks make rockspec/lua-klaviyo-scm-1.rockspec` from the source tree.
-- The build is a make build (rockspec/Makefile) because it asks pkg-config where libcurl's
-- (and hiredis', for the rate limiter's Redis store) headers are: Debian keeps curl/curl.h under the multiarch /usr/include/x86_64-linux-gnu,
-- where LuaRocks' external dependency search does not look, so this rockspec declares no
-- external_dependencies and needs no extra arguments. lua-cjson stays a dependency for users;
-- where no rocks server is reachable install with --deps-mode=none and the distribution's
-- lua-cjson.
rockspec_format = "3.0"
package = "lua-klaviyo"
version = "scm-1"
source = {
  url = "git+https://github.com/lua-klaviyo/lua-klaviyo.git",
}
description = {
  summary = "Klaviyo API client for Lua with a C core on libcurl",
  detailed = [[
Reaches every operation of Klaviyo's API revision 2026-07-15 from Lua 5.1, 5.3, 5.4 and
LuaJIT: client:call(operation_id, params), pagination, a filter builder, OAuth refresh,
readable error tables. The C core builds requests, checks keys and revisions, keeps every
operation inside Klaviyo's rate limits (in-process, or shared through Redis with hiredis),
retries what is safe to repeat, runs concurrent batches, and talks HTTP through libcurl.
]],
  license = "MIT",
  homepage = "https://github.com/lua-klaviyo/lua-klaviyo",
  labels = { "klaviyo", "http", "api" },
}
dependencies = {
  "lua >= 5.1",
  "lua-cjson",
}
build = {
  type = "make",
  makefile = "rockspec/Makefile",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
    LIBFLAG = "$(LIBFLAG)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  -- LUA_INCDIR again so the install pass picks this ABI's build directory.
  install_variables = {
    LUA_INCDIR = "$(LUA_INCDIR)",
    INST_LIBDIR = "$(LIBDIR)",
    INST_LUADIR = "$(LUADIR)",
  },
  -- the `klaviyo` command (LuaRocks wraps it with the tree's paths)
  install = {
    bin = { klaviyo = "bin/klaviyo" },
  },
}
