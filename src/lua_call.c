/*
 * lua_call.c - a request's steps (call.c) for a driver written in Lua: the nginx cosocket
 * transport moves the bytes and sleeps, the core decides everything else.  Methods of a
 * client (klaviyo.core.client):
 *
 *   c:begin(req, account) -> b | nil, err   builds req as c:build does and starts its steps;
 *       account (the key prefix of the driver's limiter store) or false (no limiter)
 *   c:next() -> step, ...                   what to do now:
 *       "limit", key, limits    ask the driver's store, give its answer to c:limited
 *       "wait", seconds         sleep, then ask c:next again
 *       "send"                  send b, give the outcome to c:answer or c:failed
 *       "feed", key, block, limits, remaining, reset
 *                               tell the store: block the key `block` seconds when not nil;
 *                               observe remaining/reset when not nil
 *       "done"                  the last answer is the result
 *       "fail", kind, own       the call failed with `kind`; own: the core failed it before
 *                               an answer (then code, title, detail, retry_after follow)
 *   c:limited(wait | nil, why)  the store's answer: a wait in seconds (0: go), or nil and why
 *   c:answer(status, headers, body) -> res | nil, err    as c:interpret gives them
 *   c:failed(err)               a transport failure: err.code, err.detail, err.sent
 *   c:info()                    what the call did (attempts, retries, waits), as for c:request
 */
#include "kl_internal.h"

#include <lauxlib.h>
#include <lua.h>
#include <string.h>

#define CLIENT_MT "klaviyo.core.client"


/* The client of a method call: the userdata's first field is its kl_client. */
static kl_client *client(lua_State *L) {
    kl_client **u = luaL_checkudata(L, 1, CLIENT_MT);
    if (!*u) luaL_error(L, "klaviyo.core: client is closed");
    return *u;
}

/* the error kinds as the binding's error tables name them */
static const char *kind_name(int kind) {
    switch (kind) {
    case KL_ERR_HTTP: return "http";
    case KL_ERR_TRANSPORT: return "transport";
    case KL_ERR_THROTTLED: return "throttled";
    default: return "refused";
    }
}

/* Calls the client's own method `name` with the arguments from index 2 to `last`; leaves its
 * `nres` results on the stack. */
static void method(lua_State *L, const char *name, int last, int nres) {
    int i;
    lua_getfield(L, 1, name);
    lua_pushvalue(L, 1);
    for (i = 2; i <= last; i++) lua_pushvalue(L, i);
    lua_call(L, last, nres);
}

static int l_begin(lua_State *L) {
    kl_client *c = client(L);
    const char *account = NULL;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (lua_toboolean(L, 3)) account = luaL_checkstring(L, 3);
    method(L, "build", 2, 2);
    if (lua_isnil(L, -2)) return 2;
    if (kl_call_store(c, account) != KL_OK) {
        lua_pushnil(L);
        lua_pushstring(L, c->errstr);
        return 2;
    }
    lua_pop(L, 1);
    return 1;
}

static void push_limits(lua_State *L, const kl_limits *l) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)l->burst);
    lua_setfield(L, -2, "burst");
    lua_pushinteger(L, (lua_Integer)l->steady);
    lua_setfield(L, -2, "steady");
    lua_pushinteger(L, (lua_Integer)l->daily);
    lua_setfield(L, -2, "daily");
}

static void push_or_nil(lua_State *L, int present, double v) {
    if (present) lua_pushnumber(L, v);
    else lua_pushnil(L);
}

static int l_next(lua_State *L) {
    kl_client *c = client(L);
    kl_usec wait;
    kl_limits lim;
    int step = kl_call_next(c, &wait);
    switch (step) {
    case KL_STEP_LIMIT:
        lua_pushliteral(L, "limit");
        lua_pushstring(L, kl_call_limit_key(c, &lim));
        push_limits(L, &lim);
        return 3;
    case KL_STEP_WAIT:
        lua_pushliteral(L, "wait");
        lua_pushnumber(L, kl_usec_to_sec(wait));
        return 2;
    case KL_STEP_SEND:
        lua_pushliteral(L, "send");
        return 1;
    case KL_STEP_FEED: {
        double block;
        long remaining, reset;
        kl_call_feed(c, &block, &remaining, &reset);
        lua_pushliteral(L, "feed");
        lua_pushstring(L, kl_call_limit_key(c, &lim));
        push_or_nil(L, block >= 0, block);
        push_limits(L, &lim);
        push_or_nil(L, remaining >= 0, (double)remaining);
        push_or_nil(L, reset >= 0, (double)reset);
        return 6;
    }
    case KL_STEP_DONE:
        lua_pushliteral(L, "done");
        return 1;
    default: {
        const kl_error *e = kl_last_error(c);
        int own = !kl_call_answered_last(c);
        lua_pushliteral(L, "fail");
        lua_pushstring(L, kind_name(c->err));
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
    kl_client *c = client(L);
    if (lua_isnil(L, 2)) kl_call_limited(c, 0, luaL_optstring(L, 3, "no answer"));
    else kl_call_limited(c, luaL_checknumber(L, 2), NULL);
    return 0;
}

static int l_answer(lua_State *L) {
    kl_client *c = client(L);
    lua_settop(L, 4);
    lua_pushstring(L, kl_call_operation(c));
    method(L, "interpret", 5, 2);
    kl_call_answered(c, c->err);
    return 2;
}

static int l_failed(lua_State *L) {
    kl_client *c = client(L);
    const char *code, *detail;
    int sent;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "code");
    lua_getfield(L, 2, "detail");
    lua_getfield(L, 2, "sent");
    code = lua_tostring(L, -3);
    detail = lua_tostring(L, -2);
    sent = lua_toboolean(L, -1);
    kl_fail(c, KL_ERR_TRANSPORT, code ? code : "transport_failed", kl_call_operation(c), "%s",
            detail ? detail : "transport failure");
    c->priv->rec.error.sent = sent;
    kl_call_answered(c, KL_ERR_TRANSPORT);
    return 0;
}

static const luaL_Reg methods[] = {
    {"begin", l_begin}, {"next", l_next}, {"limited", l_limited},
    {"answer", l_answer}, {"failed", l_failed}, {NULL, NULL}};

void kl_lua_call_register(lua_State *L) {
    const luaL_Reg *r;
    luaL_getmetatable(L, CLIENT_MT);
    lua_getfield(L, -1, "__index");
    for (r = methods; r->name; r++) {
        lua_pushcfunction(L, r->func);
        lua_setfield(L, -2, r->name);
    }
    lua_pop(L, 2);
}
