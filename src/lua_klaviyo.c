/*
 * lua_klaviyo.c - the Lua module klaviyo.core: binds the C core (klaviyo.h).
 *
 *   local core = require "klaviyo.core"
 *   local c, err = core.new{base_url=, api_key=, access_token=, public_key=, revision=,
 *                           timeout=, connect_timeout=, user_agent=}   -- timeouts in seconds
 *   c:request{operation=, method=, path=, path_params={...} | url=, query={{name, value|list}},
 *             headers={{name, value}}, body=, auth="private"|"public", revision=,
 *             unique_ids=true}
 *     body: JSON text, or a Lua table the core encodes (src/lua_json.c) straight into C memory;
 *     unique_ids: create_event / bulk_create_events events without a unique_id get one in
 *     the encoded bytes (the table is not changed).  A table that cannot be encoded gives
 *     nil, {kind="encode", code="invalid_body", message="<path>: <what>"} and sends nothing.
 *     -> {status=, headers={lowercase=value}, body=, ratelimit={limit=,remaining=,reset=}|nil},
 *        nil, plain (true: sent once, nothing waited: c:info() has nothing to add)
 *      | nil, {kind="http"|"transport"|"refused"|"throttled"|"out_of_memory", status=, code=,
 *              title=, detail=, pointer=, parameter=, retry_after=, operation=, request_id=,
 *              meta=, body=, message=, sent=, headers=}
 *     Path and query values are strings or numbers: a number in a path must be an integer, in a
 *     query any finite number; either within the 64-bit range when integral.  A string holding
 *     a NUL byte is refused wherever it would reach C (C would cut it short there).
 *   c:build(req) -> {method=, url=, headers={{name, value}...}, body=} | nil, err
 *   c:interpret(status, headers, body [, operation]) -> res | nil, err
 *   c:set_access_token(tok) -> true | nil, err;   c:close() (also __gc; idempotent)
 *   core.encode(value [, opts]) -> json | nil, msg   (src/lua_json.c)
 *   core.duration(seconds) -> seconds checked and capped at a day | nil (src/duration.h)
 *
 * Manners as in LuaSocket: misuse (wrong types, unknown fields, NUL bytes, numbers out of
 * range) raises; runtime failures (out of memory and hostile answers included) return nil,
 * err.  Written against the 5.2+ C API with a small shim for 5.1/LuaJIT.
 */
#include "duration.h"
#include "klaviyo.h"
#include "json_read.h"
#include "lua_json.h"
#include "lua_spool.h"
#include "retry.h"
#include "uuid.h"

#include <lauxlib.h>
#include <lua.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define MT "klaviyo.core.client"

/* ---- 5.1 shim ------------------------------------------------------------------------------ */
#if LUA_VERSION_NUM < 502
#define kl_rawlen(L, i) lua_objlen(L, i)
/* luaL_setfuncs: the nup values on top are upvalues of every function, then popped */
static void kl_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
    int i;
    for (; l->name; l++) {
        for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
#else
#define kl_rawlen(L, i) lua_rawlen(L, i)
#define kl_setfuncs(L, l, nup) luaL_setfuncs(L, l, nup)
#endif

/* ---- userdata ---------------------------------------------------------------------------- */

/* scratch arrays reused by every request (no allocation on the hot path once grown) */
typedef struct lk_scratch {
    kl_param *q, *h;
    size_t qcap, hcap;
    const char **pool; /* path params and list items */
    size_t pcap;
    size_t *qoff;      /* per query parameter: its list's start in pool (lists only) */
    size_t qoffcap;
    kl_json_out body;  /* a table body, encoded */
} lk_scratch;

static void scratch_free(lk_scratch *s) {
    free(s->q); free(s->h); free(s->pool); free(s->qoff); free(s->body.p);
    memset(s, 0, sizeof *s);
}

typedef struct lk_client {
    kl_client *c;
    lk_scratch s;
    kl_uuid_pool ids; /* unique_ids stamped into event bodies */
} lk_client;

static int grow(lua_State *L, void **arr, size_t *cap, size_t need, size_t elem) {
    void *n;
    size_t nc;
    if (need <= *cap) return 0;
    nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    n = realloc(*arr, nc * elem);
    if (!n) return luaL_error(L, "klaviyo.core: out of memory");
    *arr = n;
    *cap = nc;
    return 0;
}

/* ---- strings and numbers that cross into C ------------------------------------------------ */

/* Does the string at idx hold a NUL byte?  C reads a string up to its first NUL: whatever
 * follows would be cut off without a word, so every string the core gets is checked here. */
static int has_nul(lua_State *L, int idx) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return memchr(s, '\0', len) != NULL;
}

/* The string at idx for C; raises naming `what` ("option api_key") when it holds a NUL byte. */
static const char *c_string(lua_State *L, int idx, const char *what) {
    if (has_nul(L, idx)) luaL_error(L, "klaviyo.core: %s holds a NUL byte", what);
    return lua_tostring(L, idx);
}

/* The number at idx as the text of a path or query value, in buf: an integer (any Lua integer;
 * a float with an integral value in the 64-bit range) as its exact digits; another finite
 * float, when `integral` is 0, as the shortest decimal that reads back to it ('.' whatever the
 * locale).  1, or 0 with *why saying what is wrong with the number. */
static int number_text(lua_State *L, int idx, int integral, char *buf, size_t size, const char **why) {
    double d;
    int prec;
    char *c;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        snprintf(buf, size, "%lld", (long long)lua_tointeger(L, idx));
        return 1;
    }
#endif
    d = (double)lua_tonumber(L, idx);
    if (d != d || d - d != 0) { *why = "is NaN or infinite"; return 0; }
    if (d == floor(d)) {
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
            *why = "is outside the 64-bit integer range";
            return 0;
        }
        snprintf(buf, size, "%lld", (long long)d);
        return 1;
    }
    if (integral) { *why = "must be an integer"; return 0; }
    for (prec = 15; prec < 17; prec++) {
        snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) break;
    }
    if (prec == 17) snprintf(buf, size, "%.17g", d);
    if ((c = strchr(buf, ',')) != NULL) *c = '.';
    return 1;
}

/* ---- error / result tables ------------------------------------------------------------------ */

static void setstr(lua_State *L, const char *k, const char *v) {
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, k);
    }
}

/* JSON (meta of an error) -> Lua value; nulls become nil (absent).  Each level checks the
 * depth and makes room on the Lua stack for what it pushes (a table, a key, a value): 0, or -1
 * with nothing pushed when the value is nested deeper than KJ_MAX_DEPTH or the stack cannot
 * grow. */
