/*
 * test_limiter.c: the limiter under a fake clock (no network, no sleeping).
 *
 * For every distinct rate-limit tier of the operation table (read from
 * lua/klaviyo/operations.lua, so a new tier is tested automatically) it checks exactly
 * that no half-open interval of any window's length ever holds more sends than the limit,
 * that server-style fixed windows at random phases never see more than the limit, and
 * that a greedy sender reaches the full limit. Then Retry-After blocking, observe(),
 * overrides, the safety factor, limit changes, errors and many keys.
 *
 * Usage: test_limiter [path/to/operations.lua]; last line "N passed, N failed".
 */
#include "../../src/limiter.h"
#include "ctest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Allocation failure injection: the test is linked with -Wl,--wrap=malloc,--wrap=calloc,
 * so the limiter's allocations come here; fail_after = n lets n succeed, then all fail. */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
static long fail_after = -1;
void *__wrap_malloc(size_t n) {
    if (fail_after == 0) return NULL;
    if (fail_after > 0) fail_after--;
    return __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size) {
    if (fail_after == 0) return NULL;
    if (fail_after > 0) fail_after--;
    return __real_calloc(n, size);
}

#define SEC KL_USEC_PER_SEC
static const kl_usec LEN[KL_WINDOWS] = {1 * SEC, 60 * SEC, 86400 * SEC};

/* Deterministic PRNG (xorshift64*) so a failure reproduces. */
static unsigned long long rng_state = 0x9E3779B97F4A7C15ULL;
static unsigned long long rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ULL;
}
static kl_usec rnd_below(kl_usec n) {
    return n > 0 ? (kl_usec)(rnd() % (unsigned long long)n) : 0;
}

static uint32_t lim_of(const kl_limits *l, int k) {
    return k == 0 ? l->burst : k == 1 ? l->steady : l->daily;
}

static uint32_t eff(uint32_t limit, double safety) {
    uint32_t v;
    if (limit == 0) return 0;
    v = (uint32_t)((double)limit * safety + 1e-9);
    return v < 1 ? 1 : v;
}

/* ---- send logs and the exact checks ---- */

typedef struct {
    kl_usec *t;
    size_t n, cap;
} sendlog;

static void log_add(sendlog *s, kl_usec t) {
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->t = (kl_usec *)realloc(s->t, s->cap * sizeof *s->t);
        if (!s->t) {
            printf("out of memory\n");
            exit(2);
        }
    }
    s->t[s->n++] = t;
}

/* Every half-open interval [a, a + len) holds at most max sends <=> for every i,
 * t[i + max] - t[i] >= len (the log is in time order). Returns the worst offender. */
static size_t max_in_any_interval(const sendlog *s, kl_usec len) {
    size_t i, j = 0, best = 0;
    for (i = 0; i < s->n; i++) {
        while (s->t[i] - s->t[j] >= len) j++;
        if (i - j + 1 > best) best = i - j + 1;
    }
    return best;
}

/* The server's view: fixed windows [phase + k*len, phase + (k+1)*len). */
static size_t max_in_fixed_windows(const sendlog *s, kl_usec len, kl_usec phase) {
    size_t i, best = 0, cur = 0;
    long long win = 0;
    for (i = 0; i < s->n; i++) {
        long long w = (long long)((s->t[i] - phase + 1000 * len) / len);
        if (i == 0 || w != win) {
            win = w;
            cur = 0;
        }
        if (++cur > best) best = cur;
    }
    return best;
}

static int sorted(const sendlog *s) {
    size_t i;
    for (i = 1; i < s->n; i++)
        if (s->t[i] < s->t[i - 1]) return 0;
    return 1;
}

/* ---- drivers ---- */

/* One sender that always asks again exactly when told: the fastest legal schedule. */
static void run_greedy(kl_limiter *lim, const char *key, const kl_limits *l, kl_usec until, sendlog *out) {
    kl_usec now = 0, wait;
    while (now < until) {
        int rc = kl_limiter_acquire(lim, key, l, now, &wait);
        if (rc == KL_LIMIT_GO) log_add(out, now);
        else if (rc == KL_LIMIT_WAIT) now += wait;
        else {
            printf("limiter error: %s\n", kl_limiter_errstr(lim));
            exit(2);
        }
    }
}

