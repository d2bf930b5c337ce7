/*
 * lua_call.c - a request's steps (call.c) for a driver written in Lua: the nginx cosocket
 * transport moves the bytes and sleeps, the core decides everything else.  Each request is a
 * call object of its own, so requests of one client may overlap (coroutines of a worker).
 *
 *   c:begin(req, account) -> call, b | nil, err   builds req as c:build does (b: method, url,
 *       headers, body) and starts its steps; account: the key prefix of the driver's limiter
 *       store, or false (no limiter)
 *   call:next() -> step, ...               what to do now:
 *       "limit", key, limits    ask the driver's store, give its answer to call:limited
 *       "wait", seconds         sleep, then ask call:next again
 *       "send"                  send b, give the outcome to call:answer or call:failed
 *       "feed", key, block, limits, remaining, reset
 *                               tell the store: block the key `block` seconds when not nil;
 *                               observe remaining/reset when not nil
 *       "done"                  the last answer is the result
 *       "fail", kind, own       the call failed with `kind`; own: the core failed it before
 *                               an answer (then code, title, detail, retry_after follow)
 *   call:limited(wait | nil, why)   the store's answer: a wait in seconds (0: go), or nil and why
 *   call:answer(status, headers, body) -> res | nil, err   as c:interpret gives them
 *   call:failed(err)                a transport failure: err.code, err.detail, err.sent
 *   call:info()                     what the call did (attempts, retries, waits), as c:info()
 */
#include "kl_internal.h"
#include "lua_klaviyo.h"
#include "lua_meta.h"

#include <string.h>

#define CALL_MT "klaviyo.core.call"

/* A call: its steps, and a reference to {client, request} (both stay alive while it runs). */
typedef struct lcall {
    kl_call k;
    int ref;
} lcall;

/* The client of a method call. */
static kl_client *client_at(lua_State *L, int idx) {
    lk_client *u = luaL_checkudata(L, idx, MT);
    if (!u->c) luaL_error(L, "klaviyo.core: client is closed");
    return u->c;
}

/* The call at index 1 and its client (pushed on the stack top). */
static lcall *check_call(lua_State *L, kl_client **c) {
    lcall *u = luaL_checkudata(L, 1, CALL_MT);
    if (u->ref == LUA_NOREF) luaL_error(L, "klaviyo.core: call is over");
    lua_rawgeti(L, LUA_REGISTRYINDEX, u->ref);
    lua_rawgeti(L, -1, 1);
    *c = client_at(L, lua_gettop(L));
    lua_remove(L, -2);
    return u;
}

static int l_begin(lua_State *L) {
    kl_client *c = client_at(L, 1);
    const char *account = NULL;
    lcall *u;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_toboolean(L, 3)) account = luaL_checkstring(L, 3);
    lua_settop(L, 3);
    lua_getfield(L, 1, "build"); /* c:build(req): reads the table, builds, begins c's call */
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2)) return 2;
    lua_pop(L, 1);
    u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->ref = LUA_NOREF;
    luaL_getmetatable(L, CALL_MT);
    lua_setmetatable(L, -2);
    kl_call_copy(&u->k, &c->priv->call);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 2);
    u->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    if (kl_call_store(c, &u->k, account) != KL_OK) return luaL_error(L, "klaviyo.core: out of memory");
    lua_insert(L, -2); /* call, b */
    return 2;
}

static void push_limits(lua_State *L, const kl_limits *l) {
    lua_createtable(L, 0, 3);
    lk_set_integer(L, "burst", (lua_Integer)l->burst);
    lk_set_integer(L, "steady", (lua_Integer)l->steady);
    lk_set_integer(L, "daily", (lua_Integer)l->daily);
}

static void push_or_nil(lua_State *L, int present, double v) {
    if (present) lua_pushnumber(L, v);
    else lua_pushnil(L);
}

