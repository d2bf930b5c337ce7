/*
 * lua_call.h - a request's steps for drivers written in Lua (lua_call.c).
 */
#ifndef KL_LUA_CALL_H
#define KL_LUA_CALL_H

#include <lua.h>

/* Adds begin, next, limited, answer and failed to the methods of klaviyo.core.client (its
 * metatable must exist). */
void kl_lua_call_register(lua_State *L);

#endif
