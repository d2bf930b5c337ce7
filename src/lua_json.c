/*
 * lua_json.c: JSON encoder for Lua values (see lua_json.h for the mapping).
 *
 * Why a C encoder and not lua-cjson: cjson cannot tell an empty array from an
 * empty object without global settings, prints numbers with 14 digits (losing
 * precision), and its errors do not say where in the body the bad value is.
 * Klaviyo rejects a whole request for one bad leaf, so the message names it.
 *
 * Memory: for core.encode the output buffer starts on the C stack and grows
 * into Lua userdata kept in a fixed stack slot, so a Lua memory error (longjmp)
 * can never leak anything. kl_json_encode_to writes into a malloc'd block its
 * caller owns (the client's scratch), which a longjmp leaves owned and valid.
 * The encoder never raises for bad data: it unwinds with -1 and the entry
 * points return nil, msg (or -1 with the message in the output).
 */
#include "lua_json_enc.h"

#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- containers ---- */

static int encode_value(enc *e, int idx);

enum { KIND_AUTO, KIND_ARRAY, KIND_OBJECT, KIND_NULL };

/* Reads __jsontype from the metatable (raw access: no metamethods run). */
static int table_kind(enc *e, int idx) {
    lua_State *L = e->L;
    int kind = KIND_AUTO;
    if (!lua_getmetatable(L, idx)) return KIND_AUTO;
    lua_pushliteral(L, "__jsontype");
    lua_rawget(L, -2);
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (strcmp(s, "array") == 0) kind = KIND_ARRAY;
        else if (strcmp(s, "object") == 0) kind = KIND_OBJECT;
        else if (strcmp(s, "null") == 0) kind = KIND_NULL;
        else kind = -1;
    } else if (!lua_isnil(L, -1)) {
        kind = -1;
    }
    lua_pop(L, 2);
    if (kind < 0)
        return kl_json_refuse(e, e->depth, "jsontype", 0,
                              "metatable field __jsontype must be \"array\", \"object\" or \"null\"");
    return kind;
}

/* Number key -> 1-based index, or 0 if it is not a positive integer. */
static long long key_index(lua_State *L, int idx) {
    double d;
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        return i >= 1 ? (long long)i : 0;
    }
#endif
    d = (double)lua_tonumber(L, idx);
    if (d >= 1 && d < 9007199254740992.0 && (double)(long long)d == d) return (long long)d;
    return 0;
}

static int bad_key(enc *e, int keyidx) {
    char msg[128];
    int t = lua_type(e->L, keyidx);
    if (t == LUA_TNUMBER)
        snprintf(msg, sizeof msg, "number key %.17g cannot be encoded as JSON (array keys are 1..n)",
                 (double)lua_tonumber(e->L, keyidx));
    else snprintf(msg, sizeof msg, "%s key cannot be encoded as JSON (object keys are strings)", lua_typename(e->L, t));
    e->what = lua_typename(e->L, t);
    return kl_json_refuse(e, e->depth, t == LUA_TNUMBER ? "key_number" : "key_type", 0, msg);
}

/* Is the object being opened (frame depth - 1) at the stamp path? */
static int at_stamp_path(const enc *e) {
    const kl_json_stamp *s = e->stamp;
    int i;
    if (!s || e->depth - 1 != s->n) return 0;
    for (i = 0; i < s->n; i++) {
        const char *want = s->path[i];
        const frame *f = &e->frames[i];
        if (want[0] == '*' && want[1] == '\0') {
            if (f->key) return 0;
        } else if (!f->key || f->keylen != strlen(want) || memcmp(f->key, want, f->keylen) != 0) {
            return 0;
        }
    }
    return 1;
}

/* ,"<key>":"<uuid>" (without the comma for an empty object) */
static int put_id(enc *e, int first) {
    const kl_json_stamp *s = e->stamp;
    char id[37];
    if (kl_uuid4(s->pool, id) != 0) {
        char msg[96];
        snprintf(msg, sizeof msg, "no random bytes for a %.40s (/dev/urandom unreadable)", s->key);
        return kl_json_fail(e, e->depth, msg);
    }
    if (!first) putc_(e, ',');
    putc_(e, '"');
    put(e, s->key, s->keylen);
    put(e, "\":\"", 3);
    put(e, id, 36);
    putc_(e, '"');
    return 0;
}

