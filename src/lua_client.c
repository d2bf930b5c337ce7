/*
 * lua_client.c - the client object of klaviyo.core: core.new (its options read into
 * kl_options), c:request, c:build, c:interpret, c:info, c:set_access_token, c:close.
 */
#include "lua_klaviyo.h"
#include "lua_meta.h"

#include <stdio.h>
#include <string.h>

lk_client *lk_check_client(lua_State *L) {
    lk_client *u = lua_touserdata(L, 1);
    int same = 0;
    if (u && lua_getmetatable(L, 1)) { /* luaL_checkudata would name a userdata by its __name */
        luaL_getmetatable(L, MT);
        same = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }
    if (!same) luaL_argerror(L, 1, lua_pushfstring(L, MT " expected, got %s", luaL_typename(L, 1)));
    if (!u->c) luaL_error(L, "klaviyo.core: client is closed");
    /* the core is in the middle of the call that runs the hook: using it again would undo it */
    if (u->in_hook) luaL_error(L, "klaviyo: a hook cannot use the client that called it");
    u->L = L;
    return u;
}


/* ---- hooks: on_request / on_response, called by the core for every attempt ---------------- */

typedef struct hook_arg {
    lk_client *u;
    const kl_attempt *a;
} hook_arg;

/* Runs protected: builds the info table and calls the hook. */
static int hook_call(lua_State *L) {
    hook_arg *h = lua_touserdata(L, 1);
    const kl_attempt *a = h->a;
    size_t i;
    lua_rawgeti(L, LUA_REGISTRYINDEX, a->phase == KL_ATTEMPT_REQUEST ? h->u->on_request : h->u->on_response);
    lua_createtable(L, 0, 10);
    lk_set_string(L, "operation", a->operation);
    lk_set_string(L, "method", a->method);
    lk_set_string(L, "url", a->url);
    lk_set_number(L, "attempt", a->attempt);
    lk_set_number(L, "waited", a->waited);
    if (a->phase == KL_ATTEMPT_RESPONSE) {
        lk_set_number(L, "duration", a->duration);
        lk_set_number(L, "status", (double)a->status);
        lk_set_string(L, "error", a->code);
    }
    lua_createtable(L, 0, (int)a->n_headers);
    for (i = 0; i < a->n_headers; i++) lk_set_string(L, a->headers[i].name, a->headers[i].value);
    lua_setfield(L, -2, "headers");
    lua_call(L, 1, 0);
    return 0;
}

/* The core's observer.  A hook's error never unwinds through the core: it is caught here, the
 * call goes on, and the first message is kept for c:info() (hook_error). */
static void observe(void *ud, const kl_attempt *a) {
    hook_arg h;
    lk_client *u = ud;
    lua_State *L = u->L;
    int ref = a->phase == KL_ATTEMPT_REQUEST ? u->on_request : u->on_response;
    int rc;
    if (!L || ref == LUA_NOREF || ref == LUA_REFNIL || !lua_checkstack(L, 4)) return;
    h.u = u;
    h.a = a;
    u->in_hook = 1;
#if LUA_VERSION_NUM == 501
    rc = lua_cpcall(L, hook_call, &h);
#else
    lua_pushcfunction(L, hook_call);
    lua_pushlightuserdata(L, &h);
    rc = lua_pcall(L, 1, 0, 0);
#endif
    u->in_hook = 0;
    if (rc != 0) {
        if (!u->hook_err[0]) {
            const char *m = lua_tostring(L, -1);
            snprintf(u->hook_err, sizeof u->hook_err, "%s: %s",
                     a->phase == KL_ATTEMPT_REQUEST ? "on_request" : "on_response", m ? m : "(error object)");
        }
        lua_pop(L, 1);
    }
}

#define OPTION "klaviyo.core.new: option "

