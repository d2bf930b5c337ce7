/*
 * sendloop.c - the steps around one request that keep a client inside Klaviyo's rate limits
 * and repeat what failed when that is safe: ask the limiter (in-process or Redis) before each
 * attempt, tell it what the answer said (429 Retry-After, RateLimit-Remaining/Reset), and ask
 * the retry policy (retry.h) whether and when to try again.  A wait (the limiter's, or a
 * 429's Retry-After) longer than what is left of retry_max_time fails the call at once with
 * KL_ERR_THROTTLED instead of sleeping past it.  kl_send runs these steps with
 * blocking sleeps; kl_batch (batch.c) runs them for many requests over libcurl's multi
 * interface.  The policies themselves live in limiter.c, limiter_redis.c and retry.c.
 */
#define _POSIX_C_SOURCE 199309L
#include "kl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

kl_usec kl_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (kl_usec)ts.tv_sec * KL_USEC_PER_SEC + ts.tv_nsec / 1000;
}

void kl_sleep_us(kl_usec us) {
    struct timespec ts, rem;
    if (us <= 0) return;
    ts.tv_sec = (time_t)(us / KL_USEC_PER_SEC);
    ts.tv_nsec = (long)(us % KL_USEC_PER_SEC) * 1000;
    while (nanosleep(&ts, &rem) != 0) ts = rem; /* a signal cut it short: sleep the rest */
}

/* xorshift64*: the jitter only needs to differ between clients and processes */
static double rnd(kl_client_priv *p) {
    uint64_t x = p->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return (double)((x * 2685821657736338717ULL) >> 11) / 9007199254740992.0; /* [0, 1) */
}

static void seed(kl_client_priv *p) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    p->rng = ((uint64_t)ts.tv_sec * 1000000007ULL) ^ (uint64_t)ts.tv_nsec ^
             ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)p;
    if (!p->rng) p->rng = 88172645463325252ULL;
}

/* The account part of limiter keys when the caller names none: FNV-1a 64 of the credential.
 * Keys of different processes using one key agree; the key itself never appears in Redis,
 * and 64 bits of a 128-bit random key do not give the key back. */
void kl_account_key(const char *s, char *out) {
    uint64_t h = 1469598103934665603ULL;
    if (!s) s = "";
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ULL; }
    snprintf(out, 18, "h%016llx", (unsigned long long)h);
}

static char *account_of(const kl_options *o) {
    char out[18];
    kl_account_key(o->api_key ? o->api_key : o->public_key ? o->public_key : o->access_token, out);
    return kl_strdup(out);
}

int kl_loop_setup(kl_client *c, const kl_options *o) {
    kl_client_priv *p = c->priv;
    kl_retry_policy *r = &p->retry;
    seed(p);
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
        p->account = kl_strdup(o->account);
    } else {
        p->account = account_of(o);
    }
    if (!p->account) return kl_fail(c, KL_ERR_OOM, "out_of_memory", NULL, "out of memory");
    if (!(o->limiter_safety == 0 || (o->limiter_safety > 0 && o->limiter_safety <= 1)))
        return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL, "limiter safety must be in (0, 1]");
    switch (o->limiter) {
    case KL_LIMITER_OFF:
        return KL_OK;
    case KL_LIMITER_LOCAL: {
        kl_limiter_options lo;
        lo.safety = o->limiter_safety;
        if (!(p->lim = kl_limiter_new(&lo))) return kl_fail(c, KL_ERR_OOM, "out_of_memory", NULL, "out of memory");
        p->lim_owned = 1;
        return KL_OK;
    }
    case KL_LIMITER_REDIS: {
        kl_redis_options ro;
        memset(&ro, 0, sizeof ro);
        ro.url = o->limiter_url;
        ro.prefix = o->limiter_prefix;
        ro.safety = o->limiter_safety;
        ro.script = o->limiter_script;
        if (!(p->redis = kl_redis_new(&ro))) return kl_fail(c, KL_ERR_OOM, "out_of_memory", NULL, "out of memory");
        p->lim_owned = 1;
        /* unreachable now is not fatal: every request asks again and refuses while it is */
        if (p->redis->err == KL_REDIS_ERR_USAGE || p->redis->err == KL_REDIS_ERR_OOM)
            return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL, "%s", p->redis->errstr);
        return KL_OK;
    }
    default:
        return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL, "limiter must be KL_LIMITER_LOCAL, _OFF or _REDIS");
    }
}

