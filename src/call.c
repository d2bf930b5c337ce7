/*
 * call.c - the life of one request, owned here and nowhere else: ask the limiter, build the
 * bytes, hand them to a driver, read the answer, tell the limiter what it said, and decide
 * "done", "repeat after a wait" or "fail".  Drivers only move bytes and wait: kl_send
 * (transport_curl.c, blocking libcurl), kl_batch (batch.c, libcurl's multi interface) and the
 * nginx cosocket transport through the binding (lua_call.c).
 *
 * A driver calls kl_call_begin, then kl_call_next until it says DONE or FAIL:
 *   KL_STEP_LIMIT  a limiter store the driver holds (nginx shared dict, Redis from nginx)
 *                  is asked for the key and limits of kl_call_limit_key; its answer goes back
 *                  through kl_call_limited.  The core's own stores (in-process, hiredis) are
 *                  asked here, inside kl_call_next.
 *   KL_STEP_WAIT   sleep *wait microseconds, then ask again.
 *   KL_STEP_SEND   send the built request (kl_build's bytes); the outcome goes back through
 *                  kl_call_received (a libcurl result, the answer read into the client) or
 *                  kl_call_answered (an answer another transport had kl_interpret read).
 *   KL_STEP_FEED   (driver-held store only) tell the store what the answer said: a 429
 *                  blocks the key for kl_call_feed's block seconds, RateLimit-Remaining and
 *                  -Reset cap it.
 *   KL_STEP_DONE / KL_STEP_FAIL   the call's kind (and c->err, kl_last_error) say how it
 *                  ended.
 * The client's limiter and retry settings (kl_policy) are shared by its calls; each call
 * (kl_call) is one request: a client holds one for kl_send and kl_build, a driver in Lua one
 * per request, so requests of one client may overlap there.
 * Rules: a wait (the limiter's, or a 429's Retry-After) longer than what is left of
 * retry_max_time fails the call at once with KL_ERR_THROTTLED; a failure that repeats the
 * same way (certificate, unsupported protocol) is not repeated; other failures are repeated
 * as retry.h says.
 */
#define _POSIX_C_SOURCE 199309L
#include "kl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { S_LIMIT, S_SEND, S_FEED, S_DONE, S_FAIL };

/* xorshift64*: the jitter only needs to differ between clients and processes */
static double rnd(kl_policy *g) {
    uint64_t x = g->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    g->rng = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static void seed(kl_policy *g) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    g->rng = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^
             (uint64_t)(uintptr_t)g;
    if (!g->rng) g->rng = 88172645463325252ULL;
}

/* The account part of limiter keys when the caller names none: FNV-1a 64 of the credential.
 * Keys of different processes using one key agree; the key itself never appears in Redis,
 * and 64 bits of a 128-bit random key do not give the key back. */
void kl_account_key(const char *s, char *out) {
    uint64_t h = 1469598103934665603ULL;
    if (!s) s = "";
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    snprintf(out, 18, "h%016llx", (unsigned long long)h);
}

