/*
 * lua_spool.h: the tracker spool's writer (lua/klaviyo/tracker/spool.lua), in C.
 *
 * Registered by src/lua_klaviyo.c as `klaviyo.core.spool_writer` and `klaviyo.core.fsync_path`:
 *
 *   local w, err = core.spool_writer(path)  -- opens path for appending (created 0666 & umask)
 *   local len, err = w:encode(value)        -- the JSON of value into the writer's own C
 *                                           -- buffer (src/lua_json.c's mapping), no Lua string
 *   local ok, err, torn = w:commit()        -- write(2)s the encoded record and a "\n"
 *   local ok, err, torn = w:write(s, ...)   -- write(2)s the strings, joined, in one write
 *   local ok, err = w:fsync()
 *   w:close()                               -- also __gc; safe to call twice
 *   local ok, err = core.fsync_path(path)   -- open(O_RDONLY) + fsync: a file or a directory
 *
 * Why: under LuaJIT every string is interned, and its sparse hash puts the encoded spool
 * records (long, alike but for a few bytes) into one hash chain, so making each one as a Lua
 * string cost several times its encoding.  The record goes from the encoder's buffer to the
 * kernel instead.  Writes are unbuffered (one write(2) per record: `track` returns only once
 * its event is in the kernel, so a killed process loses nothing); `torn` is true when a write
 * failed after part of its bytes reached the file.
 */
#ifndef KL_LUA_SPOOL_H
#define KL_LUA_SPOOL_H

#include <lua.h>

/* lua_CFunction: (path) -> writer | nil, msg */
int kl_lua_spool_writer(lua_State *L);

/* lua_CFunction: (path) -> true | nil, msg */
int kl_lua_fsync_path(lua_State *L);

#endif
