/*
 * limiter.c: sliding-log rate limiter (see limiter.h for the guarantee and the API).
 *
 * Per key: one ring buffer per window holding the last N send times in order (N = the
 * window's effective limit), a Retry-After block, an optional limits override, and per
 * window an observed cap from the server's RateLimit-* headers. Keys live in a chained
 * hash table that doubles when it fills, so lookups are O(1) amortized.
 */
#include "limiter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


typedef struct {
    kl_usec *ring;  /* send times, oldest at ring[head], never decreasing */
    uint32_t lim;   /* effective limit now; 0: the window does not apply */
    uint32_t cap;   /* ring size: the largest limit used so far, so that lowering
                            and raising a limit again never forgets a recent send */
    uint32_t count; /* entries held (<= cap) */
    uint32_t head;
    kl_usec obs_until; /* observed cap: at most obs_left sends before obs_until */
    long obs_left;
} window;

typedef struct entry {
    struct entry *next;
    uint32_t hash;
    kl_usec last;          /* latest `now` seen: time never goes backwards per key */
    kl_usec blocked_until; /* Retry-After */
    int has_override;
    kl_limits override;
    window w[KL_WINDOWS];
    size_t keylen;
    char key[1]; /* NUL-terminated copy, allocated to keylen + 1 */
} entry;

struct kl_limiter {
    double safety;
    entry **buckets;
    size_t nbuckets; /* power of two */
    size_t nkeys;
    char errstr[160];
};

kl_usec kl_usec_from_sec(double seconds) {
    /* rounded by hand: no libm needed by C users linking libklaviyo.a; NaN and values past
     * the range (some 292,000 years) saturate instead of being undefined */
    double v = seconds * 1e6;
    if (!(v == v)) return 0;
    if (v >= 9.2e18) return INT64_MAX;
    if (v <= -9.2e18) return -INT64_MAX;
    return (kl_usec)(v < 0 ? v - 0.5 : v + 0.5);
}

double kl_usec_to_sec(kl_usec us) {
    return (double)us / 1e6;
}

static int set_error(kl_limiter *lim, const char *msg) {
    snprintf(lim->errstr, sizeof lim->errstr, "%s", msg);
    return KL_LIMIT_ERROR;
}

kl_limiter *kl_limiter_new(const kl_limiter_options *opts) {
    kl_limiter *lim;
    double safety = (opts && opts->safety != 0) ? opts->safety : 1.0;
    if (!(safety > 0 && safety <= 1)) return NULL;
    lim = (kl_limiter *)calloc(1, sizeof *lim);
    if (!lim) return NULL;
    lim->nbuckets = 64;
    lim->buckets = (entry **)calloc(lim->nbuckets, sizeof *lim->buckets);
    if (!lim->buckets) {
        free(lim);
        return NULL;
    }
    lim->safety = safety;
    return lim;
}

void kl_limiter_free(kl_limiter *lim) {
    size_t i;
    if (!lim) return;
    for (i = 0; i < lim->nbuckets; i++) {
        entry *e = lim->buckets[i];
        while (e) {
            entry *next = e->next;
            int k;
            for (k = 0; k < KL_WINDOWS; k++) free(e->w[k].ring);
            free(e);
            e = next;
        }
    }
    free(lim->buckets);
    free(lim);
}

const char *kl_limiter_errstr(const kl_limiter *lim) {
    return lim->errstr;
}

size_t kl_limiter_keys(const kl_limiter *lim) {
    return lim->nkeys;
}

/* ---- keys ---- */

