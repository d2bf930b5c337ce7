/*
 * limiter_redis.h: the rate limiter's shared store in Redis, for several processes or hosts
 * sending under one Klaviyo account (client option limiter = {store = "redis", url = ...}).
 *
 * Same guarantee and the same answers as the in-process limiter (limiter.h): for every
 * window (burst 1 s, steady 60 s, daily 86400 s; a limit of 0 = no such window) any interval
 * of the window's length holds at most max(1, floor(limit * safety)) sends, counted over
 * every process using the same Redis and key. acquire answers GO (the send is recorded) or
 * WAIT with the exact time until it would be GO; it never sleeps, the caller does.
 *
 * Each call is one atomic Redis script (lua/klaviyo/limiter/redis_script.lua, embedded at
 * build time from build/gen/redis_script.h, or passed in the options): EVALSHA, falling
 * back to EVAL when Redis answers NOSCRIPT (restart, SCRIPT FLUSH). Time is Redis's own
 * clock (TIME inside the script), not the caller's, so hosts with skewed clocks agree;
 * waits are durations, so they need no common clock either.
 *
 * Keys: <prefix>{<key>}:log (list of send times) and <prefix>{<key>}:meta (hash), both
 * expiring once nothing in them matters; memory per key is bounded by the largest limit
 * used (about 10 bytes a send: ~35 KB for create_event's 3500/min).
 * Pass a key that names the account without being a secret (never the API key itself).
 *
 * If Redis cannot be reached or does not answer in time, every call returns KL_LIMIT_ERROR
 * with err = KL_REDIS_ERR_IO and an errstr saying so: the caller must not send blind. The
 * next call reconnects, so a Redis restart costs the calls made while it was down.
 *
 * Lua callers without this C store (nginx workers over cosockets, plain Lua over LuaSocket)
 * use lua/klaviyo/limiter/redis.lua: the same script on the same keys, so all of them can
 * share one account's limits.
 *
 * Not thread-safe: one store per thread (each holds one connection). After fork(), the
 * child creates its own store: a connection shared by two processes mixes their replies.
 */
#ifndef KL_LIMITER_REDIS_H
#define KL_LIMITER_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "limiter.h" /* kl_usec, kl_limits, KL_LIMIT_GO / KL_LIMIT_WAIT / KL_LIMIT_ERROR */

#ifdef __cplusplus
extern "C" {
#endif

#define KL_REDIS_DEFAULT_PREFIX "klaviyo:limit:"
#define KL_REDIS_DEFAULT_CONNECT_TIMEOUT_MS 1000L
#define KL_REDIS_DEFAULT_TIMEOUT_MS 1000L
#define KL_REDIS_MAX_WINDOWS 8
#define KL_REDIS_MAX_KEY 1024

/* kl_redis.err */
#define KL_REDIS_OK 0
#define KL_REDIS_ERR_USAGE 1 /* bad URL, option or argument: fix the call */
#define KL_REDIS_ERR_IO 2    /* Redis unreachable, connection lost or no answer in time */
#define KL_REDIS_ERR_REPLY 3 /* Redis answered with an error (AUTH, SELECT, script...) */
#define KL_REDIS_ERR_OOM 4   /* out of memory */

typedef struct kl_redis_options {
    const char *url;         /* redis://[[user]:password@]host[:port][/db]; NULL or "":
                                 redis://127.0.0.1:6379 */
    const char *prefix;      /* NULL: KL_REDIS_DEFAULT_PREFIX */
    double safety;           /* in (0, 1]; 0 means 1.0 */
    long connect_timeout_ms; /* 0: KL_REDIS_DEFAULT_CONNECT_TIMEOUT_MS */
    long timeout_ms;         /* per command; 0: KL_REDIS_DEFAULT_TIMEOUT_MS */
    const char *script;      /* NULL: the script embedded at build time; else its text as
                                 require("klaviyo.limiter.redis_script") returns it (for
                                 builds with -DKL_REDIS_NO_EMBEDDED_SCRIPT, e.g. LuaRocks) */
} kl_redis_options;

typedef struct kl_redis_priv kl_redis_priv;

typedef struct kl_redis {
    int err;          /* KL_REDIS_OK or KL_REDIS_ERR_* of the last call */
    char errstr[256]; /* one readable line; never holds the password */
    kl_usec now;      /* Redis time (us since the epoch) of the last script answer */
    kl_redis_priv *priv;
} kl_redis;

/* Returns NULL only when out of memory. Otherwise check r->err: a bad URL or option leaves
 * KL_REDIS_ERR_USAGE (every later call fails the same way); a failed first connection
 * leaves KL_REDIS_ERR_IO and the next call tries again. kl_redis_free it either way. */
kl_redis *kl_redis_new(const kl_redis_options *opts);
void kl_redis_free(kl_redis *r);

/* Ask to send one request under `key` (e.g. "<account>/<operation>") with `limits`.
 * KL_LIMIT_GO: recorded at Redis time r->now. KL_LIMIT_WAIT: *wait = exact time until it
 * would be GO (asking again that much later gives GO unless someone else sent or a 429
 * blocked meanwhile). KL_LIMIT_ERROR: r->err / r->errstr say why; do not send. */
int kl_redis_acquire(kl_redis *r, const char *key, const kl_limits *limits, kl_usec *wait);

/* The same with explicit windows (us) and limits (before the safety factor); for callers
 * with windows other than burst/steady/daily, and for tests that cannot wait a minute.
 * n may be 0 (only a block can then say WAIT; nothing is recorded). */
int kl_redis_acquire_windows(kl_redis *r, const char *key, const kl_usec *windows, const uint32_t *limits, size_t n,
                             kl_usec *wait);

/* A 429's Retry-After: nobody using the store sends under `key` for `duration` from now
 * (Redis time). Never shortens a longer block. Returns 0 or KL_LIMIT_ERROR (as observe). */
int kl_redis_block_for(kl_redis *r, const char *key, kl_usec duration);

/* The server's RateLimit-Remaining (`remaining` more sends) and RateLimit-Reset (`reset`
 * from now) for the steady window: when that is less than the store believes is left, at
 * most `remaining` more sends are allowed before now + reset, by every process using the
 * store (as limiter.h's observe: a cap, replaced only by a lower one). Never raises what the
 * store allows. *left (may be NULL) = sends the store now believes are left in the steady
 * window, -1 when it has neither a steady limit nor a cap. */
int kl_redis_observe(kl_redis *r, const char *key, const kl_limits *limits, long remaining, kl_usec reset, long *left);

/* The script's SHA1 as Redis knows it (after the first connection), or "" before. */
const char *kl_redis_script_sha(const kl_redis *r);

#ifdef __cplusplus
}
#endif

#endif