static int push_json(lua_State *L, const kj_doc *d, int n, int depth) {
    const kj_node *k = &d->nodes[n];
    int ch, i;
    if (depth > KJ_MAX_DEPTH || !lua_checkstack(L, 3)) return -1;
    switch (k->type) {
    case KJ_NULL: lua_pushnil(L); break;
    case KJ_TRUE: lua_pushboolean(L, 1); break;
    case KJ_FALSE: lua_pushboolean(L, 0); break;
    case KJ_NUMBER: lua_pushnumber(L, kj_number(d, n)); break;
    case KJ_STRING: {
        size_t len;
        char *s = kj_string(d, n, &len);
        if (!s) { lua_pushnil(L); break; }
        lua_pushlstring(L, s, len);
        free(s);
        break;
    }
    case KJ_ARRAY:
        lua_newtable(L);
        for (ch = k->child, i = 1; ch >= 0; ch = d->nodes[ch].next, i++) {
            if (push_json(L, d, ch, depth + 1) != 0) { lua_pop(L, 1); return -1; }
            lua_rawseti(L, -2, i);
        }
        break;
    case KJ_OBJECT:
        lua_newtable(L);
        for (ch = k->child; ch >= 0; ch = d->nodes[d->nodes[ch].next].next) {
            if (push_json(L, d, ch, depth + 1) != 0) { lua_pop(L, 1); return -1; }
            if (lua_isnil(L, -1)) { lua_pop(L, 1); continue; }
            if (push_json(L, d, d->nodes[ch].next, depth + 1) != 0) { lua_pop(L, 2); return -1; }
            lua_rawset(L, -3);
        }
        break;
    }
    return 0;
}

static lk_client *check_client(lua_State *L) {
    lk_client *u = lua_touserdata(L, 1);
    int same = 0;
    if (u && lua_getmetatable(L, 1)) { /* luaL_checkudata would name a userdata by its __name */
        luaL_getmetatable(L, MT);
        same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!same) luaL_argerror(L, 1, lua_pushfstring(L, MT " expected, got %s", luaL_typename(L, 1)));
    if (!u->c) luaL_error(L, "klaviyo.core: client is closed");
    return u;
}

/* A header table from a block of n "name\0value\0" pairs (the core keeps a response's headers
 * so, in order); a repeated header keeps its values joined, as HTTP allows (RFC 9110 5.3). */
static void push_header_block(lua_State *L, const char *p, size_t n) {
    size_t i;
    lua_createtable(L, 0, (int)n);
    for (i = 0; i < n; i++) {
        const char *name = p, *value = p + strlen(p) + 1;
        p = value + strlen(value) + 1;
        lua_pushstring(L, name);
        lua_pushvalue(L, -1);
        lua_rawget(L, -3);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            lua_pushstring(L, value);
        } else {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, value);
            lua_concat(L, 3);
        }
        lua_rawset(L, -3);
    }
}

static void push_ratelimit(lua_State *L, const kl_response *r) {
    lua_createtable(L, 0, 3);
    lua_pushinteger(L, (lua_Integer)r->rl_limit);
    lua_setfield(L, -2, "limit");
    lua_pushinteger(L, (lua_Integer)r->rl_remaining);
    lua_setfield(L, -2, "remaining");
    lua_pushinteger(L, (lua_Integer)r->rl_reset);
    lua_setfield(L, -2, "reset");
}

static const char *kind_name(int k) {
    switch (k) {
    case KL_ERR_HTTP: return "http";
    case KL_ERR_TRANSPORT: return "transport";
    case KL_ERR_THROTTLED: return "throttled";
    default: return "refused";
    }
}

/* sets the fields of the table at the top (a reused table gets "stopped" cleared) */
static void fill_info(lua_State *L, const kl_send_info *i) {
    lua_pushinteger(L, i->attempts);
    lua_setfield(L, -2, "attempts");
    lua_pushinteger(L, i->retries);
    lua_setfield(L, -2, "retries");
    lua_pushinteger(L, i->throttled);
    lua_setfield(L, -2, "throttled");
    lua_pushnumber(L, i->waited);
    lua_setfield(L, -2, "waited");
    lua_pushnumber(L, i->backoff);
    lua_setfield(L, -2, "backoff");
    if (i->stopped) lua_pushstring(L, i->stopped);
    else lua_pushnil(L);
    lua_setfield(L, -2, "stopped");
}

static void push_info(lua_State *L, const kl_send_info *i) {
    lua_createtable(L, 0, 6);
    fill_info(L, i);
}

/* The send loop did nothing but send once (no waits, no retries): c:info() has nothing a
 * caller's counters do not know already. */
static int sent_plainly(const kl_send_info *i) {
    return i->attempts == 1 && i->retries == 0 && i->throttled == 0 && i->waited == 0 && i->backoff == 0;
}

/* Room on the Lua stack for the fixed part of a result or error table (the table, a header
 * block being joined, a field): what turns an answer into Lua values asks for it first, as it
 * may run deep inside a caller's stack (c:batch's callbacks). */
#define RESULT_SLOTS 8

/* The error table of c's last failure (every kind; "usage" for a malformed request): 0, or -1
 * with nothing pushed when the Lua stack has no room for it. */
static int push_error_table(lua_State *L, kl_client *c) {
    const kl_error *e = kl_last_error(c);
    if (!lua_checkstack(L, RESULT_SLOTS)) return -1;
    lua_createtable(L, 0, 16);
    lua_pushstring(L, c->err == KL_ERR_USAGE ? "usage" : c->err == KL_ERR_OOM ? "out_of_memory" : kind_name(c->err));
    lua_setfield(L, -2, "kind");
    if (e->status) {
        lua_pushinteger(L, (lua_Integer)e->status);
        lua_setfield(L, -2, "status");
    }
    setstr(L, "code", e->code);
    setstr(L, "title", e->title);
    setstr(L, "detail", e->detail);
    setstr(L, "pointer", e->pointer);
    setstr(L, "parameter", e->parameter);
    setstr(L, "operation", e->operation);
    setstr(L, "request_id", e->request_id);
    setstr(L, "message", c->errstr);
    if (e->retry_after >= 0) {
        lua_pushnumber(L, e->retry_after);
        lua_setfield(L, -2, "retry_after");
    }
    if (e->body) {
        lua_pushlstring(L, e->body, e->body_len);
        lua_setfield(L, -2, "body");
    }
    if (c->err == KL_ERR_TRANSPORT) {
        lua_pushboolean(L, e->sent);
        lua_setfield(L, -2, "sent");
    }
    if (e->status) { /* an HTTP answer (kind http, or throttled by a 429) */
        const kl_response *r = kl_last_response(c);
        push_header_block(L, r->n_headers ? r->headers[0].name : "", r->n_headers);
        lua_setfield(L, -2, "headers");
        if (r->has_ratelimit) {
            push_ratelimit(L, r);
            lua_setfield(L, -2, "ratelimit");
        }
    }
    if (e->meta_json) {
        kj_doc d = {0};
        int rc = kj_parse(&d, e->meta_json, strlen(e->meta_json));
        if (rc == 0 && push_json(L, &d, 0, 0) == 0) {
            lua_setfield(L, -2, "meta");
        } else if (rc != -1) { /* the meta is left out; the message says why */
            lua_pushfstring(L, "%s (errors[0].meta left out: %s)", c->errstr,
                            rc == -2 ? "out of memory" : "nested too deep for the Lua stack");
            lua_setfield(L, -2, "message");
        }
        kj_free(&d);
    }
    return 0;
}

/* nil, {kind = "out_of_memory", code = "lua_stack", message} in place of a result that the Lua
 * stack has no room for; the stack is cut back to base first, which leaves the room a C
 * function is given on entry. */