/* Several workers sharing a key, each asking at random moments (bursts, pauses, exact
 * waits, and waits that overshoot), interleaved on one clock. */
static void run_random(kl_limiter *lim, const char *key, const kl_limits *l, kl_usec until, kl_usec think,
                       sendlog *out) {
    enum { W = 8 };
    kl_usec next[W];
    int i;
    for (i = 0; i < W; i++) next[i] = rnd_below(think);
    for (;;) {
        int who = 0, rc;
        kl_usec wait, now;
        for (i = 1; i < W; i++)
            if (next[i] < next[who]) who = i;
        now = next[who];
        if (now >= until) break;
        rc = kl_limiter_acquire(lim, key, l, now, &wait);
        if (rc == KL_LIMIT_GO) {
            log_add(out, now);
            /* a quarter of the time ask again at once, else think a while */
            next[who] = now + ((rnd() & 3) == 0 ? 0 : rnd_below(think));
        } else if (rc == KL_LIMIT_WAIT) {
            next[who] = now + wait + ((rnd() & 1) ? 0 : rnd_below(think / 4 + 1));
        } else {
            printf("limiter error: %s\n", kl_limiter_errstr(lim));
            exit(2);
        }
    }
}

/* ---- tiers from the operation table ---- */

#define MAX_TIERS 64
static kl_limits tiers[MAX_TIERS];
static int ntiers;

static int read_tiers(const char *path) {
    FILE *f = fopen(path, "rb");
    char *src, *p;
    long size;
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    size = ftell(f);
    fseek(f, 0, SEEK_SET);
    src = (char *)malloc((size_t)size + 1);
    if (!src || fread(src, 1, (size_t)size, f) != (size_t)size) {
        fclose(f);
        free(src);
        return -1;
    }
    src[size] = '\0';
    fclose(f);
    for (p = strstr(src, "limits = {"); p; p = strstr(p + 1, "limits = {")) {
        kl_limits l = {0, 0, 0};
        char *end = strchr(p, '}'), *q;
        int i, dup = 0;
        if (!end) break;
        *end = '\0';
        if ((q = strstr(p, "burst = "))) l.burst = (uint32_t)strtoul(q + 8, NULL, 10);
        if ((q = strstr(p, "steady = "))) l.steady = (uint32_t)strtoul(q + 9, NULL, 10);
        if ((q = strstr(p, "daily = "))) l.daily = (uint32_t)strtoul(q + 8, NULL, 10);
        *end = '}';
        for (i = 0; i < ntiers; i++)
            if (!memcmp(&tiers[i], &l, sizeof l)) dup = 1;
        if (!dup && ntiers < MAX_TIERS) tiers[ntiers++] = l;
    }
    free(src);
    return ntiers;
}

/* ---- the tier properties ---- */

static void check_log(const char *what, const kl_limits *l, double safety, const sendlog *s) {
    int k, p;
    CHECK_MSG(sorted(s), "%s %u/%u/%u: send log out of order", what, l->burst, l->steady, l->daily);
    for (k = 0; k < KL_WINDOWS; k++) {
        uint32_t max = eff(lim_of(l, k), safety);
        size_t worst, worst_fixed = 0;
        if (max == 0) continue;
        worst = max_in_any_interval(s, LEN[k]);
        CHECK_MSG(worst <= max, "%s %u/%u/%u window %d: %zu sends in one interval, limit %u", what, l->burst, l->steady,
                  l->daily, k, worst, max);
        for (p = 0; p < 200; p++) {
            size_t w = max_in_fixed_windows(s, LEN[k], rnd_below(LEN[k]));
            if (w > worst_fixed) worst_fixed = w;
        }
        /* and the phases that hurt a fixed-window client most: aligned to sends */
        for (p = 0; p < 200 && s->n; p++) {
            size_t w = max_in_fixed_windows(s, LEN[k], s->t[rnd_below((kl_usec)s->n)] % LEN[k]);
            if (w > worst_fixed) worst_fixed = w;
        }
        CHECK_MSG(worst_fixed <= max, "%s %u/%u/%u window %d: server fixed window saw %zu, limit %u", what, l->burst,
                  l->steady, l->daily, k, worst_fixed, max);
    }
}

