/*
 * anchor_lua.c - bench/call's anchor as a Lua module (bench_anchor): the plain libcurl loop of
 * anchor.h (the same create_event bytes, a fresh unique_id each time), run from inside the Lua
 * process that times the client, so that the two alternate in short blocks and the machine's
 * load falls on both alike.  Bench-only; built by bench/call.
 *
 *   local anchor = require "bench_anchor"
 *   assert(anchor.open(url .. "/api/events", key))
 *   local failures = anchor.run(n)     -- n requests over one reused handle
 */
#include "anchor.h"
#include "bench_module.h"

static CURL *handle;
static struct curl_slist *header_list;

static int l_open(lua_State *L) {
    const char *url = luaL_checkstring(L, 1), *key = luaL_checkstring(L, 2);
    if (handle) return luaL_error(L, "bench_anchor: already open");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "bench_anchor: curl_global_init failed");
    handle = anchor_handle(url, key, &header_list);
    lua_pushboolean(L, handle != NULL);
    return 1;
}

/* n requests; the number that failed or were not 2xx */
static int l_run(lua_State *L) {
    long n = (long)luaL_checknumber(L, 1), i, bad = 0, status;
    if (!handle) return luaL_error(L, "bench_anchor: open it first");
    for (i = 0; i < n; i++) {
        if (anchor_next_id() != 0) return luaL_error(L, "bench_anchor: no random bytes");
        if (curl_easy_perform(handle) != CURLE_OK) {
            bad++;
            continue;
        }
        curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) bad++;
    }
    lua_pushnumber(L, (lua_Number)bad);
    return 1;
}

int luaopen_bench_anchor(lua_State *L);
int luaopen_bench_anchor(lua_State *L) {
    static const luaL_Reg fns[] = {{"open", l_open}, {"run", l_run}, {NULL, NULL}};
    return bench_module(L, fns);
}
