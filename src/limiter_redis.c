/*
 * limiter_redis.c: the shared limiter store on hiredis (see limiter_redis.h).
 *
 * The policy lives in the Redis-side script (lua/klaviyo/limiter/redis_script.lua, embedded
 * as build/gen/redis_script.h); this file only parses the URL, keeps one connection, turns
 * limits into script arguments and the script's answer back into GO / WAIT / error.
 */
#define _POSIX_C_SOURCE 200809L

#include "limiter_redis.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <hiredis/hiredis.h>

#include "redis_script.h" /* generated: static const char kl_redis_script[] */

struct kl_redis_priv {
    char *host;
    int port;
    char *user;     /* NULL: AUTH with the password only */
    char *password; /* NULL: no AUTH */
    long db;
    char *prefix;
    double safety;
    long connect_timeout_ms, timeout_ms;
    redisContext *ctx; /* NULL while disconnected */
    char sha[41];      /* from SCRIPT LOAD; "" before the first connection */
    char refused[256]; /* why new() refused the settings, or "" */
};

static const kl_usec window_len[KL_WINDOWS] = {
    1 * KL_USEC_PER_SEC, 60 * KL_USEC_PER_SEC, 86400 * KL_USEC_PER_SEC};

static int fail(kl_redis *r, int err, const char *fmt, ...)
{
    va_list ap;
    r->err = err;
    va_start(ap, fmt);
    vsnprintf(r->errstr, sizeof r->errstr, fmt, ap);
    va_end(ap);
    return KL_LIMIT_ERROR;
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decode s[0..n) into a new string (a password may hold '@' or ':' as %40, %3A).
 * Returns NULL and sets *bad on a malformed escape or an embedded NUL. */
static char *decode(const char *s, size_t n, int *bad)
{
    char *d = malloc(n + 1), *o = d;
    size_t i;
    *bad = 0;
    if (!d) return NULL;
    for (i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval((unsigned char)s[i + 1]) : -1;
            int lo = i + 2 < n ? hexval((unsigned char)s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
                free(d);
                *bad = 1;
                return NULL;
            }
            *o++ = (char)(hi * 16 + lo);
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return d;
}

/* redis://[[user]:password@]host[:port][/db] -> priv fields. */
static int parse_url(kl_redis *r, const char *url)
{
    kl_redis_priv *p = r->priv;
    const char *a, *end, *at, *hs, *he, *ps;
    int bad;
    size_t i;

    if (!url || !*url) url = "redis://127.0.0.1:6379";
    for (i = 0; url[i]; i++)
        if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
            return fail(r, KL_REDIS_ERR_USAGE, "redis url: control character or blank in the url");
    if (strncmp(url, "rediss://", 9) == 0)
        return fail(r, KL_REDIS_ERR_USAGE,
                    "redis url: rediss:// (TLS) is not supported by this store; use redis://");
    if (strncmp(url, "redis://", 8) != 0)
        return fail(r, KL_REDIS_ERR_USAGE,
                    "redis url must look like redis://[:password@]host[:port][/db]");
    a = url + 8;
    end = a + strcspn(a, "/?#");
    if (*end == '?' || *end == '#')
        return fail(r, KL_REDIS_ERR_USAGE, "redis url: query and fragment are not supported");

    /* userinfo: up to the last '@' of the authority (the password may be percent-encoded). */
    at = NULL;
    for (hs = a; hs < end; hs++)
        if (*hs == '@') at = hs;
    if (at) {
        const char *colon = memchr(a, ':', (size_t)(at - a));
        if (!colon)
            return fail(r, KL_REDIS_ERR_USAGE,
                        "redis url: credentials must be :password@ or user:password@");
        if (colon > a) {
            p->user = decode(a, (size_t)(colon - a), &bad);
            if (!p->user)
                return bad ? fail(r, KL_REDIS_ERR_USAGE, "redis url: bad %%-escape in the user")
                           : fail(r, KL_REDIS_ERR_OOM, "out of memory");
        }
        p->password = decode(colon + 1, (size_t)(at - colon - 1), &bad);
        if (!p->password)
            return bad ? fail(r, KL_REDIS_ERR_USAGE, "redis url: bad %%-escape in the password")
                       : fail(r, KL_REDIS_ERR_OOM, "out of memory");
        hs = at + 1;
    } else {
        hs = a;
    }

    /* host: name, IPv4, or [IPv6] */
    if (*hs == '[') {
        he = memchr(hs, ']', (size_t)(end - hs));
        if (!he) return fail(r, KL_REDIS_ERR_USAGE, "redis url: unclosed [ in the host");
        p->host = dup_n(hs + 1, (size_t)(he - hs - 1));
        ps = he + 1;
        if (ps < end && *ps != ':') return fail(r, KL_REDIS_ERR_USAGE, "redis url: junk after ]");
    } else {
        he = memchr(hs, ':', (size_t)(end - hs));
        if (!he) he = end;
        p->host = dup_n(hs, (size_t)(he - hs));
        ps = he;
    }
    if (!p->host) return fail(r, KL_REDIS_ERR_OOM, "out of memory");
    if (!*p->host) return fail(r, KL_REDIS_ERR_USAGE, "redis url: no host");

    p->port = 6379;
    if (ps < end) { /* ":digits" */
        long port = 0;
        const char *d = ps + 1;
        if (d == end) return fail(r, KL_REDIS_ERR_USAGE, "redis url: empty port");
        for (; d < end; d++) {
            if (*d < '0' || *d > '9' || port > 65535)
                return fail(r, KL_REDIS_ERR_USAGE, "redis url: port must be 1-65535");
            port = port * 10 + (*d - '0');
        }
        if (port < 1 || port > 65535)
            return fail(r, KL_REDIS_ERR_USAGE, "redis url: port must be 1-65535");
        p->port = (int)port;
    }

    p->db = 0;
    if (*end == '/' && end[1]) {
        const char *d = end + 1;
        for (; *d; d++) {
            if (*d < '0' || *d > '9' || p->db > 1000000)
                return fail(r, KL_REDIS_ERR_USAGE,
                            "redis url: the path must be a database number, e.g. /0");
            p->db = p->db * 10 + (*d - '0');
        }
    }
    return 0;
}

static void disconnect(kl_redis_priv *p)
{
    if (p->ctx) {
        redisFree(p->ctx);
        p->ctx = NULL;
    }
}

static struct timeval tv_ms(long ms)
{
    struct timeval tv;
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    return tv;
}

/* The context failed (no reply): say what happened in the caller's terms, and drop it. */
static int io_fail(kl_redis *r, const char *doing)
{
    kl_redis_priv *p = r->priv;
    /* hiredis reports a read/write timeout as the EAGAIN of SO_RCVTIMEO/SO_SNDTIMEO. */
    int timed_out = p->ctx && p->ctx->err == REDIS_ERR_IO &&
                    (strstr(p->ctx->errstr, "temporarily unavailable") != NULL ||
                     strstr(p->ctx->errstr, "timed out") != NULL);
    if (!p->ctx)
        fail(r, KL_REDIS_ERR_OOM, "out of memory");
    else if (timed_out)
        fail(r, KL_REDIS_ERR_IO,
             "redis limiter store at %s:%d did not answer %s within %ld ms; not sending", p->host,
             p->port, doing, p->timeout_ms);
    else
        fail(r, KL_REDIS_ERR_IO, "redis limiter store at %s:%d: connection lost %s (%s); not sending",
             p->host, p->port, doing, p->ctx->errstr);
    disconnect(p);
    return KL_LIMIT_ERROR;
}

/* A command on the connection; NULL after io_fail. */
static redisReply *command(kl_redis *r, const char *doing, int argc, const char **argv,
                           const size_t *lens)
{
    redisReply *rep = redisCommandArgv(r->priv->ctx, argc, argv, lens);
    if (!rep) io_fail(r, doing);
    return rep;
}

/* One setup command that must answer OK-ish (AUTH, SELECT); 0 or KL_LIMIT_ERROR. */
static int setup(kl_redis *r, const char *what, int argc, const char **argv)
{
    size_t lens[3];
    int i;
    redisReply *rep;
    for (i = 0; i < argc; i++) lens[i] = strlen(argv[i]);
    rep = command(r, what, argc, argv, lens);
    if (!rep) return KL_LIMIT_ERROR;
    if (rep->type == REDIS_REPLY_ERROR) {
        /* Redis's own message (e.g. WRONGPASS) never echoes the password. */
        fail(r, KL_REDIS_ERR_REPLY, "redis limiter store at %s:%d refused %s: %.*s", r->priv->host,
             r->priv->port, what, (int)(rep->len > 120 ? 120 : rep->len), rep->str);
        freeReplyObject(rep);
        disconnect(r->priv);
        return KL_LIMIT_ERROR;
    }
    freeReplyObject(rep);
    return 0;
}

static int load_script(kl_redis *r)
{
    const char *argv[3] = {"SCRIPT", "LOAD", kl_redis_script};
    size_t lens[3] = {6, 4, sizeof kl_redis_script - 1};
    redisReply *rep = command(r, "SCRIPT LOAD", 3, argv, lens);
    if (!rep) return KL_LIMIT_ERROR;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        fail(r, KL_REDIS_ERR_REPLY, "redis limiter store at %s:%d refused the script: %.*s",
             r->priv->host, r->priv->port,
             (int)(rep->type == REDIS_REPLY_ERROR && rep->len < 160 ? rep->len : 0),
             rep->type == REDIS_REPLY_ERROR ? rep->str : "");
        freeReplyObject(rep);
        disconnect(r->priv);
        return KL_LIMIT_ERROR;
    }
    memcpy(r->priv->sha, rep->str, 40);
    r->priv->sha[40] = '\0';
    freeReplyObject(rep);
    return 0;
}

static int ensure_connected(kl_redis *r)
{
    kl_redis_priv *p = r->priv;
    char db[24];

    if (p->ctx) return 0;
    p->ctx = redisConnectWithTimeout(p->host, p->port, tv_ms(p->connect_timeout_ms));
    if (!p->ctx) return fail(r, KL_REDIS_ERR_OOM, "out of memory");
    if (p->ctx->err) {
        fail(r, KL_REDIS_ERR_IO, "redis limiter store unreachable at %s:%d: %s; not sending",
             p->host, p->port, p->ctx->errstr);
        disconnect(p);
        return KL_LIMIT_ERROR;
    }
    if (redisSetTimeout(p->ctx, tv_ms(p->timeout_ms)) != REDIS_OK) return io_fail(r, "setup");
    if (p->password) {
        const char *argv[3] = {"AUTH", p->user ? p->user : p->password, p->password};
        if (setup(r, "AUTH", p->user ? 3 : 2, argv) != 0) return KL_LIMIT_ERROR;
    }
    if (p->db != 0) {
        const char *argv[2] = {"SELECT", db};
        snprintf(db, sizeof db, "%ld", p->db);
        if (setup(r, "SELECT", 2, argv) != 0) return KL_LIMIT_ERROR;
    }
    return load_script(r);
}

kl_redis *kl_redis_new(const kl_redis_options *opts)
{
    kl_redis_options none;
    kl_redis *r = calloc(1, sizeof *r);
    const char *prefix;

    if (!r) return NULL;
    r->priv = calloc(1, sizeof *r->priv);
    if (!r->priv) {
        free(r);
        return NULL;
    }
    if (!opts) {
        memset(&none, 0, sizeof none);
        opts = &none;
    }
    r->priv->safety = opts->safety == 0 ? 1.0 : opts->safety;
    r->priv->connect_timeout_ms =
        opts->connect_timeout_ms ? opts->connect_timeout_ms : KL_REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
    r->priv->timeout_ms = opts->timeout_ms ? opts->timeout_ms : KL_REDIS_DEFAULT_TIMEOUT_MS;
    prefix = opts->prefix ? opts->prefix : KL_REDIS_DEFAULT_PREFIX;
    r->priv->prefix = dup_n(prefix, strlen(prefix));
    if (!r->priv->prefix) {
        kl_redis_free(r);
        return NULL;
    }
    if (!(r->priv->safety > 0 && r->priv->safety <= 1)) {
        fail(r, KL_REDIS_ERR_USAGE, "redis limiter: safety must be in (0, 1]");
    } else if (r->priv->connect_timeout_ms < 0 || r->priv->timeout_ms < 0) {
        fail(r, KL_REDIS_ERR_USAGE, "redis limiter: timeouts must not be negative");
    } else if (strlen(prefix) > KL_REDIS_MAX_KEY) {
        fail(r, KL_REDIS_ERR_USAGE, "redis limiter: prefix longer than %d bytes", KL_REDIS_MAX_KEY);
    } else if (parse_url(r, opts->url) == 0) {
        ensure_connected(r); /* an unreachable Redis is reported now and retried later */
    }
    if (r->err == KL_REDIS_ERR_OOM) {
        kl_redis_free(r);
        return NULL;
    }
    if (r->err == KL_REDIS_ERR_USAGE) memcpy(r->priv->refused, r->errstr, sizeof r->errstr);
    return r;
}

void kl_redis_free(kl_redis *r)
{
    if (!r) return;
    if (r->priv) {
        disconnect(r->priv);
        free(r->priv->host);
        free(r->priv->user);
        free(r->priv->password);
        free(r->priv->prefix);
        free(r->priv);
    }
    free(r);
}

const char *kl_redis_script_sha(const kl_redis *r)
{
    return r && r->priv ? r->priv->sha : "";
}

/* Was this a failure of a connection that used to work, worth one fresh connection? (Redis
 * restarted, or dropped an idle client.) A timeout is not: the script may be running. */
static int stale(const redisContext *c)
{
    return c && (c->err == REDIS_ERR_EOF ||
                 (c->err == REDIS_ERR_IO && (strstr(c->errstr, "reset by peer") != NULL ||
                                             strstr(c->errstr, "Broken pipe") != NULL)));
}

/* Run the script: argv[0..argc) are its ARGV (the keys are added here). On success *out
 * holds the three integers {a, b, now} it answers. */
static int run(kl_redis *r, const char *key, int argc, const char **args, long long out[3])
{
    kl_redis_priv *p = r->priv;
    const char *argv[8 + 2 * KL_REDIS_MAX_WINDOWS];
    size_t lens[8 + 2 * KL_REDIS_MAX_WINDOWS];
    size_t klen, plen = strlen(p->prefix);
    char *k1 = NULL, *k2 = NULL;
    redisReply *rep = NULL;
    int i, attempt, rc = KL_LIMIT_ERROR;

    if (p->refused[0]) /* new() refused the settings: say so again */
        return fail(r, KL_REDIS_ERR_USAGE, "%s", p->refused);
    if (!key || !*key) return fail(r, KL_REDIS_ERR_USAGE, "redis limiter: empty key");
    klen = strlen(key);
    if (klen > KL_REDIS_MAX_KEY)
        return fail(r, KL_REDIS_ERR_USAGE, "redis limiter: key longer than %d bytes",
                    KL_REDIS_MAX_KEY);
    /* One hash tag around the key: both keys share a Redis Cluster slot. */
    k1 = malloc(plen + klen + 8);
    k2 = malloc(plen + klen + 8);
    if (!k1 || !k2) {
        rc = fail(r, KL_REDIS_ERR_OOM, "out of memory");
        goto done;
    }
    sprintf(k1, "%s{%s}:log", p->prefix, key);
    sprintf(k2, "%s{%s}:meta", p->prefix, key);

    argv[0] = "EVALSHA";
    argv[1] = p->sha;
    argv[2] = "2";
    argv[3] = k1;
    argv[4] = k2;
    for (i = 0; i < argc; i++) argv[5 + i] = args[i];
    for (i = 0; i < 5 + argc; i++) lens[i] = strlen(argv[i]);

    for (attempt = 0; attempt < 2; attempt++) {
        int had_ctx = p->ctx != NULL;
        if (ensure_connected(r) != 0) goto done;
        argv[1] = p->sha;
        lens[1] = strlen(p->sha);
        argv[0] = "EVALSHA";
        lens[0] = 7;
        rep = redisCommandArgv(p->ctx, 5 + argc, argv, lens);
        if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
            /* Script cache emptied (restart, SCRIPT FLUSH): send the text, which caches it. */
            freeReplyObject(rep);
            argv[0] = "EVAL";
            lens[0] = 4;
            argv[1] = kl_redis_script;
            lens[1] = sizeof kl_redis_script - 1;
            rep = redisCommandArgv(p->ctx, 5 + argc, argv, lens);
        }
        if (rep) break;
        if (!(had_ctx && attempt == 0 && stale(p->ctx))) {
            io_fail(r, "the limiter script");
            goto done;
        }
        disconnect(p); /* retry once on a fresh connection */
    }
    if (!rep) {
        io_fail(r, "the limiter script");
        goto done;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        rc = fail(r, KL_REDIS_ERR_REPLY, "redis limiter store at %s:%d: %.*s", p->host, p->port,
                  (int)(rep->len > 200 ? 200 : rep->len), rep->str);
        goto done;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
        rc = fail(r, KL_REDIS_ERR_REPLY, "redis limiter store at %s:%d: unexpected script answer",
                  p->host, p->port);
        goto done;
    }
    for (i = 0; i < 3; i++) {
        if (rep->element[i]->type != REDIS_REPLY_INTEGER) {
            rc = fail(r, KL_REDIS_ERR_REPLY,
                      "redis limiter store at %s:%d: unexpected script answer", p->host, p->port);
            goto done;
        }
        out[i] = rep->element[i]->integer;
    }
    r->now = (kl_usec)out[2];
    r->err = KL_REDIS_OK;
    r->errstr[0] = '\0';
    rc = 0;
done:
    if (rep) freeReplyObject(rep);
    free(k1);
    free(k2);
    return rc;
}

