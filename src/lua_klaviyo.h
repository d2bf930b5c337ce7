/*
 * lua_klaviyo.h - what the files of the binding (lua_*.c) share: the client userdata, the
 * request reader, and the functions that turn the core's answers into Lua values.
 * Not a public header: the module's surface is described in lua_klaviyo.c.
 */
#ifndef KL_LUA_KLAVIYO_H
#define KL_LUA_KLAVIYO_H

#include "klaviyo.h"
#include "lua_json.h"
#include "uuid.h"

#include <lauxlib.h>
#include <lua.h>
#include <stddef.h>

#define MT "klaviyo.core.client"

#if LUA_VERSION_NUM < 502
#define kl_rawlen(L, i) lua_objlen(L, i)
#else
#define kl_rawlen(L, i) lua_rawlen(L, i)
#endif

/* scratch arrays reused by every request (no allocation on the hot path once grown) */
typedef struct lk_scratch {
    kl_param *q, *h;
    size_t qcap, hcap;
    const char **pool; /* path params and list items */
    size_t pcap;
    size_t *qoff; /* per query parameter: its list's start in pool (lists only) */
    size_t qoffcap;
    kl_json_out body; /* a table body, encoded */
    kl_header *rh;    /* the headers given to c:interpret */
    size_t rhcap;
} lk_scratch;

typedef struct lk_client {
    kl_client *c;
    lk_scratch s;
    kl_uuid_pool ids;            /* unique_ids stamped into event bodies */
    lua_State *L;                /* the thread of the binding call in progress (the hooks run on it) */
    int on_request, on_response; /* registry refs of the hooks, or LUA_NOREF */
    char hook_err[256];          /* the first error a hook raised in the last call, or "" */
    int in_hook;                 /* a hook is running: the client refuses to be used from it */
} lk_client;

/* The client at index 1 (raises for anything else, or a closed client). */
lk_client *lk_check_client(lua_State *L);

/* ---- lua_request.c: Lua values that cross into C, and the request table ---- */

#define ANCHOR 3    /* stack slot of the anchor table while a request table is read */
#define BODY_SLOT 4 /* lk_read_request keeps a table body here until it is encoded */

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

void lk_scratch_free(lk_scratch *s);
/* *arr holds at least need items of elem bytes (doubling from 16); raises on out of memory
 * (*arr stays the owner's to free). */
void lk_grow(lua_State *L, void **arr, size_t *cap, size_t need, size_t elem);
/* Does the string at idx hold a NUL byte?  C would read it only up to there. */
int lk_has_nul(lua_State *L, int idx);
/* The string at idx for C; raises naming `what` when it holds a NUL byte. */
const char *lk_c_string(lua_State *L, int idx, const char *what);
/* Field k of the table at t pushed, and 1, when it is set: raises "<what><k> must be a <want>,
 * got <type>" when it is not of type want; nothing pushed, and 0, when it is nil. */
int lk_opt_field(lua_State *L, int t, const char *what, const char *k, int want);
/* Reads the request table at index 2 (see lua_request.c): 0, or -1 when its body cannot be
 * encoded (the message in u->body). */
int lk_read_request(lua_State *L, lk_scratch *u, parsed *p, kl_uuid_pool *ids, const kl_json_out *pre);
/* Appends the table body at the top of the stack to out, stamping unique_ids when asked: 0, or
 * -1 with the message in out. */
int lk_encode_body(lua_State *L, kl_json_out *out, const char *operation, int unique_ids, kl_uuid_pool *ids);

/* ---- lua_result.c: answers and errors as Lua values ---- */

/* The name of an error kind (KL_ERR_*) in the binding's error tables. */
const char *lk_kind_name(int kind);
void lk_fill_info(lua_State *L, const kl_send_info *i);
void lk_push_info(lua_State *L, const kl_send_info *i);
/* Did the send loop only send once (no waits, no retries)? */
int lk_sent_plainly(const kl_send_info *i);
int lk_push_error_table(lua_State *L, kl_client *c);
int lk_push_local_error(lua_State *L, const char *kind, const char *code, const char *msg, size_t len);
int lk_push_no_room(lua_State *L, int base);
int lk_push_failure(lua_State *L, kl_client *c);
int lk_push_response(lua_State *L, kl_client *c);
int lk_push_encode_failure(lua_State *L, const kl_json_out *out, lua_Integer index);
int lk_push_answer(lua_State *L, kl_client *c, int rc);
int lk_push_sent(lua_State *L, kl_client *c, int rc);
int lk_push_nul_refused(lua_State *L, const char *code, const char *name);

/* ---- the functions the module registers (lua_client.c, lua_batch.c, lua_policy.c,
 * lua_crypto.c) ---- */

int kl_lua_new(lua_State *L);
int kl_lua_request(lua_State *L);
int kl_lua_build(lua_State *L);
int kl_lua_interpret(lua_State *L);
int kl_lua_info(lua_State *L);
int kl_lua_set_access_token(lua_State *L);
int kl_lua_close(lua_State *L);
int kl_lua_tostring(lua_State *L);
int kl_lua_batch(lua_State *L);
int kl_lua_retry_decide(lua_State *L);
int kl_lua_duration(lua_State *L);
int kl_lua_monotonic(lua_State *L);
int kl_lua_account_key(lua_State *L);
int kl_lua_uuid(lua_State *L);
int kl_lua_sha256(lua_State *L);
int kl_lua_hmac_sha256(lua_State *L);
int kl_lua_random_bytes(lua_State *L);
int kl_lua_equal(lua_State *L);

/* ---- lua_readline.c: core.read_line, a line of a file with a bound ---- */
int kl_lua_read_line(lua_State *L);

#endif
