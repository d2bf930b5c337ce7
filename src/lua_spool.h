/*
 * lua_spool.h: the tracker spool's writer (lua/klaviyo/tracker/spool.lua), in C.
 *
 * Registered by src/lua_klaviyo.c in `klaviyo.core`:
 *
 *   local n = core.spool_check(s, i, j)     -- s[i..j] is a record line (without its "\n")
 *                                           -- whose length and CRC-32 match and whose text
 *                                           -- is a JSON object: the length of its JSON
 *                                           -- text; else nil (src/spool_record.h)
 *   local t = core.spool_trailer(json)      -- the trailer of json's record line (specs)
 *   local what = core.spool_file_kind(path) -- nil for a regular file or none, else what
 *                                           -- it is ("a FIFO", ...; src/lua_spool_lock.c)
 *   local w, err = core.spool_writer(path)  -- opens path (created 0666 & umask); records go
 *                                           -- after what the file holds
 *   local len, err = w:encode(template, value, ...)  -- a record into the writer's own C
 *                                           -- buffer, no Lua string: the template's texts
 *                                           -- (joined by "\0") as they are, the values
 *                                           -- between them as JSON (src/lua_json.c's
 *                                           -- mapping); a nil value drops the text before it
 *   local ok, err = w:commit()              -- appends the encoded record as a record line
 *                                           -- (its length and CRC-32, src/spool_record.h)
 *   local ok, err = w:write(s, ...)         -- appends the strings
 *   local ok, err = w:write_record(json)    -- appends json as a record line (its trailer)
 *   local ok, err = w:truncate(n [, s])     -- cuts the file to n bytes in place, then
 *                                           -- writes s there (not mapped)
 *   local ok, err = w:fsync()
 *   local ok, err = w:close()               -- cuts the file to what was appended (also
 *                                           -- __gc, without the cut's error); safe twice
 *   local lock, err = core.spool_lock(path) -- the exclusive owner lock of the spool at path
 *                                           -- (PATH.lock, src/lua_spool_lock.c); nil, err
 *                                           -- while another holder lives, in this process
 *                                           -- or another
 *   lock:release()                          -- also __gc; safe twice
 *
 * Why: under LuaJIT every string is interned, and its sparse hash puts the encoded spool
 * records (long, alike but for a few bytes) into one hash chain, so making each one as a Lua
 * string cost several times its encoding.  The record goes from the encoder's buffer to the
 * kernel instead: into a shared mapping of the file (the page cache), so `track` returns only
 * once its event is in the kernel and a killed process loses nothing, at a fraction of the
 * cost of a write(2) per record.  While open, the file is longer than what was appended (the
 * mapped window is allocated ahead and reads as zero bytes); close cuts it.  An append that
 * fails (disk full, file size limit) writes none of its bytes.
 */
#ifndef KL_LUA_SPOOL_H
#define KL_LUA_SPOOL_H

#include <lua.h>

/* lua_CFunction: (path) -> writer | nil, msg */
int kl_lua_spool_writer(lua_State *L);

/* lua_CFunction: (spool path) -> lock | nil, msg */
int kl_lua_spool_lock(lua_State *L);

/* lua_CFunction: (path) -> nil when path names a regular file or nothing, else what it is
 * ("a FIFO", "a directory", ...) */
int kl_lua_spool_file_kind(lua_State *L);

/* lua_CFunction: (s, i, j) -> length | nil */
int kl_lua_spool_check(lua_State *L);

/* lua_CFunction: (json) -> trailer */
int kl_lua_spool_trailer(lua_State *L);

#endif