int kl_call_setup(kl_client *c, const kl_options *o) {
    kl_policy *g = &c->priv->pol;
    kl_retry_policy *r = &g->retry;
    seed(g);
    kl_retry_policy_default(r);
    if (o->retry_attempts < 0 || o->retry_max_time < 0 || o->retry_base < 0 || o->retry_cap < 0 ||
        o->retry_max_time != o->retry_max_time || o->retry_base != o->retry_base || o->retry_cap != o->retry_cap)
        return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL, "retry settings must not be negative");
    if (o->retry_attempts) r->max_attempts = o->retry_attempts;
    if (o->retry_max_time > 0) r->max_elapsed = o->retry_max_time;
    if (o->retry_base > 0) r->base_delay = o->retry_base;
    if (o->retry_cap > 0) r->max_delay = o->retry_cap;
    if (o->account) {
        if (!*o->account || strlen(o->account) > 200)
            return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL, "account must be 1 to 200 bytes");
        g->account = kl_strdup(o->account);
    } else {
        char out[18];
        kl_account_key(o->api_key ? o->api_key : o->public_key ? o->public_key : o->access_token, out);
        g->account = kl_strdup(out);
    }
    if (!g->account) return kl_oom(c, NULL);
    if (!(o->limiter_safety == 0 || (o->limiter_safety > 0 && o->limiter_safety <= 1)))
        return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL, "limiter safety must be in (0, 1]");
    switch (o->limiter) {
    case KL_LIMITER_OFF: return KL_OK;
    case KL_LIMITER_LOCAL: {
        kl_limiter_options lo;
        lo.safety = o->limiter_safety;
        if (!(g->lim = kl_limiter_new(&lo))) return kl_oom(c, NULL);
        g->lim_owned = 1;
        return KL_OK;
    }
    case KL_LIMITER_REDIS: {
        kl_redis_options ro;
        memset(&ro, 0, sizeof ro);
        ro.url = o->limiter_url;
        ro.prefix = o->limiter_prefix;
        ro.safety = o->limiter_safety;
        ro.script = o->limiter_script;
        if (!(g->redis = kl_redis_new(&ro))) return kl_oom(c, NULL);
        g->lim_owned = 1;
        /* unreachable now is not fatal: every request asks again and refuses while it is */
        if (g->redis->err == KL_REDIS_ERR_USAGE || g->redis->err == KL_REDIS_ERR_OOM)
            return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL, "%s", g->redis->errstr);
        return KL_OK;
    }
    default:
        return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL, "limiter must be KL_LIMITER_LOCAL, _OFF or _REDIS");
    }
}

void kl_call_share(kl_client *to, const kl_client *from) {
    kl_policy *g = &to->priv->pol;
    const kl_policy *h = &from->priv->pol;
    g->lim = h->lim;
    g->redis = h->redis;
    g->lim_owned = 0;
    g->retry = h->retry;
}

void kl_call_free(kl_client *c) {
    kl_policy *g = &c->priv->pol;
    if (g->lim_owned) {
        kl_limiter_free(g->lim);
        kl_redis_free(g->redis);
    }
    g->lim = NULL;
    g->redis = NULL;
    free(g->account);
    g->account = NULL;
    kl_buf_free(&c->priv->call.lkey);
}

static int store(kl_client *c, kl_call *k, int core, const char *account);

int kl_call_begin(kl_client *c, kl_call *k, const kl_request *req, const char *account) {
    kl_client_priv *p = c->priv;
    kl_policy *g = &p->pol;
    int rc;
    memset(&k->info, 0, sizeof k->info);
    k->state = S_FAIL;
    if (!p->usable) return kl_fail(c, KL_ERR_REFUSED, "client_unusable", NULL, "client settings were refused");
    kl_error_clear(c);
    if ((rc = kl_build_request(c, req)) != KL_OK) return rc;
    if (req->limit_burst > KL_LIMIT_MAX || req->limit_steady > KL_LIMIT_MAX || req->limit_daily > KL_LIMIT_MAX)
        return kl_fail(c, KL_ERR_USAGE, "invalid_request", req->operation, "limits must be at most %u per window",
                       KL_LIMIT_MAX);
    if (req->retry_attempts < 0 || !(req->retry_max_time >= 0))
        return kl_fail(c, KL_ERR_USAGE, "invalid_request", req->operation, "retry settings must not be negative");
    if (req->safe < KL_SAFE_AUTO || req->safe > KL_SAFE_NO)
        return kl_fail(c, KL_ERR_USAGE, "invalid_request", req->operation, "safe must be KL_SAFE_AUTO, _YES or _NO");
    k->op = req->operation;
    k->limits.burst = (uint32_t)req->limit_burst;
    k->limits.steady = (uint32_t)req->limit_steady;
    k->limits.daily = (uint32_t)req->limit_daily;
    if (req->safe == KL_SAFE_AUTO) {
        const char *m = req->method ? req->method : "";
        k->safe = strcmp(m, "GET") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0 || strcmp(m, "DELETE") == 0;
    } else {
        k->safe = req->safe == KL_SAFE_YES;
    }
    k->cur = g->retry;
    if (req->retry_attempts) k->cur.max_attempts = req->retry_attempts;
    if (req->retry_max_time > 0) k->cur.max_elapsed = req->retry_max_time;
    k->start = kl_now();
    k->delay = 0;
    return account ? kl_call_store(c, k, account) : store(c, k, g->lim || g->redis, g->account);
}