static int push_no_room(lua_State *L, int base) {
    lua_settop(L, base);
    lua_pushnil(L);
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, "out_of_memory");
    lua_setfield(L, -2, "kind");
    lua_pushliteral(L, "lua_stack");
    lua_setfield(L, -2, "code");
    lua_pushliteral(L, "klaviyo.core: no room on the Lua stack for the answer");
    lua_setfield(L, -2, "message");
    return 2;
}

/* nil, err for every runtime failure (out of memory included); raises for misuse only */
static int push_failure(lua_State *L, kl_client *c) {
    int base = lua_gettop(L);
    if (c->err == KL_ERR_USAGE) return luaL_error(L, "klaviyo.core: %s", c->errstr);
    lua_pushnil(L);
    if (push_error_table(L, c) != 0) return push_no_room(L, base);
    return 2;
}

/* {status, headers, body [, ratelimit]}: 0, or -1 with nothing pushed when the stack has no
 * room. */
static int push_response(lua_State *L, kl_client *c) {
    const kl_response *r = kl_last_response(c);
    if (!lua_checkstack(L, RESULT_SLOTS)) return -1;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, (lua_Integer)r->status);
    lua_setfield(L, -2, "status");
    lua_pushlstring(L, r->body, r->body_len);
    lua_setfield(L, -2, "body");
    push_header_block(L, r->n_headers ? r->headers[0].name : "", r->n_headers);
    lua_setfield(L, -2, "headers");
    if (r->has_ratelimit) {
        push_ratelimit(L, r);
        lua_setfield(L, -2, "ratelimit");
    }
    return 0;
}

/* ---- core.new ---------------------------------------------------------------------------- */

/* nil, err for a credential or option holding a NUL byte: refused as the core refuses a CR or
 * LF in one (the value may come from a server, as a refreshed token does), naming it. */
static int push_nul_refused(lua_State *L, const char *code, const char *name) {
    lua_pushnil(L);
    lua_createtable(L, 0, 5);
    lua_pushliteral(L, "refused");
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushliteral(L, "Refused locally, nothing sent");
    lua_setfield(L, -2, "title");
    lua_pushfstring(L, "%s holds a NUL byte", name);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "detail");
    lua_setfield(L, -2, "message");
    return 2;
}

/* A string option, or NULL when absent.  One holding a NUL byte is refused as the core refuses
 * a CR or LF in it (nil, err, not a raise): its name goes to *nul and NULL is returned. */
static const char *opt_string(lua_State *L, int t, const char *k, const char **nul) {
    const char *s;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return NULL; }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "klaviyo.core.new: option %s must be a string, got %s", k, luaL_typename(L, -1));
    if (has_nul(L, -1)) {
        if (!*nul) *nul = k;
        lua_pop(L, 1);
        return NULL;
    }
    s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the options table keeps the string alive */
    return s;
}

static long opt_ms(lua_State *L, int t, const char *k) {
    double v;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "klaviyo.core.new: option %s must be a number of seconds, got %s", k, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v > 0) || v > 86400.0) luaL_error(L, "klaviyo.core.new: option %s must be > 0 and <= 86400 seconds", k);
    v = v * 1000.0;
    return v < 1 ? 1 : (long)v;
}

static double opt_number(lua_State *L, int t, const char *k, double lo, double hi) {
    double v;
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return 0; }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "klaviyo.core.new: option %s must be a number, got %s", k, luaL_typename(L, -1));
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi)) luaL_error(L, "klaviyo.core.new: option %s must be in [%f, %f]", k, lo, hi);
    return v;
}

static const char *const new_options[] = {"base_url", "api_key", "access_token", "public_key", "revision",
                                          "timeout", "connect_timeout", "user_agent", "limiter",
                                          "limiter_url", "limiter_prefix", "limiter_safety",
                                          "limiter_script", "account", "retry_attempts",
                                          "retry_max_time", "retry_base", "retry_cap", NULL};

static int l_new(lua_State *L) {
    kl_options o;
    const char *nul;
    lk_client *u;
    kl_client *c;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, 1)) {
        int i, known = 0;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING) {
            const char *k = lua_tostring(L, -1);
            for (i = 0; new_options[i]; i++)
                if (strcmp(k, new_options[i]) == 0) known = 1;
        }
        if (!known) {
            lua_pushvalue(L, -1);
            return luaL_error(L, "klaviyo.core.new: unknown option %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "(non-string key)");
        }
    }
    memset(&o, 0, sizeof o);
    nul = NULL;
    o.base_url = opt_string(L, 1, "base_url", &nul);
    o.api_key = opt_string(L, 1, "api_key", &nul);
    o.access_token = opt_string(L, 1, "access_token", &nul);
    o.public_key = opt_string(L, 1, "public_key", &nul);
    o.revision = opt_string(L, 1, "revision", &nul);
    o.user_agent = opt_string(L, 1, "user_agent", &nul);
    o.timeout_ms = opt_ms(L, 1, "timeout");
    o.connect_timeout_ms = opt_ms(L, 1, "connect_timeout");
    {
        const char *lim = opt_string(L, 1, "limiter", &nul);
        if (!lim || strcmp(lim, "local") == 0) o.limiter = KL_LIMITER_LOCAL;
        else if (strcmp(lim, "redis") == 0) o.limiter = KL_LIMITER_REDIS;
        else if (strcmp(lim, "off") == 0) o.limiter = KL_LIMITER_OFF;
        else return luaL_error(L, "klaviyo.core.new: option limiter must be \"local\", \"redis\" or \"off\"");
    }
    o.limiter_url = opt_string(L, 1, "limiter_url", &nul);
    o.limiter_prefix = opt_string(L, 1, "limiter_prefix", &nul);
    o.limiter_script = opt_string(L, 1, "limiter_script", &nul);
    o.account = opt_string(L, 1, "account", &nul);
    o.limiter_safety = opt_number(L, 1, "limiter_safety", 0, 1);
    o.retry_attempts = (int)opt_number(L, 1, "retry_attempts", 0, 100);
    o.retry_max_time = opt_number(L, 1, "retry_max_time", 0, 86400);
    o.retry_base = opt_number(L, 1, "retry_base", 0, 3600);
    o.retry_cap = opt_number(L, 1, "retry_cap", 0, 86400);
    if (nul) {
        int cred = strcmp(nul, "api_key") == 0 || strcmp(nul, "access_token") == 0 || strcmp(nul, "public_key") == 0;
        return push_nul_refused(L, cred ? "invalid_credential" : "invalid_option", nul);
    }

    u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    kl_uuid_pool_init(&u->ids);
    luaL_getmetatable(L, MT);
    lua_setmetatable(L, -2);
    c = kl_new(&o);
    if (!c) {
        lua_pushnil(L);
        lua_createtable(L, 0, 2);
        lua_pushliteral(L, "out_of_memory");
        lua_setfield(L, -2, "kind");
        lua_pushliteral(L, "klaviyo.core.new: out of memory");
        lua_setfield(L, -2, "message");
        return 2;
    }
    if (c->err) {
        int n = push_failure(L, c);
        kl_free(c);
        return n;
    }
    u->c = c;
    return 1;
}

/* ---- request description ------------------------------------------------------------- */

/* The string or number at the top of the stack as text for C that stays alive (a number's text
 * goes into the anchor table at stack slot `anchor`), or NULL with *why set: a string holding
 * a NUL byte, a number number_text refuses (integral: a path value), another type. */
