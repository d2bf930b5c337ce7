/*
 * redis_reply.c: one command and its one reply on a blocking hiredis connection, the reply
 * built by this file's functions and held to the bounds in redis_reply.h (see there).
 */
#ifndef KL_NO_HIREDIS

#include "redis_reply.h"

#include <stdlib.h>
#include <string.h>

#define REPLY_MAX_ITEMS 16   /* in one array */
#define REPLY_MAX_BULK 4096  /* bytes of one string or line */
#define REPLY_MAX_OBJECTS 64 /* in one reply, nested arrays and their items together */

#if HIREDIS_MAJOR >= 1
typedef size_t reply_count;
#else
typedef int reply_count;
#endif

/* A reply object, counted against the bounds; NULL refuses the reply (hiredis then fails it
 * as out of memory, and p->too_big says which bound it broke), or is out of memory. */
static redisReply *object(const redisReadTask *t, int type) {
    kl_resp_guard *p = t->privdata;
    redisReply *o;
    if (++p->objects > REPLY_MAX_OBJECTS) {
        p->too_big = "more than 64 items";
        return NULL;
    }
    o = calloc(1, sizeof *o);
    if (o) o->type = type;
    return o;
}

/* A finished object goes into its array, as hiredis's own functions do; freeReplyObject
 * frees it with the array. */
static void *placed(const redisReadTask *t, redisReply *o) {
    if (t->parent) ((redisReply *)t->parent->obj)->element[t->idx] = o;
    return o;
}

static void *build_string(const redisReadTask *t, char *s, size_t len) {
    kl_resp_guard *p = t->privdata;
    redisReply *o;
    if (len > REPLY_MAX_BULK) {
        p->too_big = "a string over 4096 bytes";
        return NULL;
    }
    if (!(o = object(t, t->type))) return NULL;
    if (!(o->str = malloc(len + 1))) {
        free(o);
        return NULL;
    }
    memcpy(o->str, s, len);
    o->str[len] = '\0';
    o->len = len;
    return placed(t, o);
}

static void *build_array(const redisReadTask *t, reply_count n) {
    kl_resp_guard *p = t->privdata;
    redisReply *o;
    if (n > REPLY_MAX_ITEMS) {
        p->too_big = "an array of more than 16 items";
        return NULL;
    }
    if (!(o = object(t, REDIS_REPLY_ARRAY))) return NULL;
    if (n > 0 && !(o->element = calloc((size_t)n, sizeof *o->element))) {
        free(o);
        return NULL;
    }
    o->elements = (size_t)n;
    return placed(t, o);
}

static void *build_integer(const redisReadTask *t, long long v) {
    redisReply *o = object(t, REDIS_REPLY_INTEGER);
    if (!o) return NULL;
    o->integer = v;
    return placed(t, o);
}

static void *build_nil(const redisReadTask *t) {
    redisReply *o = object(t, REDIS_REPLY_NIL);
    return o ? placed(t, o) : NULL;
}

#if HIREDIS_MAJOR >= 1
/* RESP3 types: no reply of the limiter's holds one */
static void *build_double(const redisReadTask *t, double d, char *s, size_t len) {
    (void)d, (void)s, (void)len;
    ((kl_resp_guard *)t->privdata)->too_big = "a RESP3 double";
    return NULL;
}
static void *build_bool(const redisReadTask *t, int b) {
    (void)b;
    ((kl_resp_guard *)t->privdata)->too_big = "a RESP3 boolean";
    return NULL;
}
#endif

void kl_resp_guard_attach(kl_resp_guard *p, redisContext *c) {
    memset(&p->build, 0, sizeof p->build);
    p->build.createString = build_string;
    p->build.createArray = build_array;
    p->build.createInteger = build_integer;
    p->build.createNil = build_nil;
#if HIREDIS_MAJOR >= 1
    p->build.createDouble = build_double;
    p->build.createBool = build_bool;
#endif
    p->build.freeObject = freeReplyObject;
    p->objects = 0;
    p->too_big = NULL;
    c->reader->fn = &p->build;
    c->reader->privdata = p;
}

/* Bytes the reader holds that are not yet part of the reply: one item still arriving, after
 * its type byte. A whole line among them is a string's length (hiredis takes every other
 * line as it ends, and a string once all of it is there), so a string too long is refused
 * from its length, before its bytes arrive. */
static const char *waiting_too_big(const redisReader *rd) {
    const char *s = rd->buf + rd->pos;
    size_t n = rd->len - rd->pos, i;
    unsigned long len = 0;
    if (n > REPLY_MAX_BULK + 32) return "an item over 4096 bytes";
    for (i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        if (len <= REPLY_MAX_BULK) len = len * 10 + (unsigned long)(s[i] - '0');
    if (i + 1 < n && s[i] == '\r' && s[i + 1] == '\n' && len > REPLY_MAX_BULK) return "a string over 4096 bytes";
    return NULL;
}

/* redisCommandArgv's loop, checking the bytes waiting after every read. */
redisReply *kl_resp_command(kl_resp_guard *p, redisContext *c, int argc, const char **argv, const size_t *lens) {
    void *rep = NULL;
    int done = 0;
    p->objects = 0;
    p->too_big = NULL;
    if (redisAppendCommandArgv(c, argc, argv, lens) != REDIS_OK) return NULL;
    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK) return NULL;
    while (!rep) {
        if (redisBufferRead(c) != REDIS_OK || redisGetReplyFromReader(c, &rep) != REDIS_OK) return NULL;
        if (!rep && (p->too_big = waiting_too_big(c->reader)) != NULL) return NULL;
    }
    return rep;
}

#else
typedef int kl_resp_none; /* built without hiredis: nothing here */
#endif
