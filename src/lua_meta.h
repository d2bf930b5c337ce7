/*
 * lua_meta.h - the metatable of a binding's userdata: made once per Lua state with its methods
 * under __index, its __gc and its __name, then found by name.
 */
#ifndef LUA_META_H
#define LUA_META_H

#include <lauxlib.h>
#include <lua.h>

/* Pushes the metatable `name`, made on first use: __index holding `methods` (ended by a NULL
 * name), __gc, and __name. */
static inline void lk_metatable(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc) {
    if (luaL_newmetatable(L, name)) {
        lua_newtable(L);
        for (; methods->name; methods++) {
            lua_pushcfunction(L, methods->func);
            lua_setfield(L, -2, methods->name);
        }
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushstring(L, name);
        lua_setfield(L, -2, "__name");
    }
}

#endif