void kl_loop_free(kl_client *c) {
    kl_client_priv *p = c->priv;
    if (p->lim_owned) {
        kl_limiter_free(p->lim);
        kl_redis_free(p->redis);
    }
    p->lim = NULL;
    p->redis = NULL;
    free(p->account);
    p->account = NULL;
    kl_buf_free(&p->lkey);
}

int kl_loop_begin(kl_client *c, const kl_request *req) {
    kl_client_priv *p = c->priv;
    const char *op = req->operation && *req->operation ? req->operation : "request";
    memset(&p->info, 0, sizeof p->info);
    if (req->limit_burst > KL_LIMIT_MAX || req->limit_steady > KL_LIMIT_MAX || req->limit_daily > KL_LIMIT_MAX)
        return kl_fail(c, KL_ERR_USAGE, "invalid_request", req->operation, "limits must be at most %u per window",
                       KL_LIMIT_MAX);
    if (req->retry_attempts < 0 || !(req->retry_max_time >= 0))
        return kl_fail(c, KL_ERR_USAGE, "invalid_request", req->operation, "retry settings must not be negative");
    if (req->safe < KL_SAFE_AUTO || req->safe > KL_SAFE_NO)
        return kl_fail(c, KL_ERR_USAGE, "invalid_request", req->operation, "safe must be KL_SAFE_AUTO, _YES or _NO");
    p->cur_limits.burst = (uint32_t)req->limit_burst;
    p->cur_limits.steady = (uint32_t)req->limit_steady;
    p->cur_limits.daily = (uint32_t)req->limit_daily;
    p->cur_limited = (p->lim || p->redis) && (req->limit_burst || req->limit_steady || req->limit_daily);
    if (req->safe == KL_SAFE_AUTO) {
        const char *m = req->method ? req->method : "";
        p->cur_safe = strcmp(m, "GET") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0 ||
                      strcmp(m, "DELETE") == 0;
    } else {
        p->cur_safe = req->safe == KL_SAFE_YES;
    }
    p->cur_retry = p->retry;
    if (req->retry_attempts) p->cur_retry.max_attempts = req->retry_attempts;
    if (req->retry_max_time > 0) p->cur_retry.max_elapsed = req->retry_max_time;
    p->cur_start = kl_now();
    if (p->cur_limited) {
        kl_buf_reset(&p->lkey);
        if (kl_buf_adds(&p->lkey, p->account) || kl_buf_addc(&p->lkey, '/') || kl_buf_adds(&p->lkey, op))
            return kl_fail(c, KL_ERR_OOM, "out_of_memory", req->operation, "out of memory");
    }
    return KL_OK;
}

double kl_loop_time_left(const kl_client *c) {
    const kl_client_priv *p = c->priv;
    return p->cur_retry.max_elapsed - kl_usec_to_sec(kl_now() - p->cur_start);
}

/* A wait of `wait` seconds (checked: finite, at most a day) would end after the time the
 * call may last: the call fails now with kind throttled and the wait in retry_after, instead
 * of sleeping past retry_max_time. */
static int throttled(kl_client *c, const char *op, double wait, double left) {
    kl_fail(c, KL_ERR_THROTTLED, "throttled", op,
            "the rate limiter asks to wait %.0f s, longer than the %.0f s the call may still last "
            "(retry max_time); nothing sent", wait, left > 0 ? left : 0);
    c->priv->error.retry_after = wait;
    return KL_ERR_THROTTLED;
}

