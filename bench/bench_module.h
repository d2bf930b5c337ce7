/*
 * bench_module.h - the table a bench module's luaopen_* returns: its C functions by name, built
 * the same way on Lua 5.1, 5.3, 5.4 and LuaJIT (luaL_newlib is 5.2 and later only).
 */
#ifndef BENCH_MODULE_H
#define BENCH_MODULE_H

#include <lauxlib.h>
#include <lua.h>

/* Pushes a new table holding fns (ended by a {NULL, NULL} entry); returns 1, luaopen's answer. */
static int bench_module(lua_State *L, const luaL_Reg *fns) {
    lua_newtable(L);
    for (; fns->name; fns++) {
        lua_pushcfunction(L, fns->func);
        lua_setfield(L, -2, fns->name);
    }
    return 1;
}

#endif