static const char *value_text(lua_State *L, int anchor, int *nanch, int integral, const char **why) {
    char buf[48];
    int t = lua_type(L, -1);
    if (t == LUA_TSTRING) { /* alive: referenced by the request table */
        if (has_nul(L, -1)) { *why = "holds a NUL byte"; return NULL; }
        return lua_tostring(L, -1);
    }
    if (t != LUA_TNUMBER) { *why = "must be a string or number"; return NULL; }
    if (!number_text(L, -1, integral, buf, sizeof buf, why)) return NULL;
    if (lua_isnil(L, anchor)) {
        lua_newtable(L);
        lua_replace(L, anchor);
    }
    lua_pushstring(L, buf);
    lua_rawseti(L, anchor, ++*nanch);
    lua_rawgeti(L, anchor, *nanch);
    {
        const char *s = lua_tostring(L, -1);
        lua_pop(L, 1);
        return s;
    }
}

#define ANCHOR 3    /* stack slot of the anchor table in l_request/l_build */
#define BODY_SLOT 4 /* read_request keeps a table body here until it is encoded */

/* Items go to the pool while the table is read; the pool may move as it grows, so the
 * request's pointers into it are set once reading is over (from pp_off and qoff). */
typedef struct parsed {
    kl_request r;
    size_t npool;
    size_t pp_off;
    /* the first value refused while the table is read, raised once the operation and the path
     * are known (fields come in any order): a path parameter by its position, or a query or
     * header parameter by name (and list item) */
    int bad_pp, bad_item;
    const char *bad_what, *bad_name, *bad_why;
} parsed;

static void field_type(lua_State *L, const char *k, int want) {
    if (lua_type(L, -1) != want)
        luaL_error(L, "klaviyo.core: request field %s must be a %s, got %s", k, lua_typename(L, want), luaL_typename(L, -1));
}

/* A string field of the request (operation, method, path, url, revision, auth), for C. */
static const char *field_string(lua_State *L, const char *k) {
    field_type(L, k, LUA_TSTRING);
    if (has_nul(L, -1)) luaL_error(L, "klaviyo.core: request field %s holds a NUL byte", k);
    return lua_tostring(L, -1);
}

/* Keeps the first value value_text refused (why) for bad_value to raise. */
static void refused(parsed *p, const char *what, const char *name, int pp, int item, const char *why) {
    if (p->bad_why) return;
    p->bad_what = what;
    p->bad_name = name;
    p->bad_pp = pp;
    p->bad_item = item;
    p->bad_why = why;
}

/* Raises the refusal kept by `refused`, naming the operation and the parameter: a path
 * parameter by its placeholder in the path. */
static void bad_value(lua_State *L, const parsed *p) {
    const char *op = p->r.operation ? p->r.operation : "request", *s = p->r.path, *e = NULL;
    int i = 0;
    if (p->bad_pp) {
        while (s && (s = strchr(s, '{')) != NULL && (e = strchr(s, '}')) != NULL && ++i < p->bad_pp) s = e;
        if (s && e && i == p->bad_pp) lua_pushlstring(L, s + 1, (size_t)(e - s - 1));
        else lua_pushfstring(L, "%d", p->bad_pp);
        luaL_error(L, "klaviyo.core: %s: path parameter %s %s", op, lua_tostring(L, -1), p->bad_why);
    }
    if (p->bad_item)
        luaL_error(L, "klaviyo.core: %s: %s %s: item %d %s", op, p->bad_what, p->bad_name, p->bad_item, p->bad_why);
    luaL_error(L, "klaviyo.core: %s: %s %s %s", op, p->bad_what, p->bad_name, p->bad_why);
}

static void read_path_params(lua_State *L, lk_scratch *u, parsed *p, int *nanch) {
    int t = lua_gettop(L), i, n = (int)kl_rawlen(L, t);
    grow(L, (void **)&u->pool, &u->pcap, p->npool + (size_t)n, sizeof *u->pool);
    for (i = 1; i <= n; i++) {
        const char *why = NULL, *v;
        lua_rawgeti(L, t, i);
        v = value_text(L, ANCHOR, nanch, 1, &why);
        if (!v) refused(p, "path parameter", NULL, i, 0, why);
        u->pool[p->npool + (size_t)(i - 1)] = v;
        lua_pop(L, 1);
    }
    p->pp_off = p->npool;
    p->r.n_path_params = (size_t)n;
    p->npool += (size_t)n;
}

static void read_pairs(lua_State *L, lk_scratch *u, parsed *p, int *nanch, int is_query) {
    int t = lua_gettop(L), i, n = (int)kl_rawlen(L, t);
    kl_param **arr = is_query ? &u->q : &u->h;
    size_t *cap = is_query ? &u->qcap : &u->hcap;
    const char *what = is_query ? "query" : "headers";
    grow(L, (void **)arr, cap, (size_t)n, sizeof **arr);
    if (is_query) grow(L, (void **)&u->qoff, &u->qoffcap, (size_t)n, sizeof *u->qoff);
    for (i = 1; i <= n; i++) {
        kl_param *pa = &(*arr)[i - 1];
        memset(pa, 0, sizeof *pa);
        lua_rawgeti(L, t, i);
        if (!lua_istable(L, -1)) luaL_error(L, "klaviyo.core: %s[%d] must be a {name, value} pair", what, i);
        lua_rawgeti(L, -1, 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "klaviyo.core: %s[%d][1] (name) must be a string", what, i);
        if (has_nul(L, -1)) luaL_error(L, "klaviyo.core: %s[%d][1] (name) holds a NUL byte", what, i);
        pa->name = lua_tostring(L, -1);
        lua_pop(L, 1);
        lua_rawgeti(L, -1, 2);
        if (is_query && lua_istable(L, -1)) {
            int k, m = (int)kl_rawlen(L, -1), lt = lua_gettop(L);
            grow(L, (void **)&u->pool, &u->pcap, p->npool + (size_t)m + 1, sizeof *u->pool);
            for (k = 1; k <= m; k++) {
                const char *why = NULL;
                lua_rawgeti(L, lt, k);
                if (!(u->pool[p->npool + (size_t)(k - 1)] = value_text(L, ANCHOR, nanch, 0, &why)))
                    refused(p, "query parameter", pa->name, 0, k, why);
                lua_pop(L, 1);
            }
            u->qoff[i - 1] = p->npool;
            pa->n_values = (size_t)m;
            pa->values = u->pool; /* non-NULL marks a list; the exact place is set later */
            p->npool += (size_t)m;
        } else {
            if (is_query && lua_type(L, -1) == LUA_TBOOLEAN) {
                pa->value = lua_toboolean(L, -1) ? "true" : "false";
            } else {
                const char *why = NULL;
                if (!(pa->value = value_text(L, ANCHOR, nanch, 0, &why)))
                    refused(p, is_query ? "query parameter" : "header", pa->name, 0, 0, why);
            }
        }
        lua_pop(L, 2);
    }
    if (is_query) { p->r.query = *arr; p->r.n_query = (size_t)n; }
    else { p->r.headers = *arr; p->r.n_headers = (size_t)n; }
}