static int opt_hook(lua_State *L, int t, const char *k) {
    if (!lk_opt_field(L, t, OPTION, k, LUA_TFUNCTION)) return LUA_NOREF;
    return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* ---- core.new ---------------------------------------------------------------------------- */

/* A string option, or NULL when absent.  One holding a NUL byte is refused as the core refuses
 * a CR or LF in it (nil, err, not a raise): its name goes to *nul and NULL is returned. */
static const char *opt_string(lua_State *L, int t, const char *k, const char **nul) {
    const char *s;
    if (!lk_opt_field(L, t, OPTION, k, LUA_TSTRING)) return NULL;
    if (lk_has_nul(L, -1)) {
        if (!*nul) *nul = k;
        lua_pop(L, 1);
        return NULL;
    }
    s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the options table keeps the string alive */
    return s;
}

/* A number option read into C: only what the conversion needs is checked here (the type, and
 * a range the C field can hold); what a setting may be is the core's to refuse (kl_new answers
 * nil, err), and klaviyo.new checks it for Lua users first. */
static double opt_number(lua_State *L, int t, const char *k) {
    double v;
    if (!lk_opt_field(L, t, OPTION, k, LUA_TNUMBER)) return 0;
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* A timeout in seconds as the core's milliseconds: within a day, so that the long holds it. */
static long opt_ms(lua_State *L, int t, const char *k) {
    double v = opt_number(L, t, k);
    if (v == 0) return 0;
    if (!(v > 0) || v > 86400.0) luaL_error(L, "klaviyo.core.new: option %s must be > 0 and <= 86400 seconds", k);
    v = v * 1000.0;
    return v < 1 ? 1 : (long)v;
}

/* A count for an int field. */
static int opt_count(lua_State *L, int t, const char *k) {
    double v = opt_number(L, t, k);
    if (!(v >= 0 && v <= 1000000)) luaL_error(L, "klaviyo.core.new: option %s must be in 0..1000000", k);
    return (int)v;
}

static const char *const new_options[] = {
    "base_url",        "api_key",    "access_token",   "public_key",     "revision",       "timeout",
    "connect_timeout", "user_agent", "limiter",        "limiter_url",    "limiter_prefix", "limiter_safety",
    "limiter_script",  "account",    "retry_attempts", "retry_max_time", "retry_base",     "retry_cap",
    "proxy",           "ca_file",    "ca_path",        "client_cert",    "client_key",     "on_request",
    "on_response",     NULL};

int kl_lua_new(lua_State *L) {
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
            return luaL_error(L, "klaviyo.core.new: unknown option %s",
                              lua_tostring(L, -1) ? lua_tostring(L, -1) : "(non-string key)");
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
    o.limiter_safety = opt_number(L, 1, "limiter_safety");
    o.retry_attempts = opt_count(L, 1, "retry_attempts");
    o.retry_max_time = opt_number(L, 1, "retry_max_time");
    o.retry_base = opt_number(L, 1, "retry_base");
    o.retry_cap = opt_number(L, 1, "retry_cap");
    o.proxy = opt_string(L, 1, "proxy", &nul);
    o.ca_file = opt_string(L, 1, "ca_file", &nul);
    o.ca_path = opt_string(L, 1, "ca_path", &nul);
    o.client_cert = opt_string(L, 1, "client_cert", &nul);
    o.client_key = opt_string(L, 1, "client_key", &nul);

    u = lua_newuserdata(L, sizeof *u);
    memset(u, 0, sizeof *u);
    u->on_request = u->on_response = LUA_NOREF;
    kl_uuid_pool_init(&u->ids);
    luaL_getmetatable(L, MT);
    lua_setmetatable(L, -2); /* from here its __gc lets go of the hooks, whatever happens */
    u->on_request = opt_hook(L, 1, "on_request");
    u->on_response = opt_hook(L, 1, "on_response");
    if (nul) {
        int cred = strcmp(nul, "api_key") == 0 || strcmp(nul, "access_token") == 0 || strcmp(nul, "public_key") == 0;
        return lk_push_nul_refused(L, cred ? "invalid_credential" : "invalid_option", nul);
    }
    if (u->on_request != LUA_NOREF || u->on_response != LUA_NOREF) {
        o.observer = observe;
        o.observer_ud = u;
    }
    c = kl_new(&o);
    if (!c) {
        static const char msg[] = "klaviyo.core.new: out of memory";
        return lk_push_local_error(L, "out_of_memory", NULL, msg, sizeof msg - 1);
    }
    if (c->err) {
        int n = lk_push_failure(L, c);
        kl_free(c);
        return n;
    }
    u->c = c;
    return 1;
}

int kl_lua_request(lua_State *L) {
    lk_client *u = lk_check_client(L);
    parsed p;
    u->hook_err[0] = '\0';
    if (lk_read_request(L, &u->s, &p, &u->ids, NULL) != 0) return lk_push_encode_failure(L, &u->s.body, 0);
    return lk_push_sent(L, u->c, kl_send(u->c, &p.r));
}

int kl_lua_build(lua_State *L) {
    lk_client *u = lk_check_client(L);
    parsed p;
    const kl_built *b;
    size_t i;
    if (lk_read_request(L, &u->s, &p, &u->ids, NULL) != 0) return lk_push_encode_failure(L, &u->s.body, 0);
    if (kl_build(u->c, &p.r, &b) != KL_OK) return lk_push_failure(L, u->c);
    lua_createtable(L, 0, 4);
    lk_set_string(L, "method", b->method);
    lk_set_string(L, "url", b->url);
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
    if (b->body) lk_set_lstring(L, "body", b->body, b->body_len);
    return 1;
}

/* Appends the header whose name and value are the strings at stack indexes ni and vi to s->rh
 * (n used; the strings stay alive on the stack or in the caller's table); raises for a NUL
 * byte in either. */
static void add_header(lua_State *L, lk_scratch *s, size_t *n, int ni, int vi) {
    if (lk_has_nul(L, ni) || lk_has_nul(L, vi)) luaL_argerror(L, 3, "a header holds a NUL byte");
    lk_grow(L, (void **)&s->rh, &s->rhcap, *n + 1, sizeof *s->rh);
    s->rh[*n].name = (char *)lua_tostring(L, ni);
    s->rh[*n].value = (char *)lua_tostring(L, vi);
    (*n)++;
}

/* c:interpret(status, headers, body [, operation]): headers maps names to a string or a
 * list of strings (ngx.resp.get_headers() style). */
int kl_lua_interpret(lua_State *L) {
    lk_client *u = lk_check_client(L);
    lua_Integer status = luaL_checkinteger(L, 2);
    size_t blen = 0, n = 0;
    const char *body, *op;
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    body = luaL_optlstring(L, 4, "", &blen);
    op = luaL_optstring(L, 5, NULL);
    if (op) op = lk_c_string(L, 5, "operation");
    if (status < 100 || status > 999) return luaL_argerror(L, 2, "HTTP status out of range");
    if (!lua_isnoneornil(L, 3)) {
        lua_pushnil(L);
        while (lua_next(L, 3)) {
            if (lua_type(L, -2) != LUA_TSTRING) return luaL_argerror(L, 3, "header names must be strings");
            if (lua_type(L, -1) == LUA_TSTRING) {
                add_header(L, &u->s, &n, -2, -1);
            } else if (lua_istable(L, -1)) {
                int k, m = (int)kl_rawlen(L, -1);
                for (k = 1; k <= m; k++) {
                    lua_rawgeti(L, -1, k);
                    if (lua_type(L, -1) != LUA_TSTRING) return luaL_argerror(L, 3, "header values must be strings");
                    add_header(L, &u->s, &n, -3, -1);
                    lua_pop(L, 1); /* the list keeps the value alive */
                }
            } else {
                return luaL_argerror(L, 3, "header values must be strings or lists of strings");
            }
            lua_pop(L, 1);
        }
    }
    return lk_push_answer(L, u->c, kl_interpret(u->c, (long)status, u->s.rh, n, body, blen, op));
}

/* c:info([t]) -> what the last c:request did: {attempts, retries, throttled, waited, backoff,
 * stopped} (waited/backoff in seconds), in t when given (no new table per request) */
int kl_lua_info(lua_State *L) {
    lk_client *u = lk_check_client(L);
    if (lua_istable(L, 2)) {
        lua_settop(L, 2);
        lk_fill_info(L, kl_last_info(u->c));
    } else {
        lk_push_info(L, kl_last_info(u->c));
    }
    lk_set_string(L, "hook_error", u->hook_err[0] ? u->hook_err : NULL);
    return 1;
}

int kl_lua_set_access_token(lua_State *L) {
    lk_client *u = lk_check_client(L);
    const char *t = luaL_optstring(L, 2, NULL);
    if (t && lk_has_nul(L, 2)) return lk_push_nul_refused(L, "invalid_credential", "access_token");
    if (kl_set_access_token(u->c, t) != KL_OK) return lk_push_failure(L, u->c);
    lua_pushboolean(L, 1);
    return 1;
}

int kl_lua_close(lua_State *L) {
    lk_client *u = luaL_checkudata(L, 1, MT);
    if (u->in_hook) return luaL_error(L, "klaviyo: a hook cannot close the client that called it");
    if (u->c) {
        kl_free(u->c);
        u->c = NULL;
    }
    lk_scratch_free(&u->s);
    luaL_unref(L, LUA_REGISTRYINDEX, u->on_request);
    luaL_unref(L, LUA_REGISTRYINDEX, u->on_response);
    u->on_request = u->on_response = LUA_NOREF;
    return 0;
}

/* never shows a secret: only the base URL's origin */
int kl_lua_tostring(lua_State *L) {
    lk_client *u = luaL_checkudata(L, 1, MT);
    lua_pushfstring(L, "klaviyo.core.client (%s)", u->c ? "open" : "closed");
    return 1;
}
