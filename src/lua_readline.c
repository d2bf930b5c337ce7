/*
 * lua_readline.c - core.read_line(file, max): one line of a Lua file handle, read with a
 * bound. A line longer than max bytes is not kept: the rest of it, up to and including its
 * newline, is read and dropped a byte at a time, so a hostile 100 MB line costs max bytes of
 * memory, and the next call starts at the next line.
 *
 *   core.read_line(f, max) -> line (without its "\n"; a last line without one too)
 *                           | false, length (the line was longer than max; length: its bytes)
 *                           | nil (end of input, nothing read) | nil, message (read error)
 *
 * Bytes come through the stream's own buffer (getc), so this mixes with f:read and returns
 * as soon as a newline arrives on a pipe (no read ahead that would wait for more input).
 */
#define _POSIX_C_SOURCE 200809L

#include "lua_klaviyo.h"

#include <lualib.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

int kl_lua_read_line(lua_State *L) {
    lua_Integer max;
    luaL_Buffer b;
    size_t n = 0;
    int ch = EOF;
    FILE *f;
#if LUA_VERSION_NUM >= 502
    /* closing leaves f dangling and clears closef */
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    f = p->closef == NULL ? NULL : p->f;
#else
    /* Lua 5.1 and LuaJIT: the handle starts with the FILE *, NULL once closed */
    f = *(FILE **)luaL_checkudata(L, 1, LUA_FILEHANDLE);
#endif
    max = luaL_checkinteger(L, 2);
    if (f == NULL) return luaL_error(L, "read_line: attempt to use a closed file");
    if (max < 0) return luaL_argerror(L, 2, "must be a length in bytes (>= 0)");
    luaL_buffinit(L, &b);
    flockfile(f);
    while ((ch = getc_unlocked(f)) != EOF && ch != '\n') {
        if ((lua_Integer)n < max) luaL_addchar(&b, (char)ch);
        n++;
    }
    funlockfile(f);
    if (ch == EOF && ferror(f)) {
        int e = errno;
        clearerr(f);
        lua_pushnil(L);
        lua_pushstring(L, strerror(e));
        return 2;
    }
    if (ch == EOF && n == 0) {
        clearerr(f);
        lua_pushnil(L);
        return 1;
    }
    if ((lua_Integer)n > max) {
        luaL_pushresult(&b);
        lua_pop(L, 1);
        lua_pushboolean(L, 0);
        lua_pushinteger(L, (lua_Integer)n);
        return 2;
    }
    luaL_pushresult(&b);
    return 1;
}