/* Where create_event and bulk_create_events carry each event's attributes. */
static const char *const EVENT_PATH[] = {"data", "attributes"};
static const char *const BULK_EVENTS_PATH[] = {"data", "attributes", "events-bulk-create", "data", "*",
                                               "attributes", "events", "data", "*", "attributes"};

/* Appends the table body at the top of the stack to out, stamping a unique_id into each event
 * without one when asked (operation names the events' place); 0, or -1 with the message in
 * out. */
static int encode_body(lua_State *L, kl_json_out *out, const char *operation, int unique_ids,
                       kl_uuid_pool *ids) {
    kl_json_stamp st, *stp = NULL;
    if (unique_ids && operation) {
        st.pool = ids;
        if (strcmp(operation, "create_event") == 0) {
            st.path = EVENT_PATH;
            st.n = (int)(sizeof EVENT_PATH / sizeof *EVENT_PATH);
            stp = &st;
        } else if (strcmp(operation, "bulk_create_events") == 0) {
            st.path = BULK_EVENTS_PATH;
            st.n = (int)(sizeof BULK_EVENTS_PATH / sizeof *BULK_EVENTS_PATH);
            stp = &st;
        }
    }
    return kl_json_encode_to(L, -1, out, stp);
}

/* Encodes the table body at the top of the stack into u->body and points r at the bytes; 0,
 * or -1 with the message in u->body. */
static int encode_request_body(lua_State *L, lk_scratch *u, kl_request *r, int unique_ids,
                               kl_uuid_pool *ids) {
    u->body.len = 0;
    if (encode_body(L, &u->body, r->operation, unique_ids, ids) != 0) return -1;
    r->body = u->body.p;
    r->body_len = u->body.len;
    return 0;
}

/* Reads the request table at index 2 in one pass; unknown fields raise.  A table body is
 * encoded into u->body, unless `pre` holds its bytes already (c:batch encodes every body
 * before sending).  0, or -1 when the body cannot be encoded (the message in u->body). */
static int read_request(lua_State *L, lk_scratch *u, parsed *p, kl_uuid_pool *ids, const kl_json_out *pre) {
    int nanch = 0, body_table = 0, unique_ids = 0;
    size_t i;
    memset(p, 0, sizeof *p);
    p->r.auth = KL_AUTH_PRIVATE;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_pushnil(L); /* ANCHOR */
    lua_pushnil(L); /* BODY_SLOT */
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        const char *k;
        if (lua_type(L, -2) != LUA_TSTRING) luaL_error(L, "klaviyo.core: request has a non-string field name");
        k = lua_tostring(L, -2);
        switch (k[0]) {
        case 'o':
            if (strcmp(k, "operation") != 0) goto unknown;
            p->r.operation = field_string(L, k);
            break;
        case 'm':
            if (strcmp(k, "method") != 0) goto unknown;
            p->r.method = field_string(L, k);
            break;
        case 'p':
            if (strcmp(k, "path") == 0) {
                p->r.path = field_string(L, k);
            } else if (strcmp(k, "path_params") == 0) {
                field_type(L, k, LUA_TTABLE);
                read_path_params(L, u, p, &nanch);
            } else goto unknown;
            break;
        case 'u':
            if (strcmp(k, "url") == 0) {
                p->r.url = field_string(L, k);
            } else if (strcmp(k, "unique_ids") == 0) {
                field_type(L, k, LUA_TBOOLEAN);
                unique_ids = lua_toboolean(L, -1);
            } else goto unknown;
            break;
        case 'q':
            if (strcmp(k, "query") != 0) goto unknown;
            field_type(L, k, LUA_TTABLE);
            read_pairs(L, u, p, &nanch, 1);
            break;
        case 'h':
            if (strcmp(k, "headers") != 0) goto unknown;
            field_type(L, k, LUA_TTABLE);
            read_pairs(L, u, p, &nanch, 0);
            break;
        case 'b': {
            size_t len;
            if (strcmp(k, "body") != 0) goto unknown;
            if (lua_istable(L, -1)) { /* encoded once the rest is read */
                body_table = 1;
                lua_pushvalue(L, -1);
                lua_replace(L, BODY_SLOT);
                break;
            }
            field_type(L, k, LUA_TSTRING);
            p->r.body = lua_tolstring(L, -1, &len);
            p->r.body_len = len;
            break;
        }
        case 'a': {
            const char *a;
            if (strcmp(k, "auth") != 0) goto unknown;
            a = field_string(L, k);
            if (strcmp(a, "private") == 0) p->r.auth = KL_AUTH_PRIVATE;
            else if (strcmp(a, "public") == 0) p->r.auth = KL_AUTH_PUBLIC;
            else luaL_error(L, "klaviyo.core: request field auth must be \"private\" or \"public\"");
            break;
        }
        case 'r':
            if (strcmp(k, "revision") == 0) {
                p->r.revision = field_string(L, k);
            } else if (strcmp(k, "retry_attempts") == 0) {
                field_type(L, k, LUA_TNUMBER);
                if (!(lua_tonumber(L, -1) >= 1 && lua_tonumber(L, -1) <= 100))
                    luaL_error(L, "klaviyo.core: request field retry_attempts must be in 1..100");
                p->r.retry_attempts = (int)lua_tonumber(L, -1);
            } else if (strcmp(k, "retry_max_time") == 0) {
                field_type(L, k, LUA_TNUMBER);
                if (!(lua_tonumber(L, -1) >= 0 && lua_tonumber(L, -1) <= 86400))
                    luaL_error(L, "klaviyo.core: request field retry_max_time must be in 0..86400 seconds");
                p->r.retry_max_time = lua_tonumber(L, -1);
            } else goto unknown;
            break;
        case 's':
            if (strcmp(k, "safe") != 0) goto unknown;
            field_type(L, k, LUA_TBOOLEAN);
            p->r.safe = lua_toboolean(L, -1) ? KL_SAFE_YES : KL_SAFE_NO;
            break;
        case 'l': {
            static const char *const wn[3] = {"burst", "steady", "daily"};
            unsigned long *dst[3];
            int w;
            if (strcmp(k, "limits") != 0) goto unknown;
            field_type(L, k, LUA_TTABLE);
            dst[0] = &p->r.limit_burst; dst[1] = &p->r.limit_steady; dst[2] = &p->r.limit_daily;
            for (w = 0; w < 3; w++) {
                lua_getfield(L, -1, wn[w]);
                if (!lua_isnil(L, -1)) {
                    double v;
                    if (lua_type(L, -1) != LUA_TNUMBER)
                        luaL_error(L, "klaviyo.core: limits.%s must be a number", wn[w]);
                    v = lua_tonumber(L, -1);
                    if (!(v >= 0 && v <= 1000000) || v != (double)(unsigned long)v)
                        luaL_error(L, "klaviyo.core: limits.%s must be an integer in 0..1000000", wn[w]);
                    *dst[w] = (unsigned long)v;
                }
                lua_pop(L, 1);
            }
            break;
        }
        default:
        unknown:
            luaL_error(L, "klaviyo.core: unknown request field %s", k);
        }
        lua_pop(L, 1);
    }
    /* the pool is final: turn indices into pointers */
    p->r.path_params = p->r.n_path_params ? u->pool + p->pp_off : NULL;
    for (i = 0; i < p->r.n_query; i++) {
        kl_param *q = &u->q[i];
        if (q->values) q->values = u->pool + u->qoff[i];
    }
    if (p->bad_why) bad_value(L, p);
    if (!p->r.method) luaL_error(L, "klaviyo.core: request field method is required");
    if (!p->r.path && !p->r.url) luaL_error(L, "klaviyo.core: request needs path or url");
    if (p->r.path && p->r.url) luaL_error(L, "klaviyo.core: request takes path or url, not both");
    if (body_table && pre) {
        p->r.body = pre->p;
        p->r.body_len = pre->len;
    } else if (body_table) {
        int rc;
        lua_pushvalue(L, BODY_SLOT);
        rc = encode_request_body(L, u, &p->r, unique_ids, ids);
        lua_pop(L, 1);
        if (rc != 0) return -1;
    }
    return 0;
}

