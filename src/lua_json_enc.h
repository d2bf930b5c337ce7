/*
 * lua_json_enc.h - the JSON encoder's state, shared by its files: lua_json.c (tables and
 * the entry points), lua_json_scalar.c (numbers and strings) and lua_json_out.c (the output
 * buffer and the error message over it).  Private to them; the encoder's interface is
 * lua_json.h.
 */
#ifndef KL_LUA_JSON_ENC_H
#define KL_LUA_JSON_ENC_H

#include "lua_json.h"

#include <lauxlib.h>
#include <string.h>

#define INLINE_BUF 1024    /* most Klaviyo bodies fit here: no allocation */
#define INLINE_DEPTH 128   /* frames for max_depth <= this live on the C stack */
#define MAX_PATH_SHOWN 240 /* longer paths in error messages are cut in the middle */

/* One open table: its identity (cycle check) and the child being encoded
 * (path for error messages). */
typedef struct {
    const void *table;
    const char *key; /* string key of the current child, or NULL */
    size_t keylen;
    long long index; /* 1-based array index of the current child */
} frame;

typedef struct {
    lua_State *L;
    char *buf;
    size_t len, cap;
    int bufslot;      /* stack slot owning buf once it left inline_buf */
    kl_json_out *out; /* or: buf is out->p, grown with realloc */
    const kl_json_stamp *stamp;
    frame *frames;
    int depth, max_depth;
    /* limits of core.measure (0: none), and what it refused: a word for the caller to put
     * into its own message, a number that goes with it, and how many levels of the path
     * lead to the refused value (NULL code: not refused) */
    size_t max_string;
    long long max_items;
    const char *code, *what;
    long long num;
    int levels;
    char inline_buf[INLINE_BUF];
} enc;

/* Grows the output to hold need more bytes (raises on out of memory: nothing leaks). */
void kl_json_grow(enc *e, size_t need);

static inline void reserve(enc *e, size_t need) {
    if (e->cap - e->len < need) kl_json_grow(e, need);
}

static inline void put(enc *e, const char *s, size_t n) {
    reserve(e, n);
    memcpy(e->buf + e->len, s, n);
    e->len += n;
}

static inline void putc_(enc *e, char c) {
    reserve(e, 1);
    e->buf[e->len++] = c;
}

/* Writes "<path of the first nlevels children>: <msg>" over the output; returns -1. */
int kl_json_fail(enc *e, int nlevels, const char *msg);
/* kl_json_fail, keeping code and num for core.measure. */
int kl_json_refuse(enc *e, int nlevels, const char *code, long long num, const char *msg);
/* The number at idx as JSON: 0, or -1 (NaN, infinities) after kl_json_fail. */
int kl_json_put_number(enc *e, int idx);
/* str as a JSON string: 0, or -1 when it is not valid UTF-8 (nothing reported). */
int kl_json_put_string(enc *e, const char *str, size_t n);

#endif