static uint32_t hash_key(const char *s, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    size_t i;
    for (i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

static void rehash(kl_limiter *lim) {
    size_t n = lim->nbuckets * 2, i;
    entry **b = (entry **)calloc(n, sizeof *b);
    if (!b) return; /* keep the old table: longer chains, still correct */
    for (i = 0; i < lim->nbuckets; i++) {
        entry *e = lim->buckets[i];
        while (e) {
            entry *next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
            e = next;
        }
    }
    free(lim->buckets);
    lim->buckets = b;
    lim->nbuckets = n;
}

/* Finds or creates the entry for key; NULL (with errstr set) on bad key or no memory. */
static entry *get_entry(kl_limiter *lim, const char *key) {
    size_t n;
    uint32_t h;
    entry *e;
    if (!key) {
        set_error(lim, "limiter key is NULL");
        return NULL;
    }
    n = strlen(key);
    h = hash_key(key, n);
    for (e = lim->buckets[h & (lim->nbuckets - 1)]; e; e = e->next)
        if (e->hash == h && e->keylen == n && memcmp(e->key, key, n) == 0) return e;
    e = (entry *)calloc(1, sizeof *e + n);
    if (!e) {
        set_error(lim, "limiter: out of memory");
        return NULL;
    }
    e->hash = h;
    e->keylen = n;
    memcpy(e->key, key, n + 1);
    e->next = lim->buckets[h & (lim->nbuckets - 1)];
    lim->buckets[h & (lim->nbuckets - 1)] = e;
    if (++lim->nkeys > lim->nbuckets) rehash(lim);
    return e;
}

/* ---- windows ---- */

static int check_limits(kl_limiter *lim, const kl_limits *l) {
    if (l && (l->burst > KL_LIMIT_MAX || l->steady > KL_LIMIT_MAX || l->daily > KL_LIMIT_MAX)) {
        snprintf(lim->errstr, sizeof lim->errstr, "rate limit above %u per window", KL_LIMIT_MAX);
        return -1;
    }
    return 0;
}

static kl_usec at(const window *w, uint32_t i) /* i-th oldest entry */
{
    uint32_t j = w->head + i;
    if (j >= w->cap) j -= w->cap;
    return w->ring[j];
}

/* Sets window w's limit, growing its ring (in order) when needed; -1 on out of memory. */
static int set_limit(window *w, uint32_t lim) {
    kl_usec *ring;
    uint32_t i;
    if (lim > w->cap) {
        ring = (kl_usec *)malloc(sizeof *ring * lim);
        if (!ring) return -1;
        for (i = 0; i < w->count; i++) ring[i] = at(w, i);
        free(w->ring);
        w->ring = ring;
        w->cap = lim;
        w->head = 0;
    }
    w->lim = lim;
    return 0;
}

/* Sizes every window of e for the limits in force; returns those limits, or NULL. */
static const kl_limits *prepare(kl_limiter *lim, entry *e, const kl_limits *given) {
    static const kl_limits none = {0, 0, 0};
    const kl_limits *l = e->has_override ? &e->override : (given ? given : &none);
    uint32_t want[KL_WINDOWS];
    int k;
    if (check_limits(lim, l) < 0) return NULL;
    want[0] = kl_effective_limit(l->burst, lim->safety);
    want[1] = kl_effective_limit(l->steady, lim->safety);
    want[2] = kl_effective_limit(l->daily, lim->safety);
    for (k = 0; k < KL_WINDOWS; k++) {
        if (set_limit(&e->w[k], want[k]) < 0) {
            set_error(lim, "limiter: out of memory");
            return NULL;
        }
    }
    return l;
}

/* Sends in (now - len, now]: binary search over the ordered log. */
static uint32_t in_window(const window *w, kl_usec len, kl_usec now) {
    uint32_t lo = 0, hi = w->count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (at(w, mid) > now - len) hi = mid;
        else lo = mid + 1;
    }
    return w->count - lo;
}

/* Time from now until this window allows one more send (0: allowed now). */
static kl_usec window_wait(const window *w, kl_usec len, kl_usec now) {
    kl_usec wait = 0;
    if (w->lim > 0 && w->count >= w->lim) {
        /* The lim-th most recent send must be at least one window length old. */
        kl_usec ready = at(w, w->count - w->lim) + len;
        if (ready > now) wait = ready - now;
    }
    if (w->obs_until > now && w->obs_left <= 0 && w->obs_until - now > wait) wait = w->obs_until - now;
    return wait;
}

static void record(window *w, kl_usec now) {
    if (w->obs_until > now) w->obs_left--;
    if (w->cap == 0) return;
    if (w->count < w->cap) {
        uint32_t j = w->head + w->count;
        if (j >= w->cap) j -= w->cap;
        w->ring[j] = now;
        w->count++;
    } else {
        w->ring[w->head] = now;
        if (++w->head == w->cap) w->head = 0;
    }
}

static int decide(kl_limiter *lim, const char *key, const kl_limits *limits, kl_usec now, kl_usec *wait, int commit) {
    entry *e = get_entry(lim, key);
    kl_usec longest = 0;
    int k;
    if (!e) return KL_LIMIT_ERROR;
    if (!prepare(lim, e, limits)) return KL_LIMIT_ERROR;
    if (now < e->last) now = e->last;
    e->last = now;
    if (e->blocked_until > now) longest = e->blocked_until - now;
    for (k = 0; k < KL_WINDOWS; k++) {
        kl_usec w = window_wait(&e->w[k], kl_window_len(k), now);
        if (w > longest) longest = w;
    }
    if (wait) *wait = longest;
    if (longest > 0) return KL_LIMIT_WAIT;
    if (commit)
        for (k = 0; k < KL_WINDOWS; k++) record(&e->w[k], now);
    return KL_LIMIT_GO;
}

int kl_limiter_acquire(kl_limiter *lim, const char *key, const kl_limits *limits, kl_usec now, kl_usec *wait) {
    return decide(lim, key, limits, now, wait, 1);
}

int kl_limiter_peek(kl_limiter *lim, const char *key, const kl_limits *limits, kl_usec now, kl_usec *wait) {
    return decide(lim, key, limits, now, wait, 0);
}

int kl_limiter_block_until(kl_limiter *lim, const char *key, kl_usec until) {
    entry *e = get_entry(lim, key);
    if (!e) return KL_LIMIT_ERROR;
    if (until > e->blocked_until) e->blocked_until = until;
    return 0;
}

int kl_limiter_override(kl_limiter *lim, const char *key, const kl_limits *limits) {
    entry *e;
    if (check_limits(lim, limits) < 0) return KL_LIMIT_ERROR;
    if (!(e = get_entry(lim, key))) return KL_LIMIT_ERROR;
    if (limits) {
        e->override = *limits;
        e->has_override = 1;
    } else {
        e->has_override = 0;
    }
    return 0;
}

static long belief(const window *w, kl_usec len, kl_usec now) {
    long left = -1;
    if (w->lim > 0) {
        left = (long)w->lim - (long)in_window(w, len, now);
        if (left < 0) left = 0; /* the limit was lowered below recent traffic */
    }
    if (w->obs_until > now) {
        long o = w->obs_left < 0 ? 0 : w->obs_left;
        if (left < 0 || o < left) left = o;
    }
    return left;
}

int kl_limiter_remaining(kl_limiter *lim, const char *key, const kl_limits *limits, int window_id, kl_usec now,
                         long *left) {
    entry *e;
    if (window_id < 0 || window_id >= KL_WINDOWS) return set_error(lim, "no such window");
    if (!left) return set_error(lim, "limiter: NULL result pointer");
    if (!(e = get_entry(lim, key)) || !prepare(lim, e, limits)) return KL_LIMIT_ERROR;
    if (now < e->last) now = e->last;
    *left = belief(&e->w[window_id], kl_window_len(window_id), now);
    return 0;
}

int kl_limiter_observe(kl_limiter *lim, const char *key, const kl_limits *limits, long remaining, kl_usec reset,
                       kl_usec now) {
    entry *e;
    window *w;
    long left;
    if (!(e = get_entry(lim, key)) || !prepare(lim, e, limits)) return KL_LIMIT_ERROR;
    if (now < e->last) now = e->last;
    if (remaining < 0) remaining = 0;
    if (reset <= 0) return 0; /* the server window is over: nothing left to lower */
    w = &e->w[KL_WINDOW_STEADY];
    left = belief(w, kl_window_len(KL_WINDOW_STEADY), now);
    if (left >= 0 && remaining >= left) return 0; /* we already know at least as much */
    w->obs_until = now + reset;
    w->obs_left = remaining;
    return 0;
}