/* nil, {kind = "encode", code = "invalid_body", message = "<path>: <what>" [, index = i]} */
static int push_encode_failure(lua_State *L, const kl_json_out *out, lua_Integer index) {
    lua_pushnil(L);
    lua_createtable(L, 0, 4);
    lua_pushliteral(L, "encode");
    lua_setfield(L, -2, "kind");
    lua_pushliteral(L, "invalid_body");
    lua_setfield(L, -2, "code");
    lua_pushlstring(L, out->p, out->len);
    lua_setfield(L, -2, "message");
    if (index > 0) {
        lua_pushinteger(L, index);
        lua_setfield(L, -2, "index");
    }
    return 2;
}

/* res, nil, plain after a send that got an answer; the failure otherwise */
/* res, or nil, err, from c's last answer; then the client gives back what a large answer holds
 * (Lua has its own copies). */
static int push_answer(lua_State *L, kl_client *c, int rc) {
    int n;
    if (rc != KL_OK) n = push_failure(L, c);
    else n = push_response(L, c) != 0 ? push_no_room(L, lua_gettop(L)) : 1;
    kl_shrink(c);
    return n;
}

static int push_sent(lua_State *L, kl_client *c, int rc) {
    int n = push_answer(L, c, rc);
    if (rc != KL_OK || n != 1) return n;
    lua_pushnil(L);
    lua_pushboolean(L, sent_plainly(kl_last_info(c))); /* true: the caller may skip c:info() */
    return 3;
}

static int l_request(lua_State *L) {
    lk_client *u = check_client(L);
    parsed p;
    if (read_request(L, &u->s, &p, &u->ids, NULL) != 0) return push_encode_failure(L, &u->s.body, 0);
    return push_sent(L, u->c, kl_send(u->c, &p.r));
}

static int l_build(lua_State *L) {
    lk_client *u = check_client(L);
    parsed p;
    const kl_built *b;
    size_t i;
    if (read_request(L, &u->s, &p, &u->ids, NULL) != 0) return push_encode_failure(L, &u->s.body, 0);
    if (kl_build(u->c, &p.r, &b) != KL_OK) return push_failure(L, u->c);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, b->method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, b->url);
    lua_setfield(L, -2, "url");
    lua_createtable(L, (int)b->n_headers, 0);
    for (i = 0; i < b->n_headers; i++) {
        lua_createtable(L, 2, 0);
        lua_pushstring(L, b->headers[i].name);
        lua_rawseti(L, -2, 1);
        lua_pushstring(L, b->headers[i].value);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_setfield(L, -2, "headers");
    if (b->body) {
        lua_pushlstring(L, b->body, b->body_len);
        lua_setfield(L, -2, "body");
    }
    return 1;
}

/* c:interpret(status, headers, body [, operation]): headers maps names to a string or a
 * list of strings (ngx.resp.get_headers() style). */
static int l_interpret(lua_State *L) {
    lk_client *u = check_client(L);
    lua_Integer status = luaL_checkinteger(L, 2);
    size_t blen = 0, n = 0, cap = 0;
    const char *body, *op;
    kl_header *hs = NULL;
    int rc, ht;
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    body = luaL_optlstring(L, 4, "", &blen);
    op = luaL_optstring(L, 5, NULL);
    if (op) op = c_string(L, 5, "operation");
    if (status < 100 || status > 999) return luaL_argerror(L, 2, "HTTP status out of range");
    ht = 3;
    if (!lua_isnoneornil(L, ht)) {
        lua_pushnil(L);
        while (lua_next(L, ht)) {
            if (lua_type(L, -2) != LUA_TSTRING) { free(hs); return luaL_argerror(L, 3, "header names must be strings"); }
            if (lua_type(L, -1) == LUA_TSTRING) {
                if (n == cap) {
                    void *nn = realloc(hs, (cap = cap ? cap * 2 : 16) * sizeof *hs);
                    if (!nn) { free(hs); return luaL_error(L, "klaviyo.core: out of memory"); }
                    hs = nn;
                }
                if (has_nul(L, -2) || has_nul(L, -1)) { free(hs); return luaL_argerror(L, 3, "a header holds a NUL byte"); }
                hs[n].name = (char *)lua_tostring(L, -2);
                hs[n].value = (char *)lua_tostring(L, -1);
                n++;
            } else if (lua_istable(L, -1)) {
                int k, m = (int)kl_rawlen(L, -1);
                for (k = 1; k <= m; k++) {
                    lua_rawgeti(L, -1, k);
                    if (lua_type(L, -1) != LUA_TSTRING) { free(hs); return luaL_argerror(L, 3, "header values must be strings"); }
                    lua_pop(L, 1); /* the list keeps it alive */
                    if (n == cap) {
                        void *nn = realloc(hs, (cap = cap ? cap * 2 : 16) * sizeof *hs);
                        if (!nn) { free(hs); return luaL_error(L, "klaviyo.core: out of memory"); }
                        hs = nn;
                    }
                    lua_rawgeti(L, -1, k);
                    if (has_nul(L, -3) || has_nul(L, -1)) { free(hs); return luaL_argerror(L, 3, "a header holds a NUL byte"); }
                    hs[n].name = (char *)lua_tostring(L, -3);
                    hs[n].value = (char *)lua_tostring(L, -1);
                    lua_pop(L, 1);
                    n++;
                }
            } else {
                free(hs);
                return luaL_argerror(L, 3, "header values must be strings or lists of strings");
            }
            lua_pop(L, 1);
        }
    }
    rc = kl_interpret(u->c, (long)status, hs, n, body, blen, op);
    free(hs);
    return push_answer(L, u->c, rc);
}

/* c:info([t]) -> what the last c:request did: {attempts, retries, throttled, waited, backoff,
 * stopped} (waited/backoff in seconds), in t when given (no new table per request) */
static int l_info(lua_State *L) {
    lk_client *u = check_client(L);
    if (lua_istable(L, 2)) {
        lua_settop(L, 2);
        fill_info(L, kl_last_info(u->c));
    } else {
        push_info(L, kl_last_info(u->c));
    }
    return 1;
}

/* ---- c:batch ------------------------------------------------------------------------------ */

#define SCRATCH_MT "klaviyo.core.scratch"

typedef struct lk_scratches {
    size_t n;
    lk_scratch s[1];
} lk_scratches;