int kl_loop_acquire(kl_client *c, const char *op, kl_usec *wait) {
    kl_client_priv *p = c->priv;
    int rc;
    *wait = 0;
    if (!p->cur_limited) return KL_OK;
    if (p->redis) {
        rc = kl_redis_acquire(p->redis, p->lkey.p, &p->cur_limits, wait);
        if (rc == KL_LIMIT_ERROR)
            return kl_fail(c, KL_ERR_REFUSED, "limiter_unavailable", op, "%s", p->redis->errstr);
    } else {
        rc = kl_limiter_acquire(p->lim, p->lkey.p, &p->cur_limits, kl_now(), wait);
        if (rc == KL_LIMIT_ERROR)
            return kl_fail(c, KL_ERR_REFUSED, "limiter_failed", op, "rate limiter: %s; nothing sent",
                           kl_limiter_errstr(p->lim));
    }
    if (rc == KL_LIMIT_GO) {
        *wait = 0;
    } else {
        double w, left = kl_loop_time_left(c);
        if (*wait <= 0) *wait = 1; /* WAIT always means a pause, however short */
        w = kl_usec_to_sec(*wait);
        if (w > left) {
            *wait = 0;
            return throttled(c, op, w, left);
        }
    }
    p->info.waited += kl_usec_to_sec(*wait); /* the caller waits exactly this */
    return KL_OK;
}

/* What the answer tells the limiter.  Advisory: a Redis hiccup here costs precision, not
 * safety (the next acquire refuses if Redis is really gone). */
static void feedback(kl_client *c) {
    kl_client_priv *p = c->priv;
    const kl_response *r = &p->res;
    kl_usec now = kl_now();
    if (r->status == 429) {
        double ra = r->retry_after >= 0 ? r->retry_after : 1.0; /* no hint: a short pause */
        p->info.throttled++;
        if (p->cur_limited) {
            if (p->redis) kl_redis_block_for(p->redis, p->lkey.p, kl_usec_from_sec(ra));
            else kl_limiter_block_until(p->lim, p->lkey.p, now + kl_usec_from_sec(ra));
        }
    }
    if (p->cur_limited && r->has_ratelimit && r->rl_remaining >= 0 && r->rl_reset >= 0) {
        kl_usec reset = (kl_usec)r->rl_reset * KL_USEC_PER_SEC;
        if (p->redis) kl_redis_observe(p->redis, p->lkey.p, &p->cur_limits, r->rl_remaining, reset, NULL);
        else kl_limiter_observe(p->lim, p->lkey.p, &p->cur_limits, r->rl_remaining, reset, now);
    }
}

int kl_loop_after(kl_client *c, int rc, kl_usec *delay) {
    kl_client_priv *p = c->priv;
    kl_retry_input in;
    kl_retry_decision d;
    int res;
    *delay = 0;
    p->info.attempts++;
    if (rc == KL_OK || rc == KL_ERR_HTTP) feedback(c);
    if (rc != KL_ERR_HTTP && rc != KL_ERR_TRANSPORT) return 0;
    /* a certificate that cannot be verified, or a protocol libcurl lacks, fails the same way
     * next time: nothing was sent, but repeating it only delays the error */
    if (rc == KL_ERR_TRANSPORT && p->error.code &&
        (strcmp(p->error.code, "tls_failed") == 0 || strcmp(p->error.code, "unsupported_protocol") == 0)) {
        p->info.stopped = "failure is not transient";
        return 0;
    }
    memset(&in, 0, sizeof in);
    in.safe = p->cur_safe;
    if (rc == KL_ERR_HTTP) {
        in.status = p->error.status ? p->error.status : p->res.status;
        in.failure = KL_FAIL_NONE;
    } else {
        in.status = 0;
        in.failure = p->error.sent ? KL_FAIL_MAYBE_SENT : KL_FAIL_NOT_SENT;
    }
    in.attempt = p->info.attempts;
    in.elapsed = kl_usec_to_sec(kl_now() - p->cur_start);
    in.retry_after = p->error.retry_after;
    in.random = rnd(p);
    res = kl_retry_decide(&p->cur_retry, &in, &d);
    if (res != KL_RETRY_AGAIN) {
        p->info.stopped = d.reason;
        if (in.status == 429 && in.retry_after > p->cur_retry.max_elapsed - in.elapsed) {
            /* the server's wait outlasts the call: throttled, with its status and text */
            c->err = KL_ERR_THROTTLED;
            p->error.kind = KL_ERR_THROTTLED;
        }
        return 0;
    }
    p->info.retries++;
    p->info.backoff += d.delay;
    *delay = kl_usec_from_sec(d.delay);
    return 1;
}