/* Run length: a few of the longest window present, so the long-run rate shows. */
static kl_usec horizon(const kl_limits *l) {
    return l->daily ? 3 * LEN[2] : l->steady ? 5 * LEN[1] : 30 * LEN[0];
}

/* The greedy sender's count over the horizon must be exactly the binding window's
 * allowance: limit * (horizon / window length), the least over the windows. */
static size_t expected_sends(const kl_limits *l, double safety, kl_usec h) {
    size_t best = (size_t)-1;
    int k;
    for (k = 0; k < KL_WINDOWS; k++) {
        uint32_t max = eff(lim_of(l, k), safety);
        if (max && (size_t)max * (size_t)(h / LEN[k]) < best) best = (size_t)max * (size_t)(h / LEN[k]);
    }
    return best;
}

static void test_tier(const kl_limits *l, double safety) {
    kl_limiter_options o = {safety};
    kl_limiter *lim = kl_limiter_new(&o);
    sendlog g = {0, 0, 0}, r = {0, 0, 0};
    kl_usec h = horizon(l);
    size_t want = expected_sends(l, safety, h);
    if (!lim) {
        printf("kl_limiter_new failed\n");
        exit(2);
    }

    run_greedy(lim, "acct/greedy", l, h, &g);
    check_log("greedy", l, safety, &g);
    CHECK_MSG(g.n == want, "greedy %u/%u/%u safety %.2f: %zu sends in %lld s, want the full %zu", l->burst, l->steady,
              l->daily, safety, g.n, (long long)(h / SEC), want);

    /* random workers: think time around the burst spacing so every window gets hit */
    run_random(lim, "acct/random", l, h, l->burst ? 2 * SEC / l->burst + 1 : SEC, &r);
    check_log("random", l, safety, &r);
    CHECK_MSG(r.n >= want * 9 / 10, "random %u/%u/%u: only %zu of %zu sends", l->burst, l->steady, l->daily, r.n, want);

    free(g.t);
    free(r.t);
    kl_limiter_free(lim);
}

/* ---- individual behaviours ---- */

/* kl_limiter_remaining's answer, or -100 on error */
static long rem(kl_limiter *lim, const char *key, const kl_limits *l, int window, kl_usec now) {
    long left = -100;
    if (kl_limiter_remaining(lim, key, l, window, now, &left) != 0) return -100;
    return left;
}

static const kl_limits XL = {350, 3500, 0};
static const kl_limits M = {10, 150, 0};

