/*
 * redis_reply.h: one command and its one reply on a blocking hiredis connection, the reply
 * held to the most a reply of the rate limiter's holds (the script answers three integers,
 * SCRIPT LOAD a 40-byte SHA1, AUTH and SELECT a status or an error line): an array of at most
 * 16 items, a string or line of at most 4096 bytes, at most 64 items in all, the bounds the
 * nginx store (lua/klaviyo/limiter/redis.lua) holds its replies to.
 *
 * hiredis believes every count a reply announces (it allocates an array of a thousand million
 * items at once, then waits for them) and waits for a string of any length. Here the reader
 * builds replies with functions that refuse past the bounds, which fails the reply at once,
 * and the read loop stops as soon as the bytes waiting for the next item exceed them (a
 * string is refused from its announced length, before its bytes arrive). A refused reply
 * leaves the context failed: the caller drops the connection.
 */
#ifndef KL_REDIS_REPLY_H
#define KL_REDIS_REPLY_H

#include <hiredis/hiredis.h>

typedef struct kl_resp_guard {
    redisReplyObjectFunctions build; /* the reader's, while attached */
    int objects;                     /* items built for the reply being read */
    const char *too_big;             /* which bound the last reply broke, or NULL */
} kl_resp_guard;

/* Every later reply on c is built under g's bounds; g must outlive c. */
void kl_resp_guard_attach(kl_resp_guard *g, redisContext *c);

/* Send a command on c (attached to g) and read its one reply: the reply (freeReplyObject it),
 * or NULL with g->too_big naming the bound it broke, or else c->err saying what failed. */
redisReply *kl_resp_command(kl_resp_guard *g, redisContext *c, int argc, const char **argv, const size_t *lens);

#endif