/* Which store the call asks (core: the client's own, else none) and its key. */
static int store(kl_client *c, kl_call *k, int core, const char *account) {
    k->outside = 0;
    k->limited = core && (k->limits.burst || k->limits.steady || k->limits.daily);
    k->state = k->limited ? S_LIMIT : S_SEND;
    if (!k->limited) return KL_OK;
    kl_buf_reset(&k->lkey);
    if (kl_buf_adds(&k->lkey, account) || kl_buf_addc(&k->lkey, '/') ||
        kl_buf_adds(&k->lkey, k->op && *k->op ? k->op : "request"))
        return kl_oom(c, k->op);
    return KL_OK;
}

int kl_call_store(kl_client *c, kl_call *k, const char *account) {
    int rc = store(c, k, account != NULL, account);
    k->outside = account != NULL;
    return rc;
}

double kl_call_time_left(const kl_call *k) {
    return k->cur.max_elapsed - kl_usec_to_sec(kl_now() - k->start);
}

static int fail_with(kl_client *c, kl_call *k, int rc) {
    k->state = S_FAIL;
    k->kind = c->err;
    return rc;
}

/* A limiter's answer: go (wait 0) or a wait.  A wait (checked: finite, at most a day) that
 * would end after the time the call may last fails the call now with kind throttled and the
 * wait in retry_after, instead of sleeping past retry_max_time. */
static int limited(kl_client *c, kl_call *k, kl_usec *wait) {
    double w, left;
    if (*wait <= 0) {
        k->state = S_SEND;
        return KL_STEP_SEND;
    }
    w = kl_usec_to_sec(*wait);
    left = kl_call_time_left(k);
    if (w > left) {
        kl_fail(c, KL_ERR_THROTTLED, "throttled", k->op,
                "the rate limiter asks to wait %.0f s, longer than the %.0f s the call may still last "
                "(retry max_time); nothing sent",
                w, left > 0 ? left : 0);
        c->priv->rec.error.retry_after = w;
        return fail_with(c, k, KL_STEP_FAIL);
    }
    k->info.waited += w; /* the driver waits exactly this */
    return KL_STEP_WAIT;
}

/* A store's answer (the driver's, or the core's own that failed): a store that failed (why)
 * fails the call, and KL_STEP_FAIL is returned; else KL_OK, and kl_call_next goes on. */
int kl_call_limited(kl_client *c, kl_call *k, double wait, const char *why) {
    kl_usec us;
    if (why) {
        kl_fail(c, KL_ERR_REFUSED, "limiter_unavailable", k->op, "rate limiter: %s; nothing sent", why);
        return fail_with(c, k, KL_STEP_FAIL);
    }
    us = kl_usec_from_sec(wait);
    if (wait > 0 && us <= 0) us = 1;                       /* a wait always means a pause, however short */
    if (limited(c, k, &us) == KL_STEP_WAIT) k->delay = us; /* then the store is asked again */
    return KL_OK;
}

const char *kl_call_limit_key(const kl_call *k, kl_limits *limits) {
    if (limits) *limits = k->limits;
    return k->lkey.p;
}