static int l_next(lua_State *L) {
    kl_client *c;
    lcall *u = check_call(L, &c);
    kl_usec wait;
    kl_limits lim;
    int step = kl_call_next(c, &u->k, &wait);
    switch (step) {
    case KL_STEP_LIMIT:
        lua_pushliteral(L, "limit");
        lua_pushstring(L, kl_call_limit_key(&u->k, &lim));
        push_limits(L, &lim);
        return 3;
    case KL_STEP_WAIT:
        lua_pushliteral(L, "wait");
        lua_pushnumber(L, kl_usec_to_sec(wait));
        return 2;
    case KL_STEP_SEND: lua_pushliteral(L, "send"); return 1;
    case KL_STEP_FEED: {
        double block;
        long remaining, reset;
        kl_call_feed(&u->k, &block, &remaining, &reset);
        lua_pushliteral(L, "feed");
        lua_pushstring(L, kl_call_limit_key(&u->k, &lim));
        push_or_nil(L, block >= 0, block);
        push_limits(L, &lim);
        push_or_nil(L, remaining >= 0, (double)remaining);
        push_or_nil(L, reset >= 0, (double)reset);
        return 6;
    }
    case KL_STEP_DONE: lua_pushliteral(L, "done"); return 1;
    default: {
        const kl_error *e = kl_last_error(c);
        int own = !u->k.answered;
        lua_pushliteral(L, "fail");
        lua_pushstring(L, lk_kind_name(u->k.kind));
        lua_pushboolean(L, own);
        if (!own) return 3;
        lua_pushstring(L, e->code);
        lua_pushstring(L, e->title);
        lua_pushstring(L, e->detail);
        push_or_nil(L, e->retry_after >= 0, e->retry_after);
        return 7;
    }
    }
}

static int l_limited(lua_State *L) {
    kl_client *c;
    lcall *u = check_call(L, &c);
    if (lua_isnil(L, 2)) kl_call_limited(c, &u->k, 0, luaL_optstring(L, 3, "no answer"));
    else kl_call_limited(c, &u->k, luaL_checknumber(L, 2), NULL);
    return 0;
}

/* c:interpret(status, headers, body, operation), then the step after the answer */
static int l_answer(lua_State *L) {
    kl_client *c;
    lcall *u;
    lua_settop(L, 4);
    u = check_call(L, &c); /* the client at 5 */
    lua_getfield(L, 5, "interpret");
    lua_pushvalue(L, 5);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 4);
    if (u->k.op) lua_pushstring(L, u->k.op);
    else lua_pushnil(L);
    lua_call(L, 5, 2);
    kl_call_answered(c, &u->k, c->err);
    return 2;
}

static int l_failed(lua_State *L) {
    kl_client *c;
    lcall *u = check_call(L, &c);
    const char *code, *detail;
    int sent;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "code");
    lua_getfield(L, 2, "detail");
    lua_getfield(L, 2, "sent");
    code = lua_tostring(L, -3);
    detail = lua_tostring(L, -2);
    sent = lua_toboolean(L, -1);
    kl_fail(c, KL_ERR_TRANSPORT, code ? code : "transport_failed", u->k.op, "%s",
            detail ? detail : "transport failure");
    c->priv->rec.error.sent = sent;
    kl_call_answered(c, &u->k, KL_ERR_TRANSPORT);
    return 0;
}

/* call:info() -> {attempts, retries, throttled, waited, backoff, stopped} */
static int l_info(lua_State *L) {
    lcall *u = luaL_checkudata(L, 1, CALL_MT);
    lk_push_info(L, &u->k.info);
    return 1;
}

static int l_gc(lua_State *L) {
    lcall *u = luaL_checkudata(L, 1, CALL_MT);
    kl_call_release(&u->k);
    luaL_unref(L, LUA_REGISTRYINDEX, u->ref);
    u->ref = LUA_NOREF;
    return 0;
}

static const luaL_Reg call_methods[] = {{"next", l_next},     {"limited", l_limited}, {"answer", l_answer},
                                        {"failed", l_failed}, {"info", l_info},       {NULL, NULL}};

void kl_lua_call_register(lua_State *L) {
    lk_metatable(L, CALL_MT, call_methods, l_gc);
    lua_pop(L, 1);
    luaL_getmetatable(L, MT);
    lua_getfield(L, -1, "__index");
    lua_pushcfunction(L, l_begin);
    lua_setfield(L, -2, "begin");
    lua_pop(L, 2);
}
