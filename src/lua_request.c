/*
 * lua_request.c - reads a Lua request table (c:request, c:build, c:batch) into a kl_request:
 * strings and numbers checked as they cross into C, a table body encoded by lua_json.c.
 */
#include "lua_klaviyo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lk_scratch_free(lk_scratch *s) {
    free(s->q);
    free(s->h);
    free(s->pool);
    free(s->qoff);
    free(s->body.p);
    free(s->rh);
    memset(s, 0, sizeof *s);
}

void lk_grow(lua_State *L, void **arr, size_t *cap, size_t need, size_t elem) {
    void *n;
    size_t nc;
    if (need <= *cap) return;
    nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    n = realloc(*arr, nc * elem);
    if (!n) luaL_error(L, "klaviyo.core: out of memory");
    *arr = n;
    *cap = nc;
}


/* ---- strings and numbers that cross into C ------------------------------------------------ */

/* Does the string at idx hold a NUL byte?  C reads a string up to its first NUL: whatever
 * follows would be cut off without a word, so every string the core gets is checked here. */
int lk_has_nul(lua_State *L, int idx) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    return memchr(s, '\0', len) != NULL;
}

/* The string at idx for C; raises naming `what` ("option api_key") when it holds a NUL byte. */
const char *lk_c_string(lua_State *L, int idx, const char *what) {
    if (lk_has_nul(L, idx)) luaL_error(L, "klaviyo.core: %s holds a NUL byte", what);
    return lua_tostring(L, idx);
}

/* The number at idx as the text of a path or query value, in buf: an integer (any Lua integer;
 * a float with an integral value in the 64-bit range) as its exact digits; another finite
 * float, when `integral` is 0, as the shortest decimal that reads back to it ('.' whatever the
 * locale).  1, or 0 with *why saying what is wrong with the number. */
static int number_text(lua_State *L, int idx, int integral, char buf[KL_JSON_DOUBLE_TEXT], const char **why) {
    double d;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        snprintf(buf, KL_JSON_DOUBLE_TEXT, "%lld", (long long)lua_tointeger(L, idx));
        return 1;
    }
#endif
    d = (double)lua_tonumber(L, idx);
    if (d != d || d - d != 0) {
        *why = "is NaN or infinite";
        return 0;
    }
    if (d == floor(d)) {
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0)) {
            *why = "is outside the 64-bit integer range";
            return 0;
        }
        snprintf(buf, KL_JSON_DOUBLE_TEXT, "%lld", (long long)d);
        return 1;
    }
    if (integral) {
        *why = "must be an integer";
        return 0;
    }
    kl_json_double_text(d, buf);
    return 1;
}

/* Raises "<what><k> must be a <want>, got <type>" unless the value at the top is of type want;
 * what names the caller and the kind of field ("klaviyo.core: request field "). */
static void check_type(lua_State *L, const char *what, const char *k, int want) {
    if (lua_type(L, -1) != want)
        luaL_error(L, "%s%s must be a %s, got %s", what, k, lua_typename(L, want), luaL_typename(L, -1));
}

/* Field k of the table at t pushed, and 1, when it is set, checked by check_type; nothing
 * pushed, and 0, when it is nil. */
int lk_opt_field(lua_State *L, int t, const char *what, const char *k, int want) {
    lua_getfield(L, t, k);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    check_type(L, what, k, want);
    return 1;
}

/* ---- request description ------------------------------------------------------------- */

/* The string or number at the top of the stack as text for C that stays alive (a number's text
 * goes into the anchor table at stack slot `anchor`), or NULL with *why set: a string holding
 * a NUL byte, a number number_text refuses (integral: a path value), another type. */
