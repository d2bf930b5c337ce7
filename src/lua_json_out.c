/*
 * lua_json_out.c - the JSON encoder's output: growing the buffer, and replacing what was
 * written with an error message that names the path of the refused value.  Used by the
 * encoder's value files (lua_json.c, lua_json_scalar.c); uses neither.
 */
#include "lua_json_enc.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- output buffer ---- */

void kl_json_out_reserve(lua_State *L, kl_json_out *out, size_t need, const char *what) {
    size_t cap = out->cap ? out->cap : 1024;
    char *nb;
    if (out->cap >= need) return;
    while (cap < need) cap *= 2;
    nb = (char *)realloc(out->p, cap);
    if (!nb) luaL_error(L, "klaviyo: out of memory encoding %s", what);
    out->p = nb; /* the owner frees it, even after a raise */
    out->cap = cap;
}

void kl_json_grow(enc *e, size_t need) {
    size_t cap = e->cap * 2;
    char *nb;
    if (e->out) {
        kl_json_out_reserve(e->L, e->out, e->len + need, "a request body");
        e->buf = e->out->p;
        e->cap = e->out->cap;
        return;
    }
    while (cap < e->len + need) cap *= 2;
    nb = (char *)lua_newuserdata(e->L, cap); /* raises on OOM: nothing leaks */
    memcpy(nb, e->buf, e->len);
    lua_replace(e->L, e->bufslot); /* the old block becomes garbage */
    e->buf = nb;
    e->cap = cap;
}

/* ---- error messages with the path of the offending value ---- */

static int is_ident(const char *s, size_t n) {
    size_t i;
    if (n == 0 || n > 64) return 0;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return 0;
    }
    return 1;
}

/* Writes "<path of the first nlevels children>: <msg>" over the output (which is
 * abandoned on error) and returns -1. Very long paths keep their two ends. */
int kl_json_fail(enc *e, int nlevels, const char *msg) {
    char tmp[32];
    size_t path_len;
    int i;
    e->len = 0;
    for (i = 0; i < nlevels; i++) {
        const frame *f = &e->frames[i];
        if (f->key && is_ident(f->key, f->keylen)) {
            if (i > 0) putc_(e, '.');
            put(e, f->key, f->keylen);
        } else if (f->key) {
            /* Odd keys are quoted; bytes outside printable ASCII shown as \ddd
             * (the key may be the invalid UTF-8 being reported). */
            size_t k, shown = f->keylen > 40 ? 40 : f->keylen;
            put(e, "[\"", 2);
            for (k = 0; k < shown; k++) {
                unsigned char c = (unsigned char)f->key[k];
                if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\') {
                    int m = snprintf(tmp, sizeof tmp, "\\%u", (unsigned)c);
                    put(e, tmp, (size_t)m);
                } else {
                    putc_(e, (char)c);
                }
            }
            if (shown < f->keylen) put(e, "...", 3);
            put(e, "\"]", 2);
        } else {
            int m = snprintf(tmp, sizeof tmp, "[%lld]", f->index);
            put(e, tmp, (size_t)m);
        }
    }
    if (nlevels == 0) put(e, "(root)", 6);
    path_len = e->len;
    if (path_len > MAX_PATH_SHOWN) {
        /* first 60 bytes ... last (MAX_PATH_SHOWN - 65) bytes */
        size_t tail = MAX_PATH_SHOWN - 65;
        memcpy(e->buf + 60, " ... ", 5);
        memmove(e->buf + 65, e->buf + path_len - tail, tail);
        e->len = MAX_PATH_SHOWN;
    }
    put(e, ": ", 2);
    put(e, msg, strlen(msg));
    return -1;
}

int kl_json_refuse(enc *e, int nlevels, const char *code, long long num, const char *msg) {
    e->code = code;
    e->num = num;
    e->levels = nlevels;
    return kl_json_fail(e, nlevels, msg);
}