static void test_block_until(void) {
    kl_limiter *lim = kl_limiter_new(NULL);
    kl_usec wait = -1;
    CHECK_MSG(kl_limiter_acquire(lim, "a/op", &XL, 10 * SEC, &wait) == KL_LIMIT_GO, "first send goes");
    CHECK_MSG(kl_limiter_block_until(lim, "a/op", 13 * SEC) == 0, "block_until ok");
    CHECK_MSG(kl_limiter_acquire(lim, "a/op", &XL, 10 * SEC, &wait) == KL_LIMIT_WAIT && wait == 3 * SEC,
              "Retry-After 3 s: wait exactly 3 s, got %lld us", (long long)wait);
    CHECK_MSG(kl_limiter_acquire(lim, "a/op", &XL, 13 * SEC - 1, &wait) == KL_LIMIT_WAIT && wait == 1,
              "one microsecond early still waits");
    CHECK_MSG(kl_limiter_acquire(lim, "a/op", &XL, 13 * SEC, &wait) == KL_LIMIT_GO, "go once Retry-After passed");
    /* an earlier block never shortens a later one */
    kl_limiter_block_until(lim, "a/op", 20 * SEC);
    kl_limiter_block_until(lim, "a/op", 15 * SEC);
    CHECK_MSG(kl_limiter_acquire(lim, "a/op", &XL, 14 * SEC, &wait) == KL_LIMIT_WAIT && wait == 6 * SEC,
              "the later block wins, wait %lld", (long long)wait);
    /* other keys (another operation, another account) are not blocked */
    CHECK_MSG(kl_limiter_acquire(lim, "a/other", &XL, 14 * SEC, &wait) == KL_LIMIT_GO, "other operation unaffected");
    CHECK_MSG(kl_limiter_acquire(lim, "b/op", &XL, 14 * SEC, &wait) == KL_LIMIT_GO, "other account unaffected");
    /* a block on a key with no windows at all still holds */
    kl_limiter_block_until(lim, "c/none", 2 * SEC);
    CHECK_MSG(kl_limiter_acquire(lim, "c/none", NULL, 1 * SEC, &wait) == KL_LIMIT_WAIT && wait == SEC,
              "block applies without limits");
    kl_limiter_free(lim);
}

static void test_observe(void) {
    kl_limiter *lim = kl_limiter_new(NULL);
    kl_usec wait = -1, now = 100 * SEC;
    int i, go = 0;
    for (i = 0; i < 10; i++) kl_limiter_acquire(lim, "a/ev", &XL, now, &wait);
    CHECK_MSG(rem(lim, "a/ev", &XL, KL_WINDOW_STEADY, now) == 3490, "belief 3490 left");
    /* another process used the key: the server says 5 left for 20 more seconds */
    CHECK_MSG(kl_limiter_observe(lim, "a/ev", &XL, 5, 20 * SEC, now) == 0, "observe ok");
    CHECK_MSG(rem(lim, "a/ev", &XL, KL_WINDOW_STEADY, now) == 5, "belief lowered to 5");
    /* a later, more generous answer (sent before the other process's burst) does not raise it */
    kl_limiter_observe(lim, "a/ev", &XL, 50, 20 * SEC, now);
    CHECK_MSG(rem(lim, "a/ev", &XL, KL_WINDOW_STEADY, now) == 5, "still 5 after observing 50");
    now += SEC;
    for (i = 0; i < 10; i++)
        if (kl_limiter_acquire(lim, "a/ev", &XL, now, &wait) == KL_LIMIT_GO) go++;
    CHECK_MSG(go == 5, "5 sends allowed after observe, got %d", go);
    CHECK_MSG(kl_limiter_acquire(lim, "a/ev", &XL, now, &wait) == KL_LIMIT_WAIT && wait == 19 * SEC,
              "then wait until the server window resets: %lld us", (long long)wait);
    CHECK_MSG(kl_limiter_acquire(lim, "a/ev", &XL, now + 19 * SEC, &wait) == KL_LIMIT_GO, "go at the server's reset");
    /* the server saying more is left never raises what the limiter allows */
    {
        kl_limiter *l2 = kl_limiter_new(NULL);
        kl_usec t = 0;
        for (i = 0; i < 150; i++) {
            if (kl_limiter_acquire(l2, "a/m", &M, t, &wait) != KL_LIMIT_GO) t += wait, i--;
        }
        CHECK_MSG(rem(l2, "a/m", &M, KL_WINDOW_STEADY, t) == 0, "steady window full");
        kl_limiter_observe(l2, "a/m", &M, 100, 30 * SEC, t);
        CHECK_MSG(kl_limiter_acquire(l2, "a/m", &M, t + SEC, &wait) == KL_LIMIT_WAIT,
                  "observe(100 left) does not let a full window send");
        kl_limiter_free(l2);
    }
    /* remaining 0 with a reset blocks exactly until that reset */
    kl_limiter_observe(lim, "b/ev", &XL, 0, 7 * SEC, now);
    CHECK_MSG(kl_limiter_acquire(lim, "b/ev", &XL, now, &wait) == KL_LIMIT_WAIT && wait == 7 * SEC,
              "remaining 0: wait the reset, %lld", (long long)wait);
    /* an observation with reset 0 concerns a window that is over */
    kl_limiter_observe(lim, "c/ev", &XL, 0, 0, now);
    CHECK_MSG(kl_limiter_acquire(lim, "c/ev", &XL, now, &wait) == KL_LIMIT_GO, "reset 0 ignored");
    kl_limiter_free(lim);
}

