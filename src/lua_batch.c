/*
 * lua_batch.c - c:batch: many requests at once through the core's libcurl multi driver
 * (kl_batch), every table body encoded before anything is sent.
 */
#include "lua_klaviyo.h"
#include "lua_meta.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    for (i = 0; i < ss->n; i++) lk_scratch_free(&ss->s[i]);
    ss->n = 0;
    return 0;
}

/* Gives the userdata at the top the metatable `name` (no methods), with gc as __gc. */
static void set_gc(lua_State *L, const char *name, lua_CFunction gc) {
    static const luaL_Reg none[] = {{NULL, NULL}};
    lk_metatable(L, name, none, gc);
    lua_setmetatable(L, -2);
}

typedef struct read_args {
    lk_scratch *s;
    kl_uuid_pool *ids;
    const kl_json_out *pre; /* the request's body, encoded by kl_lua_batch (or NULL) */
    parsed p;
} read_args;

/* protected: (read_args*, request table) -> anchor table or nil */
static int p_read(lua_State *L) {
    read_args *a = lua_touserdata(L, 1);
    if (lk_read_request(L, a->s, &a->p, a->ids, a->pre) != 0) { /* kl_lua_batch encoded every body first */
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
    char msg[300];                      /* why the last request could not be described */
    int no_room;                        /* a result found no room on the Lua stack */
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
    if (!lua_checkstack(L, 2)) {
        b->no_room = 1;
        return;
    }
    lua_createtable(L, 2, 1);
    if (rc == KL_OK) {
        if (lk_push_response(L, sc) != 0) {
            lua_pop(L, 1);
            b->no_room = 1;
            return;
        }
        lua_rawseti(L, -2, 1);
    } else {
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, 1);
        if (lk_push_error_table(L, sc) != 0) {
            lua_pop(L, 1);
            b->no_room = 1;
            return;
        }
        if (b->msg[0] && rc == KL_ERR_USAGE) {
            lk_set_string(L, "detail", b->msg);
            lk_set_string(L, "message", b->msg);
            b->msg[0] = '\0';
        }
        lua_rawseti(L, -2, 2);
    }
    if (!lk_sent_plainly(kl_last_info(sc))) { /* .info only when the send loop did more */
        lk_push_info(L, kl_last_info(sc));
        lua_setfield(L, -2, "info");
    }
    lua_rawseti(L, b->results, (int)index + 1);
    kl_shrink(sc);
}

/* c:batch(requests, concurrency) -> list (in order) of {res} | {false, err}, each with .info
 * unless it was sent once with no wait */
int kl_lua_batch(lua_State *L) {
    lk_client *u = lk_check_client(L);
    u->hook_err[0] = '\0';
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
    if (nslots == 0) {
        lua_pushvalue(L, 4);
        return 1;
    }
    b.ss = lua_newuserdata(L, sizeof(lk_scratches) + nslots * sizeof(lk_scratch)); /* 6 */
    memset(b.ss, 0, sizeof(lk_scratches) + nslots * sizeof(lk_scratch));
    b.ss->n = nslots;
    set_gc(L, SCRATCH_MT, scratches_gc);
    /* every table body is encoded (and its events stamped) before anything is sent */
    b.bodies = lua_newuserdata(L, sizeof(lk_bodies) + n * sizeof b.bodies->span[0]); /* 7 */
    memset(b.bodies, 0, sizeof(lk_bodies) + n * sizeof b.bodies->span[0]);
    b.bodies->n = n;
    set_gc(L, BODIES_MT, bodies_gc);
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
            if (lk_encode_body(L, &b.bodies->all, op, uid, &u->ids) != 0)
                return lk_push_encode_failure(L, &b.bodies->all, (lua_Integer)i);
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
    for (i = 0; i < b.ss->n; i++) lk_scratch_free(&b.ss->s[i]); /* now rather than at the next GC */
    b.ss->n = 0;
    free(b.bodies->all.p);
    memset(&b.bodies->all, 0, sizeof b.bodies->all);
    if (rc != KL_OK) return lk_push_failure(L, u->c);
    if (b.no_room) return lk_push_no_room(L, 3);
    lua_settop(L, 4);
    return 1;
}
