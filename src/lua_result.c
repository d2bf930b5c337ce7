/*
 * lua_result.c - the core's answers as Lua values: a response table, the error table of a
 * failure (with its meta decoded from JSON), what the send loop did.
 */
#include "json_read.h"
#include "lua_klaviyo.h"
#include "lua_meta.h"

#include <stdlib.h>
#include <string.h>

/* ---- error / result tables ------------------------------------------------------------------ */

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
        if (!s) {
            lua_pushnil(L);
            break;
        }
        lua_pushlstring(L, s, len);
        free(s);
        break;
    }
    case KJ_ARRAY:
        lua_newtable(L);
        for (ch = k->child, i = 1; ch >= 0; ch = d->nodes[ch].next, i++) {
            if (push_json(L, d, ch, depth + 1) != 0) {
                lua_pop(L, 1);
                return -1;
            }
            lua_rawseti(L, -2, i);
        }
        break;
    case KJ_OBJECT:
        lua_newtable(L);
        for (ch = k->child; ch >= 0; ch = d->nodes[d->nodes[ch].next].next) {
            if (push_json(L, d, ch, depth + 1) != 0) {
                lua_pop(L, 1);
                return -1;
            }
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                continue;
            }
            if (push_json(L, d, d->nodes[ch].next, depth + 1) != 0) {
                lua_pop(L, 2);
                return -1;
            }
            lua_rawset(L, -3);
        }
        break;
    }
    return 0;
}

/* The fields headers and, when the answer carried them, ratelimit of an answer r.  The core
 * keeps r's headers as a block of "name\0value\0" pairs, in order; a repeated header keeps
 * its values joined, as HTTP allows (RFC 9110 5.3). */