int kl_call_next(kl_client *c, kl_call *k, kl_usec *wait) {
    kl_policy *g = &c->priv->pol;
    int rc;
    *wait = 0;
    if (k->state == S_FEED) {
        k->state = k->after;
        return KL_STEP_FEED;
    }
    if (k->delay > 0) { /* a wait decided before: the limiter's, or a backoff */
        *wait = k->delay;
        k->delay = 0;
        return KL_STEP_WAIT;
    }
    switch (k->state) {
    case S_LIMIT:
        k->answered = 0;
        if (k->outside) return KL_STEP_LIMIT;
        if (g->redis) {
            rc = kl_redis_acquire(g->redis, k->lkey.p, &k->limits, wait);
            if (rc == KL_LIMIT_ERROR) {
                kl_fail(c, KL_ERR_REFUSED, "limiter_unavailable", k->op, "%s", g->redis->errstr);
                return fail_with(c, k, KL_STEP_FAIL);
            }
        } else {
            rc = kl_limiter_acquire(g->lim, k->lkey.p, &k->limits, kl_now(), wait);
            if (rc == KL_LIMIT_ERROR) return kl_call_limited(c, k, 0, kl_limiter_errstr(g->lim));
        }
        if (rc == KL_LIMIT_GO) *wait = 0;
        else if (*wait <= 0) *wait = 1; /* WAIT always means a pause, however short */
        rc = limited(c, k, wait);
        if (rc != KL_STEP_WAIT) *wait = 0;
        if (rc == KL_STEP_SEND) kl_error_clear(c); /* a success after a retry carries no earlier error */
        return rc;
    case S_SEND:
        k->answered = 0;
        kl_error_clear(c);
        return KL_STEP_SEND;
    case S_DONE: return KL_STEP_DONE;
    default: return KL_STEP_FAIL;
    }
}

int kl_call_feed(const kl_call *k, double *block, long *remaining, long *reset) {
    *block = k->block;
    *remaining = k->remaining;
    *reset = k->reset;
    return *block > 0 || *remaining >= 0;
}

/* What the answer tells the limiter store: the core's own is told here, a driver's at the
 * FEED step (kl_call_feed).  Advisory: a Redis hiccup here costs
 * precision, not safety (the next acquire refuses if Redis is really gone). */
static void feedback(kl_client *c, kl_call *k) {
    kl_policy *g = &c->priv->pol;
    const kl_response *r = &c->priv->ans.res;
    kl_usec now = kl_now();
    /* a 429 blocks the key for its Retry-After (no hint: a short pause; 0 blocks nothing) */
    k->block = r->status != 429 ? -1 : r->retry_after > 0 ? r->retry_after : r->retry_after < 0 ? 1.0 : -1;
    k->remaining = k->reset = -1;
    if (r->has_ratelimit && r->rl_remaining >= 0 && r->rl_reset >= 0) {
        k->remaining = r->rl_remaining;
        k->reset = r->rl_reset;
    }
    if (r->status == 429) k->info.throttled++;
    if (!k->limited || !(k->block > 0 || k->remaining >= 0)) return;
    if (k->outside) {
        k->after = k->state;
        k->state = S_FEED;
        return;
    }
    if (k->block > 0) {
        if (g->redis) kl_redis_block_for(g->redis, k->lkey.p, kl_usec_from_sec(k->block));
        else kl_limiter_block_until(g->lim, k->lkey.p, now + kl_usec_from_sec(k->block));
    }
    if (k->remaining >= 0) {
        kl_usec us = (kl_usec)k->reset * KL_USEC_PER_SEC;
        if (g->redis) kl_redis_observe(g->redis, k->lkey.p, &k->limits, k->remaining, us, NULL);
        else kl_limiter_observe(g->lim, k->lkey.p, &k->limits, k->remaining, us, now);
    }
}

/* Whether the attempt that ended with rc is repeated: 1 with k->delay set, or 0 (c->err is
 * the final kind: a 429 whose wait outlasts the call becomes KL_ERR_THROTTLED). */