/* ktype: the type of the first key, which the caller's lua_next left on the stack with its
 * value (at vidx - 1 and vidx: the same slots for every key). */
static int encode_object(enc *e, int idx, int kind, int ktype) {
    lua_State *L = e->L;
    frame *f = &e->frames[e->depth - 1];
    int first = 1, stamp = at_stamp_path(e), vidx = lua_gettop(L), t = ktype;
    putc_(e, '{');
    for (;;) {
        size_t klen;
        const char *k;
        if (t != LUA_TSTRING) {
            if (t == LUA_TNUMBER && key_index(L, -2)) {
                e->depth--;
                return kl_json_refuse(e, e->depth, "mixed", 0,
                                      kind == KIND_OBJECT ? "table marked as object has an array (number) key"
                                                          : "table mixes array (number) and object (string) keys");
            }
            e->depth--;
            return bad_key(e, -2);
        }
        k = lua_tolstring(L, -2, &klen);
        f->key = k;
        f->keylen = klen;
        if (stamp && klen == e->stamp->keylen && memcmp(k, e->stamp->key, klen) == 0) stamp = 0; /* the caller's */
        if (!first) putc_(e, ',');
        first = 0;
        if (kl_json_put_string(e, k, klen) < 0)
            return kl_json_refuse(e, e->depth, "key_utf8", 0, "key is not valid UTF-8");
        putc_(e, ':');
        if (encode_value(e, vidx) < 0) return -1;
        lua_settop(L, vidx - 1);
        if (!lua_next(L, idx)) break;
        t = lua_type(L, -2);
    }
    if (stamp && put_id(e, 0) < 0) return -1;
    putc_(e, '}');
    return 0;
}

static int encode_array(enc *e, int idx, int kind) {
    lua_State *L = e->L;
    frame *f = &e->frames[e->depth - 1];
    long long count = 0, max = 0, i;
    /* Counting pass: keys must be exactly 1..n (the order of next is not). */
    lua_pop(L, 2);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        long long k;
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TNUMBER || (k = key_index(L, -1)) == 0) {
            if (lua_type(L, -1) == LUA_TSTRING) {
                e->depth--;
                return kl_json_refuse(e, e->depth, "mixed", 0,
                                      kind == KIND_ARRAY ? "table marked as array has a string key"
                                                         : "table mixes array (number) and object (string) keys");
            }
            e->depth--;
            return bad_key(e, -1);
        }
        count++;
        if (k > max) max = k;
    }
    if (max != count) {
        char msg[128];
        snprintf(msg, sizeof msg,
                 "sparse array (%lld values, largest index %lld) cannot be "
                 "encoded as JSON",
                 count, max);
        e->depth--;
        return kl_json_refuse(e, e->depth, "sparse", max, msg);
    }
    if (e->max_items && count > e->max_items) {
        e->depth--;
        return kl_json_refuse(e, e->depth, "items", count, "array over the item limit");
    }
    f->key = NULL;
    putc_(e, '[');
    for (i = 1; i <= count; i++) {
        if (i > 1) putc_(e, ',');
        f->index = i;
        lua_rawgeti(L, idx, (int)i);
        if (encode_value(e, lua_gettop(L)) < 0) return -1;
        lua_pop(L, 1);
    }
    putc_(e, ']');
    return 0;
}

static int encode_table(enc *e, int idx) {
    lua_State *L = e->L;
    const void *self;
    int kind, i, rc, ktype;
    if ((kind = table_kind(e, idx)) < 0) return -1;
    if (kind == KIND_NULL) {
        put(e, "null", 4);
        return 0;
    }
    if (e->depth >= e->max_depth) {
        char msg[96];
        snprintf(msg, sizeof msg, "nested deeper than max_depth (%d) levels", e->max_depth);
        return kl_json_refuse(e, e->depth, "depth", e->max_depth, msg);
    }
    self = lua_topointer(L, idx);
    for (i = 0; i < e->depth; i++)
        if (e->frames[i].table == self)
            return kl_json_refuse(e, e->depth, "cycle", 0,
                                  "table contains itself (cycle) and cannot be encoded as JSON");
    /* each level holds a key and a value (and table_kind 2 more for a moment): room for the
     * next 8 levels is made every 8 levels, not at each table */
    if ((e->depth & 7) == 0 && !lua_checkstack(L, 2 * 8 + 4))
        return kl_json_refuse(e, e->depth, "stack", 0, "nested too deep for the Lua stack");
    e->frames[e->depth].table = self;
    e->frames[e->depth].key = NULL;
    e->frames[e->depth].index = 0;
    e->depth++;
    lua_pushnil(L);
    if (!lua_next(L, idx)) {
        if (kind != KIND_ARRAY && at_stamp_path(e)) {
            putc_(e, '{');
            if (put_id(e, 1) < 0) return -1;
            putc_(e, '}');
        } else {
            put(e, kind == KIND_ARRAY ? "[]" : "{}", 2);
        }
        e->depth--;
        return 0;
    }
    ktype = lua_type(L, -2);
    if (kind == KIND_OBJECT || (kind == KIND_AUTO && ktype == LUA_TSTRING)) rc = encode_object(e, idx, kind, ktype);
    else rc = encode_array(e, idx, kind);
    if (rc == 0) e->depth--;
    return rc;
}