static void test_override(void) {
    kl_limiter *lim = kl_limiter_new(NULL);
    kl_limits o = {2, 5, 0};
    sendlog s = {0, 0, 0};
    kl_usec wait;
    CHECK_MSG(kl_limiter_override(lim, "a/create_event", &o) == 0, "override ok");
    run_greedy(lim, "a/create_event", &XL, 5 * LEN[1], &s);
    CHECK_MSG(s.n == 25, "override 2/s 5/m over 5 min: %zu sends, want 25", s.n);
    CHECK_MSG(max_in_any_interval(&s, SEC) <= 2 && max_in_any_interval(&s, 60 * SEC) <= 5,
              "override windows respected");
    /* the override is per key: the same limits passed for another key are the table's */
    CHECK_MSG(rem(lim, "a/get_events", &XL, KL_WINDOW_BURST, 0) == 350, "other key uses table limits");
    /* removing the override restores the limits passed in */
    CHECK_MSG(kl_limiter_override(lim, "a/create_event", NULL) == 0, "override removed");
    CHECK_MSG(rem(lim, "a/create_event", &XL, KL_WINDOW_STEADY, 10 * LEN[1]) == 3500, "back to 3500/m");
    /* an override can add a window the table does not have */
    o.burst = 0;
    o.steady = 0;
    o.daily = 3;
    kl_limiter_override(lim, "a/daily", &o);
    kl_limiter_acquire(lim, "a/daily", &XL, 0, &wait);
    kl_limiter_acquire(lim, "a/daily", &XL, 0, &wait);
    kl_limiter_acquire(lim, "a/daily", &XL, 0, &wait);
    CHECK_MSG(kl_limiter_acquire(lim, "a/daily", &XL, 0, &wait) == KL_LIMIT_WAIT && wait == LEN[2],
              "daily override: wait one day");
    free(s.t);
    kl_limiter_free(lim);
}

static void test_safety(void) {
    kl_limiter_options o = {0.9};
    kl_limiter *lim = kl_limiter_new(&o);
    kl_limits one = {1, 15, 0}, xl = {350, 3500, 0};
    CHECK_MSG(rem(lim, "k", &M, KL_WINDOW_BURST, 0) == 9, "10/s * 0.9 = 9");
    CHECK_MSG(rem(lim, "k", &M, KL_WINDOW_STEADY, 0) == 135, "150/m * 0.9 = 135");
    CHECK_MSG(rem(lim, "k1", &one, KL_WINDOW_BURST, 0) == 1, "1/s * 0.9 still allows 1 (a limit never becomes 0)");
    kl_limiter_free(lim);
    o.safety = 0.95;
    lim = kl_limiter_new(&o);
    CHECK_MSG(rem(lim, "k", &xl, KL_WINDOW_STEADY, 0) == 3325, "3500 * 0.95 = 3325 exactly");
    kl_limiter_free(lim);
    o.safety = 1.5;
    CHECK_MSG(kl_limiter_new(&o) == NULL, "safety above 1 refused");
    o.safety = -0.1;
    CHECK_MSG(kl_limiter_new(&o) == NULL, "negative safety refused");
}