#define BODIES_MT "klaviyo.core.bodies"

/* Every table body of a batch, encoded before anything is sent: one block, and per request
 * its offset and length (len 0: no table body). */
typedef struct lk_bodies {
    kl_json_out all;
    size_t n;
    size_t span[1][2];
} lk_bodies;

static int bodies_gc(lua_State *L) {
    lk_bodies *bs = luaL_checkudata(L, 1, BODIES_MT);
    free(bs->all.p);
    memset(&bs->all, 0, sizeof bs->all);
    return 0;
}

static int scratches_gc(lua_State *L) {
    lk_scratches *ss = luaL_checkudata(L, 1, SCRATCH_MT);
    size_t i;
    for (i = 0; i < ss->n; i++) scratch_free(&ss->s[i]);
    ss->n = 0;
    return 0;
}

typedef struct read_args {
    lk_scratch *s;
    kl_uuid_pool *ids;
    const kl_json_out *pre; /* the request's body, encoded by l_batch (or NULL) */
    parsed p;
} read_args;

/* protected: (read_args*, request table) -> anchor table or nil */
static int p_read(lua_State *L) {
    read_args *a = lua_touserdata(L, 1);
    if (read_request(L, a->s, &a->p, a->ids, a->pre) != 0) { /* l_batch encoded every body first */
        lua_pushlstring(L, a->s->body.p, a->s->body.len);
        return lua_error(L);
    }
    lua_settop(L, ANCHOR);
    return 1;
}

typedef struct batch_ctx {
    lua_State *L;
    lk_scratches *ss;
    lk_bodies *bodies;
    kl_uuid_pool *ids;
    int reqs, results, anchors, reader; /* stack slots (reader: p_read) */
    char msg[300];              /* why the last request could not be described */
    int no_room;                /* a result found no room on the Lua stack */
} batch_ctx;

static int batch_get(void *ud, size_t index, size_t slot, kl_request *req) {
    batch_ctx *b = ud;
    lua_State *L = b->L;
    read_args a;
    kl_json_out pre;
    memset(&a, 0, sizeof a);
    a.s = &b->ss->s[slot];
    a.ids = b->ids;
    if (b->bodies->span[index][1]) {
        pre.p = b->bodies->all.p + b->bodies->span[index][0];
        pre.len = b->bodies->span[index][1];
        pre.cap = pre.len;
        a.pre = &pre;
    }
    b->msg[0] = '\0';
    lua_pushvalue(L, b->reader);
    lua_pushlightuserdata(L, &a);
    lua_rawgeti(L, b->reqs, (int)index + 1);
    if (lua_pcall(L, 2, 1, 0) != 0) {
        const char *m = lua_tostring(L, -1);
        snprintf(b->msg, sizeof b->msg, "%s", m ? m : "invalid request");
        lua_pop(L, 1);
        return 1;
    }
    lua_rawseti(L, b->anchors, (int)slot + 1); /* converted numbers live until the next use of the slot */
    *req = a.p.r;
    return 0;
}

static void batch_done(void *ud, size_t index, size_t slot, kl_client *sc, int rc) {
    batch_ctx *b = ud;
    lua_State *L = b->L;
    (void)slot;
    if (!lua_checkstack(L, 2)) { b->no_room = 1; return; }
    lua_createtable(L, 2, 1);
    if (rc == KL_OK) {
        if (push_response(L, sc) != 0) { lua_pop(L, 1); b->no_room = 1; return; }
        lua_rawseti(L, -2, 1);
    } else {
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, 1);
        if (push_error_table(L, sc) != 0) { lua_pop(L, 1); b->no_room = 1; return; }
        if (b->msg[0] && rc == KL_ERR_USAGE) {
            lua_pushstring(L, b->msg);
            lua_setfield(L, -2, "detail");
            lua_pushstring(L, b->msg);
            lua_setfield(L, -2, "message");
            b->msg[0] = '\0';
        }
        lua_rawseti(L, -2, 2);
    }
    if (!sent_plainly(kl_last_info(sc))) { /* .info only when the send loop did more */
        push_info(L, kl_last_info(sc));
        lua_setfield(L, -2, "info");
    }
    lua_rawseti(L, b->results, (int)index + 1);
    kl_shrink(sc);
}

/* c:batch(requests, concurrency) -> list (in order) of {res} | {false, err}, each with .info
 * unless it was sent once with no wait */
static int l_batch(lua_State *L) {
    lk_client *u = check_client(L);
    lua_Integer conc = luaL_optinteger(L, 3, 8);
    size_t n, nslots, i;
    batch_ctx b;
    int rc;
    luaL_checktype(L, 2, LUA_TTABLE);
    if (conc < 1 || conc > 1024) return luaL_argerror(L, 3, "concurrency must be in 1..1024");
    lua_settop(L, 3);
    n = (size_t)kl_rawlen(L, 2);
    lua_createtable(L, (int)n, 0); /* 4: results */
    lua_newtable(L);               /* 5: anchors */
    nslots = n < (size_t)conc ? n : (size_t)conc;
    if (nslots == 0) { lua_pushvalue(L, 4); return 1; }
    b.ss = lua_newuserdata(L, sizeof(lk_scratches) + nslots * sizeof(lk_scratch)); /* 6 */
    memset(b.ss, 0, sizeof(lk_scratches) + nslots * sizeof(lk_scratch));
    b.ss->n = nslots;
    luaL_getmetatable(L, SCRATCH_MT);
    lua_setmetatable(L, -2);
    /* every table body is encoded (and its events stamped) before anything is sent */
    b.bodies = lua_newuserdata(L, sizeof(lk_bodies) + n * sizeof b.bodies->span[0]); /* 7 */
    memset(b.bodies, 0, sizeof(lk_bodies) + n * sizeof b.bodies->span[0]);
    b.bodies->n = n;
    luaL_getmetatable(L, BODIES_MT);
    lua_setmetatable(L, -2);
    lua_pushcfunction(L, p_read); /* 8 */
    for (i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, (int)i);
        if (!lua_istable(L, -1)) return luaL_error(L, "klaviyo.core: batch request %d must be a table", (int)i);
        lua_getfield(L, -1, "body");
        if (lua_istable(L, -1)) {
            size_t at = b.bodies->all.len;
            const char *op;
            int uid;
            lua_getfield(L, -2, "operation");
            lua_getfield(L, -3, "unique_ids");
            op = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            uid = lua_toboolean(L, -1);
            lua_pop(L, 1); /* the operation string stays on the stack while it is used */
            lua_pushvalue(L, -2);
            if (encode_body(L, &b.bodies->all, op, uid, &u->ids) != 0)
                return push_encode_failure(L, &b.bodies->all, (lua_Integer)i);
            lua_pop(L, 2);
            b.bodies->span[i - 1][0] = at;
            b.bodies->span[i - 1][1] = b.bodies->all.len - at;
        }
        lua_pop(L, 2);
    }
    b.L = L;
    b.ids = &u->ids;
    b.reqs = 2;
    b.results = 4;
    b.anchors = 5;
    b.reader = 8;
    b.msg[0] = '\0';
    b.no_room = 0;
    rc = kl_batch(u->c, n, (int)nslots, batch_get, batch_done, &b);
    for (i = 0; i < b.ss->n; i++) scratch_free(&b.ss->s[i]); /* now rather than at the next GC */
    b.ss->n = 0;
    free(b.bodies->all.p);
    memset(&b.bodies->all, 0, sizeof b.bodies->all);
    if (rc != KL_OK) return push_failure(L, u->c);
    if (b.no_room) return push_no_room(L, 3);
    lua_settop(L, 4);
    return 1;
}