static int encode_value(enc *e, int idx) {
    lua_State *L = e->L;
    switch (lua_type(L, idx)) {
    case LUA_TNIL: put(e, "null", 4); return 0;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx)) put(e, "true", 4);
        else put(e, "false", 5);
        return 0;
    case LUA_TNUMBER: return kl_json_put_number(e, idx);
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (e->max_string && n > e->max_string)
            return kl_json_refuse(e, e->depth, "string", (long long)n, "string over the size limit");
        if (kl_json_put_string(e, s, n) < 0) return kl_json_refuse(e, e->depth, "utf8", 0, "string is not valid UTF-8");
        return 0;
    }
    case LUA_TTABLE: return encode_table(e, idx);
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            put(e, "null", 4);
            return 0;
        }
        e->what = "lightuserdata";
        return kl_json_refuse(e, e->depth, "type", 0, "lightuserdata other than cjson.null cannot be encoded as JSON");
    default: {
        char msg[96];
        e->what = lua_typename(L, lua_type(L, idx));
        snprintf(msg, sizeof msg, "%s cannot be encoded as JSON", e->what);
        return kl_json_refuse(e, e->depth, "type", 0, msg);
    }
    }
}

/* ---- entry point ---- */

static int read_max_depth(lua_State *L) {
    int max_depth = KL_JSON_DEFAULT_MAX_DEPTH;
    if (lua_isnoneornil(L, 2)) return max_depth;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        if (lua_type(L, -2) == LUA_TSTRING && strcmp(lua_tostring(L, -2), "max_depth") == 0) {
            lua_Number d = lua_tonumber(L, -1);
            /* range first: casting NaN or a huge number to int is undefined */
            if (lua_type(L, -1) != LUA_TNUMBER || !(d >= 1 && d <= KL_JSON_MAX_DEPTH_LIMIT) || d != (lua_Number)(int)d)
                luaL_argerror(L, 2, "max_depth must be an integer from 1 to 1000");
            max_depth = (int)d;
        } else if (lua_type(L, -2) == LUA_TSTRING) {
            luaL_argerror(L, 2, lua_pushfstring(L, "unknown option '%s'", lua_tostring(L, -2)));
        } else {
            luaL_argerror(L, 2, "option names are strings");
        }
        lua_pop(L, 1);
    }
    return max_depth;
}

/* The encoder over the value at idx, its output appended to out's malloc'd block or, when out
 * is NULL, in its inline buffer that grows into the Lua stack slot bufslot; frames on the C
 * stack (inline) unless max_depth needs more.  The caller sets the limits (max_*) and stamp. */
static int run(lua_State *L, enc *e, frame *inline_frames, int idx, int bufslot, kl_json_out *out) {
    e->L = L;
    e->out = out;
    if (out) {
        e->buf = out->p;
        e->len = out->len;
        e->cap = out->cap;
    } else {
        e->buf = e->inline_buf;
        e->len = 0;
        e->cap = sizeof e->inline_buf;
    }
    e->bufslot = bufslot;
    e->depth = 0;
    e->code = e->what = NULL;
    e->num = 0;
    e->levels = 0;
    if (e->max_depth <= INLINE_DEPTH) e->frames = inline_frames;
    else e->frames = (frame *)lua_newuserdata(L, sizeof(frame) * (size_t)e->max_depth);
    return encode_value(e, idx);
}