static const char *value_text(lua_State *L, int anchor, int *nanch, int integral, const char **why) {
    char buf[KL_JSON_DOUBLE_TEXT];
    int t = lua_type(L, -1);
    if (t == LUA_TSTRING) { /* alive: referenced by the request table */
        if (lk_has_nul(L, -1)) {
            *why = "holds a NUL byte";
            return NULL;
        }
        return lua_tostring(L, -1);
    }
    if (t != LUA_TNUMBER) {
        *why = "must be a string or number";
        return NULL;
    }
    if (!number_text(L, -1, integral, buf, why)) return NULL;
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

#define FIELD "klaviyo.core: request field "

/* A string field of the request (operation, method, path, url, revision, auth), for C. */
static const char *field_string(lua_State *L, const char *k) {
    check_type(L, FIELD, k, LUA_TSTRING);
    if (lk_has_nul(L, -1)) luaL_error(L, FIELD "%s holds a NUL byte", k);
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
    lk_grow(L, (void **)&u->pool, &u->pcap, p->npool + (size_t)n, sizeof *u->pool);
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
    lk_grow(L, (void **)arr, cap, (size_t)n, sizeof **arr);
    if (is_query) lk_grow(L, (void **)&u->qoff, &u->qoffcap, (size_t)n, sizeof *u->qoff);
    for (i = 1; i <= n; i++) {
        kl_param *pa = &(*arr)[i - 1];
        memset(pa, 0, sizeof *pa);
        lua_rawgeti(L, t, i);
        if (!lua_istable(L, -1)) luaL_error(L, "klaviyo.core: %s[%d] must be a {name, value} pair", what, i);
        lua_rawgeti(L, -1, 1);
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "klaviyo.core: %s[%d][1] (name) must be a string", what, i);
        if (lk_has_nul(L, -1)) luaL_error(L, "klaviyo.core: %s[%d][1] (name) holds a NUL byte", what, i);
        pa->name = lua_tostring(L, -1);
        lua_pop(L, 1);
        lua_rawgeti(L, -1, 2);
        if (is_query && lua_istable(L, -1)) {
            int k, m = (int)kl_rawlen(L, -1), lt = lua_gettop(L);
            lk_grow(L, (void **)&u->pool, &u->pcap, p->npool + (size_t)m + 1, sizeof *u->pool);
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
    if (is_query) {
        p->r.query = *arr;
        p->r.n_query = (size_t)n;
    } else {
        p->r.headers = *arr;
        p->r.n_headers = (size_t)n;
    }
}

#define STAMP_REG "klaviyo.core.stamp"         /* registry: klaviyo.event_layout's STAMP */
#define STAMP_KEY_REG "klaviyo.core.stamp_key" /* registry: its STAMP_KEY */
#define STAMP_MAX 16                           /* keys in one place */

/* Is s a non-empty JSON string that needs no escaping? */
static int plain_key(const char *s, size_t n) {
    size_t i;
    for (i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f || s[i] == '"' || s[i] == '\\') return 0;
    return n > 0;
}

/* Loads klaviyo.event_layout's STAMP and STAMP_KEY into the registry (once), which keeps
 * their strings alive; leaves STAMP on the stack. */
static void load_stamp(lua_State *L) {
    size_t n;
    const char *k;
    lua_getglobal(L, "require");
    lua_pushliteral(L, "klaviyo.event_layout");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "STAMP_KEY");
    k = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
    if (!k || !plain_key(k, n))
        luaL_error(L, "klaviyo.core: klaviyo.event_layout's STAMP_KEY must be a plain non-empty string");
    lua_setfield(L, LUA_REGISTRYINDEX, STAMP_KEY_REG);
    lua_getfield(L, -1, "STAMP");
    lua_remove(L, -2);
    if (!lua_istable(L, -1)) luaL_error(L, "klaviyo.core: klaviyo.event_layout has no STAMP table");
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, STAMP_REG);
}

/* Reads into st the places of operation's events (klaviyo.event_layout's STAMP[operation]:
 * keys, "*" for every array item; path is st's storage) and the key an event's id goes under
 * (STAMP_KEY): the one source of the event layout.  Returns the number of keys, 0 when the
 * operation carries no events. */
static int stamp_path(lua_State *L, const char *operation, const char **path, kl_json_stamp *st) {
    int n, i;
    lua_getfield(L, LUA_REGISTRYINDEX, STAMP_REG);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        load_stamp(L);
    }
    lua_getfield(L, LUA_REGISTRYINDEX, STAMP_KEY_REG);
    st->key = lua_tolstring(L, -1, &st->keylen);
    lua_pop(L, 1);
    lua_getfield(L, -1, operation);
    n = lua_istable(L, -1) ? (int)kl_rawlen(L, -1) : 0;
    if (n > STAMP_MAX)
        return luaL_error(L, "klaviyo.core: the events of %s lie deeper than %d keys", operation, STAMP_MAX);
    for (i = 0; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            return luaL_error(L, "klaviyo.core: STAMP.%s[%d] must be a string", operation, i + 1);
        path[i] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 2);
    return n;
}

/* Appends the table body at the top of the stack to out, stamping a unique_id into each event
 * without one when asked (operation names the events' place); 0, or -1 with the message in
 * out. */