static int again(kl_client *c, kl_call *k, int rc) {
    kl_client_priv *p = c->priv;
    kl_retry_input in;
    kl_retry_decision d;
    if (rc != KL_ERR_HTTP && rc != KL_ERR_TRANSPORT) return 0;
    /* a certificate that cannot be verified, or a protocol libcurl lacks, fails the same way
     * next time: nothing was sent, but repeating it only delays the error */
    if (rc == KL_ERR_TRANSPORT && p->rec.error.code &&
        (strcmp(p->rec.error.code, "tls_failed") == 0 || strcmp(p->rec.error.code, "unsupported_protocol") == 0)) {
        k->info.stopped = "failure is not transient";
        return 0;
    }
    memset(&in, 0, sizeof in);
    in.safe = k->safe;
    if (rc == KL_ERR_HTTP) {
        in.status = p->rec.error.status ? p->rec.error.status : p->ans.res.status;
        in.failure = KL_FAIL_NONE;
    } else {
        in.failure = p->rec.error.sent ? KL_FAIL_MAYBE_SENT : KL_FAIL_NOT_SENT;
    }
    in.attempt = k->info.attempts;
    in.elapsed = kl_usec_to_sec(kl_now() - k->start);
    in.retry_after = p->rec.error.retry_after;
    in.random = rnd(&p->pol);
    if (kl_retry_decide(&k->cur, &in, &d) != KL_RETRY_AGAIN) {
        k->info.stopped = d.reason;
        if (in.status == 429 && in.retry_after > k->cur.max_elapsed - in.elapsed) {
            /* the server's wait outlasts the call: throttled, with its status and text */
            c->err = KL_ERR_THROTTLED;
            p->rec.error.kind = KL_ERR_THROTTLED;
        }
        return 0;
    }
    k->info.retries++;
    k->info.backoff += d.delay;
    k->delay = kl_usec_from_sec(d.delay);
    return 1;
}

void kl_call_answered(kl_client *c, kl_call *k, int rc) {
    k->info.attempts++;
    k->answered = 1;
    k->state = again(c, k, rc) ? (k->limited ? S_LIMIT : S_SEND) : rc == KL_OK ? S_DONE : S_FAIL;
    k->kind = c->err;
    if (rc == KL_OK || rc == KL_ERR_HTTP) feedback(c, k);
}

void kl_call_received(kl_client *c, kl_call *k, int rc) {
    if (rc == KL_OK) rc = kl_interpret_stored(c, k->op);
    kl_call_answered(c, k, rc);
}

void kl_call_copy(kl_call *to, const kl_call *from) {
    kl_buf keep = to->lkey;
    *to = *from;
    to->lkey = keep; /* kl_call_store makes its own key */
}

void kl_call_release(kl_call *k) {
    kl_buf_free(&k->lkey);
}

/* The observer sees the request as built, its Authorization value replaced: the key and the
 * token are in no field (the URL carries only the public key, which is not a secret). */
void kl_call_observe(kl_client *c, kl_call *k, int phase) {
    kl_client_priv *p = c->priv;
    kl_header hs[KL_MAX_BUILT_HEADERS];
    kl_attempt a;
    size_t i;
    kl_usec now = kl_now();
    if (phase == KL_ATTEMPT_REQUEST) k->sent_at = now;
    if (!p->observer) return;
    memset(&a, 0, sizeof a);
    for (i = 0; i < p->req.n_bh; i++) {
        hs[i] = p->req.bh[i];
        if (strcmp(hs[i].name, "Authorization") == 0) hs[i].value = (char *)"[redacted]";
    }
    a.phase = phase;
    a.operation = k->op;
    a.method = p->req.built.method;
    a.url = p->req.built.url;
    a.headers = hs;
    a.n_headers = p->req.n_bh;
    a.waited = k->info.waited + k->info.backoff;
    if (phase == KL_ATTEMPT_REQUEST) {
        a.attempt = k->info.attempts + 1;
    } else {
        a.attempt = k->info.attempts; /* kl_call_received counted it */
        a.duration = kl_usec_to_sec(now - k->sent_at);
        a.status = p->ans.res.status;
        if (c->err != KL_OK) a.code = p->rec.error.code;
        if (k->delay > 0) a.waited -= kl_usec_to_sec(k->delay); /* the backoff ahead is not waited yet */
    }
    p->observer(p->observer_ud, &a);
}

const kl_send_info *kl_last_info(const kl_client *c) {
    return &c->priv->call.info;
}