/* As limiter.c computes it, so both stores allow the same counts. */
static uint32_t effective(uint32_t limit, double safety)
{
    double v;
    if (limit == 0) return 0;
    v = (double)limit * safety + 1e-9; /* keeps 3500 * 0.95 at 3325 despite binary rounding */
    return v < 1 ? 1 : (uint32_t)v;
}

int kl_redis_acquire_windows(kl_redis *r, const char *key, const kl_usec *windows,
                             const uint32_t *limits, size_t n, kl_usec *wait)
{
    char nums[2 * KL_REDIS_MAX_WINDOWS + 1][24];
    const char *args[2 + 2 * KL_REDIS_MAX_WINDOWS];
    long long out[3];
    size_t i;

    if (!wait) return fail(r, KL_REDIS_ERR_USAGE, "redis limiter: wait must not be NULL");
    *wait = 0;
    if (n > KL_REDIS_MAX_WINDOWS || (n && (!windows || !limits)))
        return fail(r, KL_REDIS_ERR_USAGE, "redis limiter: at most %d windows",
                    KL_REDIS_MAX_WINDOWS);
    args[0] = "acquire";
    snprintf(nums[0], sizeof nums[0], "%u", (unsigned)n);
    args[1] = nums[0];
    for (i = 0; i < n; i++) {
        if (windows[i] <= 0 || limits[i] == 0 || limits[i] > KL_LIMIT_MAX)
            return fail(r, KL_REDIS_ERR_USAGE,
                        "redis limiter: window %u needs a length > 0 and a limit in 1..%u",
                        (unsigned)i, (unsigned)KL_LIMIT_MAX);
        snprintf(nums[1 + 2 * i], sizeof nums[0], "%lld", (long long)windows[i]);
        snprintf(nums[2 + 2 * i], sizeof nums[0], "%u", effective(limits[i], r->priv->safety));
        args[2 + 2 * i] = nums[1 + 2 * i];
        args[3 + 2 * i] = nums[2 + 2 * i];
    }
    if (run(r, key, (int)(2 + 2 * n), args, out) != 0) return KL_LIMIT_ERROR;
    if (out[0] == 1) return KL_LIMIT_GO;
    *wait = (kl_usec)out[1];
    return KL_LIMIT_WAIT;
}

