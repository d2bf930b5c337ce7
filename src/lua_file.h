/*
 * lua_file.h: file operations the Lua layer needs, done in the process instead of a shell
 * (src/lua_file.c). Registered by src/lua_klaviyo.c in `klaviyo.core`.
 */
#ifndef KL_LUA_FILE_H
#define KL_LUA_FILE_H

#include <lua.h>

/* lua_CFunction: (path) -> true | nil, msg */
int kl_lua_fsync_path(lua_State *L);

/* lua_CFunction: (path) -> resolved path | nil, msg */
int kl_lua_realpath(lua_State *L);

/* lua_CFunction: (path, bytes) -> true | nil, msg */
int kl_lua_write_private(lua_State *L);

#endif