static void set_answer_headers(lua_State *L, const kl_response *r) {
    const char *p = r->n_headers ? r->headers[0].name : NULL;
    size_t i;
    lua_createtable(L, 0, (int)r->n_headers);
    for (i = 0; i < r->n_headers; i++) {
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
    lua_setfield(L, -2, "headers");
    if (r->has_ratelimit) {
        lua_createtable(L, 0, 3);
        lk_set_integer(L, "limit", (lua_Integer)r->rl_limit);
        lk_set_integer(L, "remaining", (lua_Integer)r->rl_remaining);
        lk_set_integer(L, "reset", (lua_Integer)r->rl_reset);
        lua_setfield(L, -2, "ratelimit");
    }
}

const char *lk_kind_name(int k) {
    switch (k) {
    case KL_ERR_HTTP: return "http";
    case KL_ERR_TRANSPORT: return "transport";
    case KL_ERR_THROTTLED: return "throttled";
    default: return "refused";
    }
}

/* sets the fields of the table at the top (a reused table gets "stopped" cleared) */
void lk_fill_info(lua_State *L, const kl_send_info *i) {
    lk_set_integer(L, "attempts", i->attempts);
    lk_set_integer(L, "retries", i->retries);
    lk_set_integer(L, "throttled", i->throttled);
    lk_set_number(L, "waited", i->waited);
    lk_set_number(L, "backoff", i->backoff);
    lk_set_string(L, "stopped", i->stopped);
}

void lk_push_info(lua_State *L, const kl_send_info *i) {
    lua_createtable(L, 0, 6);
    lk_fill_info(L, i);
}

/* The send loop did nothing but send once (no waits, no retries): c:info() has nothing a
 * caller's counters do not know already. */
int lk_sent_plainly(const kl_send_info *i) {
    return i->attempts == 1 && i->retries == 0 && i->throttled == 0 && i->waited == 0 && i->backoff == 0;
}

/* Room on the Lua stack for the fixed part of a result or error table (the table, a header
 * block being joined, a field): what turns an answer into Lua values asks for it first, as it
 * may run deep inside a caller's stack (c:batch's callbacks). */
#define RESULT_SLOTS 8

/* The error table of c's last failure (every kind; "usage" for a malformed request): 0, or -1
 * with nothing pushed when the Lua stack has no room for it. */
int lk_push_error_table(lua_State *L, kl_client *c) {
    const kl_error *e = kl_last_error(c);
    static const char *const names[] = {"code",      "title",     "detail",     "pointer",
                                        "parameter", "operation", "request_id", "message"};
    const char *const texts[] = {e->code,      e->title,     e->detail,     e->pointer,
                                 e->parameter, e->operation, e->request_id, c->errstr};
    size_t i;
    if (!lua_checkstack(L, RESULT_SLOTS)) return -1;
    lua_createtable(L, 0, 16);
    lk_set_string(L, "kind",
                  c->err == KL_ERR_USAGE ? "usage"
                  : c->err == KL_ERR_OOM ? "out_of_memory"
                                         : lk_kind_name(c->err));
    if (e->status) lk_set_integer(L, "status", (lua_Integer)e->status);
    for (i = 0; i < sizeof names / sizeof *names; i++) lk_set_string(L, names[i], texts[i]); /* NULL: absent */
    if (e->retry_after >= 0) lk_set_number(L, "retry_after", e->retry_after);
    if (e->body) lk_set_lstring(L, "body", e->body, e->body_len);
    if (c->err == KL_ERR_TRANSPORT) lk_set_boolean(L, "sent", e->sent);
    if (e->status) set_answer_headers(L, kl_last_response(c)); /* kind http, or throttled by a 429 */
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

/* nil and {kind =, code = (unless NULL), message =}, the error tables the binding makes itself;
 * the table is left on top for a caller to add fields to. Returns 2. */
int lk_push_local_error(lua_State *L, const char *kind, const char *code, const char *msg, size_t len) {
    lua_pushnil(L);
    lua_createtable(L, 0, 5);
    lk_set_string(L, "kind", kind);
    lk_set_string(L, "code", code);
    lk_set_lstring(L, "message", msg, len);
    return 2;
}

/* nil, {kind = "out_of_memory", code = "lua_stack", message} in place of a result that the Lua
 * stack has no room for; the stack is cut back to base first, which leaves the room a C
 * function is given on entry. */
int lk_push_no_room(lua_State *L, int base) {
    static const char msg[] = "klaviyo.core: no room on the Lua stack for the answer";
    lua_settop(L, base);
    return lk_push_local_error(L, "out_of_memory", "lua_stack", msg, sizeof msg - 1);
}

/* nil, err for every runtime failure (out of memory included); raises for misuse only */
int lk_push_failure(lua_State *L, kl_client *c) {
    int base = lua_gettop(L);
    if (c->err == KL_ERR_USAGE) return luaL_error(L, "klaviyo.core: %s", c->errstr);
    lua_pushnil(L);
    if (lk_push_error_table(L, c) != 0) return lk_push_no_room(L, base);
    return 2;
}

/* {status, headers, body [, ratelimit]}: 0, or -1 with nothing pushed when the stack has no
 * room. */
int lk_push_response(lua_State *L, kl_client *c) {
    const kl_response *r = kl_last_response(c);
    if (!lua_checkstack(L, RESULT_SLOTS)) return -1;
    lua_createtable(L, 0, 4);
    lk_set_integer(L, "status", (lua_Integer)r->status);
    lk_set_lstring(L, "body", r->body, r->body_len);
    set_answer_headers(L, r);
    return 0;
}

/* nil, {kind = "encode", code = "invalid_body", message = "<path>: <what>" [, index = i]} */
int lk_push_encode_failure(lua_State *L, const kl_json_out *out, lua_Integer index) {
    lk_push_local_error(L, "encode", "invalid_body", out->p, out->len);
    if (index > 0) lk_set_integer(L, "index", index);
    return 2;
}

/* res, or nil, err, from c's last answer; then the client gives back what a large answer holds
 * (Lua has its own copies). */
int lk_push_answer(lua_State *L, kl_client *c, int rc) {
    int n;
    if (rc != KL_OK) n = lk_push_failure(L, c);
    else n = lk_push_response(L, c) != 0 ? lk_push_no_room(L, lua_gettop(L)) : 1;
    kl_shrink(c);
    return n;
}

int lk_push_sent(lua_State *L, kl_client *c, int rc) {
    int n = lk_push_answer(L, c, rc);
    if (rc != KL_OK || n != 1) return n;
    lua_pushnil(L);
    lua_pushboolean(L, lk_sent_plainly(kl_last_info(c))); /* true: the caller may skip c:info() */
    return 3;
}


/* nil, err for a credential or option holding a NUL byte: refused as the core refuses a CR or
 * LF in one (the value may come from a server, as a refreshed token does), naming it. */
int lk_push_nul_refused(lua_State *L, const char *code, const char *name) {
    size_t len;
    const char *detail;
    lua_pushfstring(L, "%s holds a NUL byte", name);
    detail = lua_tolstring(L, -1, &len);
    lk_push_local_error(L, "refused", code, detail, len);
    lk_set_string(L, "title", "Refused locally, nothing sent");
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "detail");
    lua_remove(L, -3); /* the formatted detail */
    return 2;
}
