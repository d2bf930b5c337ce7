/*
 * floor_lua.c - bench/call's floor as a Lua module (bench_floor): the least a Lua binding of
 * the core can do for client:call("create_event", {body = <table>}), to show how close to the
 * plain libcurl loop any Lua client that takes a table body can get on this machine.  Bench-only;
 * built by bench/call against build/libklaviyo.a and the core's encoder (src/lua_json.c).
 *
 * What it keeps: the table body encoded by the core's encoder, with a unique_id stamped into the
 * event, sent by kl_send (limiter off, sent once).  What it drops, and klaviyo.core cannot: the
 * request is fixed in C (no request table read, no parameter checks, no operation lookup), and
 * the answer is the status as an integer (send) or a fresh {status =, body =} table
 * (send_table), without headers or rate-limit fields.
 *
 *   local floor = require "bench_floor"
 *   assert(floor.open(base_url, key))
 *   local status = floor.send(body)         -- 202
 *   local res = floor.send_table(body)      -- {status = 202, body = ""}
 */
#include "klaviyo.h"
#include "lua_json.h"

#include "bench_module.h"

#include <string.h>

static kl_client *client;
static kl_json_out out; /* reused by every send; the process owns it to the end */
static kl_uuid_pool ids;
static const char *const EVENT_PATH[] = {"data", "attributes"};

static int l_open(lua_State *L) {
    kl_options o;
    memset(&o, 0, sizeof o);
    o.base_url = luaL_checkstring(L, 1);
    o.api_key = luaL_checkstring(L, 2);
    o.limiter = KL_LIMITER_OFF;
    if (client) return luaL_error(L, "bench_floor: already open");
    client = kl_new(&o);
    if (!client || client->err) return luaL_error(L, "bench_floor: kl_new failed");
    kl_uuid_pool_init(&ids);
    lua_pushboolean(L, 1);
    return 1;
}

/* encodes and sends the body at index 1; raises on any failure (a bench must not go on) */
static const kl_response *send_body(lua_State *L) {
    kl_request r;
    kl_json_stamp st;
    luaL_checktype(L, 1, LUA_TTABLE);
    if (!client) luaL_error(L, "bench_floor: open it first");
    st.path = EVENT_PATH;
    st.n = 2;
    st.key = "unique_id";
    st.keylen = 9;
    st.pool = &ids;
    out.len = 0;
    if (kl_json_encode_to(L, 1, &out, &st) != 0) luaL_error(L, "bench_floor: body: %.*s", (int)out.len, out.p);
    memset(&r, 0, sizeof r);
    r.operation = "create_event";
    r.method = "POST";
    r.path = "/api/events";
    r.auth = KL_AUTH_PRIVATE;
    r.safe = KL_SAFE_YES;
    r.body = out.p;
    r.body_len = out.len;
    if (kl_send(client, &r) != KL_OK) luaL_error(L, "bench_floor: %s", client->errstr);
    return kl_last_response(client);
}

static int l_send(lua_State *L) {
    lua_pushinteger(L, (lua_Integer)send_body(L)->status);
    return 1;
}

static int l_send_table(lua_State *L) {
    const kl_response *r = send_body(L);
    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)r->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, r->body, r->body_len);
    lua_setfield(L, -2, "body");
    return 1;
}

int luaopen_bench_floor(lua_State *L);
int luaopen_bench_floor(lua_State *L) {
    static const luaL_Reg fns[] = {{"open", l_open}, {"send", l_send}, {"send_table", l_send_table}, {NULL, NULL}};
    return bench_module(L, fns);
}