/* core.retry_decide{safe=, status= | failure="not_sent"|"maybe_sent", attempt=, elapsed=,
 * retry_after=, random=, attempts=, max_time=, base=, cap=} -> delay | false, reason
 * (the libcurl transport's rule, for transports that sleep their own way) */
static double tfield(lua_State *L, const char *k, double dflt) {
    double v;
    lua_getfield(L, 1, k);
    if (lua_isnil(L, -1)) { lua_pop(L, 1); return dflt; }
    if (lua_type(L, -1) != LUA_TNUMBER) luaL_error(L, "klaviyo.core.retry_decide: %s must be a number", k);
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* core.duration(v) -> v checked as every duration from outside is (duration.h): a number
 * of seconds in 0..one day (larger ones capped), or nil for NaN, negatives and non-numbers */
static int l_duration(lua_State *L) {
    double v;
    if (lua_type(L, 1) != LUA_TNUMBER || kl_duration_check(lua_tonumber(L, 1), &v) == KL_DURATION_BAD) return 0;
    lua_pushnumber(L, v);
    return 1;
}

/* core.account_key(credential) -> the default account part of limiter keys (never the secret) */
static int l_account_key(lua_State *L) {
    char out[18];
    luaL_checkstring(L, 1);
    kl_account_key(c_string(L, 1, "credential"), out);
    lua_pushstring(L, out);
    return 1;
}

/* core.uuid() -> a random version 4 UUID (an event's unique_id), from a pool of /dev/urandom
 * bytes kept by the module (its upvalue), one string made per id; raises when no random
 * bytes can be read. */
static int l_uuid(lua_State *L) {
    char id[37];
    if (kl_uuid4(lua_touserdata(L, lua_upvalueindex(1)), id) != 0)
        return luaL_error(L, "klaviyo: no random bytes for a unique_id (/dev/urandom unreadable)");
    lua_pushlstring(L, id, 36);
    return 1;
}

static int l_retry_decide(lua_State *L) {
    kl_retry_policy pol;
    kl_retry_input in;
    kl_retry_decision d;
    const char *f;
    int rc;
    luaL_checktype(L, 1, LUA_TTABLE);
    kl_retry_policy_default(&pol);
    memset(&in, 0, sizeof in);
    pol.max_attempts = (int)tfield(L, "attempts", pol.max_attempts);
    pol.max_elapsed = tfield(L, "max_time", pol.max_elapsed);
    pol.base_delay = tfield(L, "base", pol.base_delay);
    pol.max_delay = tfield(L, "cap", pol.max_delay);
    lua_getfield(L, 1, "safe");
    in.safe = lua_toboolean(L, -1);
    lua_pop(L, 1);
    in.status = (long)tfield(L, "status", 0);
    lua_getfield(L, 1, "failure");
    f = lua_tostring(L, -1);
    in.failure = !f ? KL_FAIL_NONE : strcmp(f, "not_sent") == 0 ? KL_FAIL_NOT_SENT
               : strcmp(f, "maybe_sent") == 0 ? KL_FAIL_MAYBE_SENT : -1;
    lua_pop(L, 1);
    if (in.failure < 0) return luaL_error(L, "klaviyo.core.retry_decide: failure must be \"not_sent\" or \"maybe_sent\"");
    in.attempt = (int)tfield(L, "attempt", 1);
    in.elapsed = tfield(L, "elapsed", 0);
    in.retry_after = tfield(L, "retry_after", -1);
    in.random = tfield(L, "random", 0);
    rc = kl_retry_decide(&pol, &in, &d);
    if (rc == KL_RETRY_ERROR) return luaL_error(L, "klaviyo.core.retry_decide: %s", d.reason);
    if (rc == KL_RETRY_AGAIN) {
        lua_pushnumber(L, d.delay);
        lua_pushstring(L, d.reason);
    } else {
        lua_pushboolean(L, 0);
        lua_pushstring(L, d.reason);
    }
    return 2;
}

static int l_set_access_token(lua_State *L) {
    lk_client *u = check_client(L);
    const char *t = luaL_optstring(L, 2, NULL);
    if (t && has_nul(L, 2)) return push_nul_refused(L, "invalid_credential", "access_token");
    if (kl_set_access_token(u->c, t) != KL_OK) return push_failure(L, u->c);
    lua_pushboolean(L, 1);
    return 1;
}

static int l_close(lua_State *L) {
    lk_client *u = luaL_checkudata(L, 1, MT);
    if (u->c) { kl_free(u->c); u->c = NULL; }
    scratch_free(&u->s);
    return 0;
}

/* never shows a secret: only the base URL's origin */
static int l_tostring(lua_State *L) {
    lk_client *u = luaL_checkudata(L, 1, MT);
    lua_pushfstring(L, "klaviyo.core.client (%s)", u->c ? "open" : "closed");
    return 1;
}

static const luaL_Reg methods[] = {
    {"request", l_request}, {"build", l_build},
    {"interpret", l_interpret}, {"set_access_token", l_set_access_token}, {"close", l_close}, {"info", l_info},
    {"batch", l_batch}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
    {"new", l_new},
    {"retry_decide", l_retry_decide},
    {"account_key", l_account_key},
    {"duration", l_duration},
    {"encode", kl_lua_encode},
    {"spool_writer", kl_lua_spool_writer}, {"fsync_path", kl_lua_fsync_path},
    {"spool_lock", kl_lua_spool_lock}, {"spool_check", kl_lua_spool_check},
    {"spool_trailer", kl_lua_spool_trailer},
    {NULL, NULL}};

int luaopen_klaviyo_core(lua_State *L);

int luaopen_klaviyo_core(lua_State *L) {
    if (luaL_newmetatable(L, MT)) {
        lua_newtable(L);
        kl_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "klaviyo.core.client");
        lua_setfield(L, -2, "__name");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, SCRATCH_MT)) {
        lua_pushcfunction(L, scratches_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, BODIES_MT)) {
        lua_pushcfunction(L, bodies_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    kl_setfuncs(L, funcs, 0);
    kl_uuid_pool_init(lua_newuserdata(L, sizeof(kl_uuid_pool)));
    lua_pushcclosure(L, l_uuid, 1);
    lua_setfield(L, -2, "uuid");
    lua_pushliteral(L, KL_VERSION);
    lua_setfield(L, -2, "_VERSION");
    lua_pushliteral(L, KL_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushliteral(L, KL_DEFAULT_REVISION);
    lua_setfield(L, -2, "DEFAULT_REVISION");
    lua_pushliteral(L, KL_DEFAULT_BASE_URL);
    lua_setfield(L, -2, "DEFAULT_BASE_URL");
    lua_pushinteger(L, (lua_Integer)KL_MAX_BODY);
    lua_setfield(L, -2, "MAX_BODY");
    return 1;
}