static void test_change_limits(void) {
    kl_limiter *lim = kl_limiter_new(NULL);
    kl_limits five = {5, 150, 0};
    kl_usec wait, t;
    int i;
    /* 10 sends spread over the first 0.9 s at 10/s */
    for (i = 0; i < 10; i++)
        CHECK_MSG(kl_limiter_acquire(lim, "k", &M, i * 100000, &wait) == KL_LIMIT_GO, "send %d", i);
    /* now the limit drops to 5/s: the 5th most recent (t = 0.5 s) must be 1 s old */
    t = 950000;
    CHECK_MSG(kl_limiter_acquire(lim, "k", &five, t, &wait) == KL_LIMIT_WAIT && wait == 1500000 - t,
              "after lowering: wait %lld us", (long long)wait);
    /* raising it back remembers every recent send: 10 in the last second, the oldest at 0 */
    CHECK_MSG(kl_limiter_acquire(lim, "k", &M, t, &wait) == KL_LIMIT_WAIT && wait == SEC - t,
              "after raising back: wait %lld us", (long long)wait);
    CHECK_MSG(kl_limiter_acquire(lim, "k", &M, SEC, &wait) == KL_LIMIT_GO, "go one second after the first");
    kl_limiter_free(lim);
}

static void test_misc(void) {
    kl_limiter *lim = kl_limiter_new(NULL);
    kl_limits huge = {KL_LIMIT_MAX + 1, 0, 0};
    kl_usec wait = 0;
    int i, ok = 1;
    char key[32];

    CHECK_MSG(kl_limiter_acquire(lim, "k", &huge, 0, &wait) == KL_LIMIT_ERROR &&
                  strstr(kl_limiter_errstr(lim), "above"),
              "limit above the maximum refused: %s", kl_limiter_errstr(lim));
    CHECK_MSG(kl_limiter_override(lim, "k", &huge) == KL_LIMIT_ERROR, "override above the maximum refused");
    CHECK_MSG(kl_limiter_acquire(lim, NULL, &M, 0, &wait) == KL_LIMIT_ERROR, "NULL key refused");
    CHECK_MSG(kl_limiter_acquire(lim, "none", NULL, 0, &wait) == KL_LIMIT_GO, "no limits: go");

    /* peek answers like acquire without recording */
    for (i = 0; i < 10; i++) kl_limiter_acquire(lim, "p", &M, 0, &wait);
    CHECK_MSG(kl_limiter_peek(lim, "p", &M, 0, &wait) == KL_LIMIT_WAIT && wait == SEC, "peek waits");
    CHECK_MSG(kl_limiter_peek(lim, "p", &M, SEC, &wait) == KL_LIMIT_GO, "peek go");
    CHECK_MSG(rem(lim, "p", &M, KL_WINDOW_BURST, SEC) == 10, "peek recorded nothing");

    /* remaining: -1 for a window the operation does not have, error for no such window */
    CHECK_MSG(rem(lim, "p", &M, KL_WINDOW_DAILY, SEC) == -1, "no daily window: -1");
    CHECK_MSG(rem(lim, "p", &M, 3, SEC) == -100 && kl_limiter_remaining(lim, "p", &M, 0, 0, NULL) == KL_LIMIT_ERROR,
              "bad window or NULL result refused");

    /* time going backwards is treated as the latest time seen */
    kl_limiter_acquire(lim, "b", &M, 5 * SEC, &wait);
    for (i = 0; i < 9; i++) kl_limiter_acquire(lim, "b", &M, 1 * SEC, &wait);
    CHECK_MSG(kl_limiter_acquire(lim, "b", &M, 0, &wait) == KL_LIMIT_WAIT && wait == SEC,
              "clock going back: wait counted from the latest time, %lld", (long long)wait);

    /* many keys: the table grows and keys stay independent */
    for (i = 0; i < 20000 && ok; i++) {
        snprintf(key, sizeof key, "acct%d/op", i);
        if (kl_limiter_acquire(lim, key, &(kl_limits){1, 15, 0}, 0, &wait) != KL_LIMIT_GO) ok = 0;
    }
    for (i = 0; i < 20000 && ok; i++) {
        snprintf(key, sizeof key, "acct%d/op", i);
        if (kl_limiter_acquire(lim, key, &(kl_limits){1, 15, 0}, 0, &wait) != KL_LIMIT_WAIT || wait != SEC) ok = 0;
    }
    CHECK_MSG(ok, "20000 keys independent (failed at %d)", i);
    CHECK_MSG(kl_limiter_keys(lim) == 20000 + 4 /* k, none, p, b */, "key count %zu", kl_limiter_keys(lim));
    CHECK_MSG(kl_usec_from_sec(1.5) == 1500000 && kl_usec_to_sec(2500000) == 2.5, "unit conversions");
    kl_limiter_free(lim);
    kl_limiter_free(NULL);
}

