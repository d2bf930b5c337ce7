/*
 * lua_meta.h - what every file of the binding does the same way: the metatable of a userdata
 * (made once per Lua state with its methods under __index, its __gc and its __name, then found
 * by name), the fields of a table being filled from C, and nil, message for a failed system
 * call.
 */
#ifndef LUA_META_H
#define LUA_META_H

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

/* The functions of l (ended by a NULL name) set in the table at the top: luaL_setfuncs without
 * upvalues, which 5.1 and LuaJIT lack. */
static inline void lk_setfuncs(lua_State *L, const luaL_Reg *l) {
    for (; l->name; l++) {
        lua_pushcfunction(L, l->func);
        lua_setfield(L, -2, l->name);
    }
}

/* Pushes the metatable `name`, made on first use: __index holding `methods` (ended by a NULL
 * name), __gc, and __name. */
static inline void lk_metatable(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc) {
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        lk_setfuncs(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
    }
}

/* Field k of the table at the top of the stack set to v.  A NULL string sets nil: nothing on a
 * new table, and a reused table loses what an earlier answer left there. */
static inline void lk_set_string(lua_State *L, const char *k, const char *v) {
    if (v) lua_pushstring(L, v);
    else lua_pushnil(L);
    lua_setfield(L, -2, k);
}

static inline void lk_set_lstring(lua_State *L, const char *k, const char *v, size_t len) {
    lua_pushlstring(L, v, len);
    lua_setfield(L, -2, k);
}

static inline void lk_set_integer(lua_State *L, const char *k, lua_Integer v) {
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static inline void lk_set_number(lua_State *L, const char *k, lua_Number v) {
    lua_pushnumber(L, v);
    lua_setfield(L, -2, k);
}

static inline void lk_set_boolean(lua_State *L, const char *k, int v) {
    lua_pushboolean(L, v);
    lua_setfield(L, -2, k);
}

/* nil, "<what> <path>: <strerror(e)>" (no path: "<what>: ..."); e is the errno of the failed
 * call, taken before anything (the message, a cleanup) may change errno.  Returns 2. */
static inline int lk_push_errno(lua_State *L, int e, const char *what, const char *path) {
    lua_pushnil(L);
    if (path) lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    else lua_pushfstring(L, "%s: %s", what, strerror(e));
    return 2;
}

#endif