int kl_lua_encode(lua_State *L) {
    enc e;
    frame inline_frames[INLINE_DEPTH];
    luaL_checkany(L, 1);
    e.max_depth = read_max_depth(L);
    e.max_string = 0;
    e.max_items = 0;
    e.stamp = NULL;
    lua_settop(L, 2);
    lua_pushnil(L);                                  /* slot 3: owner of the grown buffer */
    if (run(L, &e, inline_frames, 1, 3, NULL) < 0) { /* the buffer holds the message */
        lua_pushnil(L);
        lua_pushlstring(L, e.buf, e.len);
        return 2;
    }
    lua_pushlstring(L, e.buf, e.len);
    return 1;
}

/* A limit argument of core.measure: nil for none, else an integer from 1. */
static double limit_arg(lua_State *L, int i, double hi) {
    double v;
    if (lua_isnoneornil(L, i)) return 0;
    v = luaL_checknumber(L, i);
    if (!(v >= 1 && v <= hi) || v != (double)(long long)v) luaL_argerror(L, i, "limit must be an integer from 1");
    return v;
}

int kl_lua_measure(lua_State *L) {
    enc e;
    frame inline_frames[INLINE_DEPTH];
    char tmp[32];
    int i;
    luaL_checkany(L, 1);
    e.max_string = (size_t)limit_arg(L, 2, 1e15);
    e.max_items = (long long)limit_arg(L, 3, 1e15);
    e.max_depth = (int)limit_arg(L, 4, KL_JSON_MAX_DEPTH_LIMIT);
    if (!e.max_depth) e.max_depth = KL_JSON_MAX_DEPTH_LIMIT;
    e.stamp = NULL;
    lua_settop(L, 4);
    lua_pushnil(L); /* slot 5: owner of the grown buffer */
    if (run(L, &e, inline_frames, 1, 5, NULL) == 0) {
        lua_pushinteger(L, (lua_Integer)e.len);
        return 1;
    }
    if (!e.code) { /* out of random bytes and the like: not the value's fault */
        lua_pushlstring(L, e.buf, e.len);
        return lua_error(L);
    }
    lua_pushnil(L);
    lua_pushstring(L, e.code);
    luaL_checkstack(L, 4, "core.measure");
    lua_pushliteral(L, "");
    for (i = 0; i < e.levels; i++) { /* the JSON pointer, one token a level */
        const frame *f = &e.frames[i];
        lua_pushliteral(L, "/");
        if (f->key) {
            const char *k = f->key, *end = f->key + f->keylen, *c;
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (c = k; c < end; c++) {
                if (*c == '~') luaL_addstring(&b, "~0");
                else if (*c == '/') luaL_addstring(&b, "~1");
                else luaL_addchar(&b, *c);
            }
            luaL_pushresult(&b);
        } else {
            snprintf(tmp, sizeof tmp, "%lld", f->index - 1);
            lua_pushstring(L, tmp);
        }
        lua_concat(L, 3);
    }
    lua_pushnumber(L, (lua_Number)e.num);
    if (e.what) lua_pushstring(L, e.what);
    else lua_pushnil(L);
    return 5;
}

int kl_json_encode_to(lua_State *L, int idx, kl_json_out *out, const kl_json_stamp *stamp) {
    enc e;
    frame frames[INLINE_DEPTH];
    int top = lua_gettop(L), rc;
    if (idx < 0) idx = top + idx + 1; /* absolute: the encoder pushes */
    kl_json_out_reserve(L, out, out->len + INLINE_BUF, "a request body");
    e.stamp = stamp;
    e.max_depth = KL_JSON_DEFAULT_MAX_DEPTH;
    e.max_string = 0;
    e.max_items = 0;
    rc = run(L, &e, frames, idx, 0, out);
    out->len = e.len;
    lua_settop(L, top);
    return rc < 0 ? -1 : 0;
}

#ifdef KL_JSON_STANDALONE
/* Test-only module `klaviyo.json_shim` (built by mk/limiter.mk) so the encoder's
 * specs can run before or without the full klaviyo.core. */
int luaopen_klaviyo_json_shim(lua_State *L);
int luaopen_klaviyo_json_shim(lua_State *L) {
    lua_newtable(L);
    lua_pushcfunction(L, kl_lua_encode);
    lua_setfield(L, -2, "encode");
    return 1;
}
#endif