/* Every allocation is checked: with the n-th allocation failing, each call either works
 * or reports "out of memory", and the limiter keeps working once memory is back (ASan and
 * valgrind check that nothing leaks or is used after free). */
static void test_out_of_memory(void) {
    long n;
    int reported = 0, wrong = 0, broken = 0, nulls = 0;
    for (n = 0; n < 40; n++) {
        kl_limiter *lim;
        kl_limits big = {350, 3500, 500}, other = {10, 150, 0};
        kl_usec wait;
        int i, rc;
        char key[32];
        fail_after = n;
        lim = kl_limiter_new(NULL);
        if (!lim) {
            nulls++;
            fail_after = -1;
            continue;
        }
        for (i = 0; i < 80; i++) {
            snprintf(key, sizeof key, "k%d", i % 70);
            rc = i % 3 == 0 ? kl_limiter_override(lim, key, &other)
                            : kl_limiter_acquire(lim, key, i % 2 ? &big : &M, i, &wait);
            if (rc == KL_LIMIT_ERROR) {
                if (strstr(kl_limiter_errstr(lim), "out of memory")) reported++;
                else wrong++;
            }
        }
        fail_after = -1;
        /* memory is back: everything works again, including keys that failed */
        for (i = 0; i < 70; i++) {
            snprintf(key, sizeof key, "k%d", i);
            if (kl_limiter_acquire(lim, key, &big, 1000 * SEC, &wait) == KL_LIMIT_ERROR) broken++;
        }
        kl_limiter_free(lim);
    }
    CHECK_MSG(nulls >= 2, "kl_limiter_new returns NULL when its allocations fail (%d)", nulls);
    CHECK_MSG(reported > 0, "allocation failures reported as out of memory (%d)", reported);
    CHECK_MSG(wrong == 0, "%d failures with another message", wrong);
    CHECK_MSG(broken == 0, "%d calls still failing once memory is back", broken);
}

/* A client counting in its own fixed windows can put 2x the limit in a server window:
 * the check above would catch a limiter that did that. Prove the check can fail. */
static void test_checker_catches_fixed_windows(void) {
    sendlog s = {0, 0, 0};
    int i;
    for (i = 0; i < 10; i++) log_add(&s, 900000 + i);  /* end of client window 0 */
    for (i = 0; i < 10; i++) log_add(&s, 1000000 + i); /* start of client window 1 */
    CHECK_MSG(max_in_any_interval(&s, SEC) == 20, "checker sees 20 sends in one second");
    CHECK_MSG(max_in_fixed_windows(&s, SEC, 500000) == 20, "server window at phase 0.5 s sees 20");
    free(s.t);
}

int main(int argc, char **argv) {
    const char *ops = argc > 1 ? argv[1] : "lua/klaviyo/operations.lua";
    int i;
    if (read_tiers(ops) <= 0) {
        printf("cannot read rate-limit tiers from %s\n0 passed, 1 failed\n", ops);
        return 1;
    }
    CHECK_MSG(ntiers >= 10, "found %d distinct tiers in %s", ntiers, ops);
    for (i = 0; i < ntiers; i++) {
        printf("tier %u/s %u/m %u/d\n", tiers[i].burst, tiers[i].steady, tiers[i].daily);
        test_tier(&tiers[i], 1.0);
        test_tier(&tiers[i], 0.9);
    }
    test_checker_catches_fixed_windows();
    test_block_until();
    test_observe();
    test_override();
    test_safety();
    test_change_limits();
    test_misc();
    test_out_of_memory();
    CTEST_END();
}