int lk_encode_body(lua_State *L, kl_json_out *out, const char *operation, int unique_ids, kl_uuid_pool *ids) {
    const char *path[STAMP_MAX];
    kl_json_stamp st, *stp = NULL;
    if (unique_ids && operation && (st.n = stamp_path(L, operation, path, &st)) > 0) {
        st.path = path;
        st.pool = ids;
        stp = &st;
    }
    return kl_json_encode_to(L, -1, out, stp);
}

/* Encodes the table body at the top of the stack into u->body and points r at the bytes; 0,
 * or -1 with the message in u->body. */
static int encode_request_body(lua_State *L, lk_scratch *u, kl_request *r, int unique_ids, kl_uuid_pool *ids) {
    u->body.len = 0;
    if (lk_encode_body(L, &u->body, r->operation, unique_ids, ids) != 0) return -1;
    r->body = u->body.p;
    r->body_len = u->body.len;
    return 0;
}

/* Reads the request table at index 2 in one pass; unknown fields raise.  A table body is
 * encoded into u->body, unless `pre` holds its bytes already (c:batch encodes every body
 * before sending).  0, or -1 when the body cannot be encoded (the message in u->body). */
int lk_read_request(lua_State *L, lk_scratch *u, parsed *p, kl_uuid_pool *ids, const kl_json_out *pre) {
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
                check_type(L, FIELD, k, LUA_TTABLE);
                read_path_params(L, u, p, &nanch);
            } else goto unknown;
            break;
        case 'u':
            if (strcmp(k, "url") == 0) {
                p->r.url = field_string(L, k);
            } else if (strcmp(k, "unique_ids") == 0) {
                check_type(L, FIELD, k, LUA_TBOOLEAN);
                unique_ids = lua_toboolean(L, -1);
            } else goto unknown;
            break;
        case 'q':
            if (strcmp(k, "query") != 0) goto unknown;
            check_type(L, FIELD, k, LUA_TTABLE);
            read_pairs(L, u, p, &nanch, 1);
            break;
        case 'h':
            if (strcmp(k, "headers") != 0) goto unknown;
            check_type(L, FIELD, k, LUA_TTABLE);
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
            check_type(L, FIELD, k, LUA_TSTRING);
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
            else if (strcmp(a, "client") == 0) p->r.auth = KL_AUTH_CLIENT;
            else luaL_error(L, "klaviyo.core: request field auth must be \"private\", \"public\" or \"client\"");
            break;
        }
        case 'r':
            if (strcmp(k, "revision") == 0) {
                p->r.revision = field_string(L, k);
            } else if (strcmp(k, "retry_attempts") == 0) {
                check_type(L, FIELD, k, LUA_TNUMBER);
                if (!(lua_tonumber(L, -1) >= 1 && lua_tonumber(L, -1) <= 100))
                    luaL_error(L, "klaviyo.core: request field retry_attempts must be in 1..100");
                p->r.retry_attempts = (int)lua_tonumber(L, -1);
            } else if (strcmp(k, "retry_max_time") == 0) {
                check_type(L, FIELD, k, LUA_TNUMBER);
                if (!(lua_tonumber(L, -1) >= 0 && lua_tonumber(L, -1) <= 86400))
                    luaL_error(L, "klaviyo.core: request field retry_max_time must be in 0..86400 seconds");
                p->r.retry_max_time = lua_tonumber(L, -1);
            } else goto unknown;
            break;
        case 's':
            if (strcmp(k, "safe") != 0) goto unknown;
            check_type(L, FIELD, k, LUA_TBOOLEAN);
            p->r.safe = lua_toboolean(L, -1) ? KL_SAFE_YES : KL_SAFE_NO;
            break;
        case 'l': {
            static const char *const wn[3] = {"burst", "steady", "daily"};
            unsigned long *dst[3];
            int w;
            if (strcmp(k, "limits") != 0) goto unknown;
            check_type(L, FIELD, k, LUA_TTABLE);
            dst[0] = &p->r.limit_burst;
            dst[1] = &p->r.limit_steady;
            dst[2] = &p->r.limit_daily;
            for (w = 0; w < 3; w++) {
                if (lk_opt_field(L, -1, "klaviyo.core: limits.", wn[w], LUA_TNUMBER)) {
                    double v = lua_tonumber(L, -1);
                    if (!(v >= 0 && v <= 1000000) || v != (double)(unsigned long)v)
                        luaL_error(L, "klaviyo.core: limits.%s must be an integer in 0..1000000", wn[w]);
                    *dst[w] = (unsigned long)v;
                    lua_pop(L, 1);
                }
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