int kl_redis_acquire(kl_redis *r, const char *key, const kl_limits *limits, kl_usec *wait)
{
    kl_usec w[KL_WINDOWS];
    uint32_t l[KL_WINDOWS], given[KL_WINDOWS];
    size_t n = 0, i;

    if (!limits) return fail(r, KL_REDIS_ERR_USAGE, "redis limiter: limits must not be NULL");
    given[KL_WINDOW_BURST] = limits->burst;
    given[KL_WINDOW_STEADY] = limits->steady;
    given[KL_WINDOW_DAILY] = limits->daily;
    for (i = 0; i < KL_WINDOWS; i++) {
        if (given[i] == 0) continue; /* no such window */
        w[n] = window_len[i];
        l[n++] = given[i];
    }
    return kl_redis_acquire_windows(r, key, w, l, n, wait);
}

int kl_redis_block_for(kl_redis *r, const char *key, kl_usec duration)
{
    char d[24];
    const char *args[2];
    long long out[3];
    if (duration < 0)
        return fail(r, KL_REDIS_ERR_USAGE, "redis limiter: block duration must not be negative");
    snprintf(d, sizeof d, "%lld", (long long)duration);
    args[0] = "block";
    args[1] = d;
    return run(r, key, 2, args, out) == 0 ? 0 : KL_LIMIT_ERROR;
}

int kl_redis_observe(kl_redis *r, const char *key, const kl_limits *limits, long remaining,
                     kl_usec reset, long *left)
{
    char nums[4][24];
    const char *args[5];
    long long out[3];
    if (left) *left = -1;
    if (!limits) return fail(r, KL_REDIS_ERR_USAGE, "redis limiter: limits must not be NULL");
    if (remaining < 0) remaining = 0; /* as limiter.c: nothing left */
    if (reset < 0) reset = 0;         /* a window already over teaches nothing */
    /* RateLimit-Remaining/Reset speak of the steady window */
    snprintf(nums[0], sizeof nums[0], "%lld", (long long)window_len[KL_WINDOW_STEADY]);
    snprintf(nums[1], sizeof nums[1], "%u", effective(limits->steady, r->priv->safety));
    snprintf(nums[2], sizeof nums[2], "%ld", remaining);
    snprintf(nums[3], sizeof nums[3], "%lld", (long long)reset);
    args[0] = "observe";
    args[1] = nums[0];
    args[2] = nums[1];
    args[3] = nums[2];
    args[4] = nums[3];
    if (run(r, key, 5, args, out) != 0) return KL_LIMIT_ERROR;
    if (left) *left = (long)out[1];
    return 0;
}
