/*
 * limiter.h: client-side rate limiter for Klaviyo's per-account, per-operation limits.
 *
 * Klaviyo counts requests in fixed windows (burst 1 s, steady 60 s, daily 86400 s) whose
 * phase the client cannot know. Counting in our own fixed windows could put 2x the limit
 * into one server window, so each window is a sliding log: a ring buffer of the last send
 * times (at least N of them, N = the window's effective limit). A send is allowed at `now`
 * only when the N-th most recent send is at least one window length old, which guarantees
 * that every half-open interval [a, a + window) holds at most N sends, hence every server
 * window, whatever its phase. The check and the record are O(1); the ring of a key holds
 * as many times as the largest limit it was used with (8 bytes each), so lowering and
 * raising a limit never forgets a recent send.
 *
 * The limiter is a pure function of its inputs and the times it is given: it never reads
 * a clock and never sleeps. The caller passes a monotonic `now` and sleeps the returned
 * wait (the libcurl transport blocks, OpenResty uses ngx.sleep, specs use a fake clock).
 *
 * Times are integer microseconds (kl_usec) so that "exactly one window later" is exact.
 * Effective limit of a window: max(1, floor(limit * safety)); a limit of 0 means the
 * operation has no such window.
 *
 * Not thread-safe: one limiter per thread, or lock around calls.
 */
#ifndef KL_LIMITER_H
#define KL_LIMITER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int64_t kl_usec;

#define KL_USEC_PER_SEC ((kl_usec)1000000)

/* Seconds (double, e.g. from a Lua clock) <-> microseconds, rounding to nearest. */
kl_usec kl_usec_from_sec(double seconds);
double kl_usec_to_sec(kl_usec us);

/* Windows, in the order of kl_limits' fields. */
#define KL_WINDOW_BURST 0  /* 1 second */
#define KL_WINDOW_STEADY 1 /* 60 seconds */
#define KL_WINDOW_DAILY 2  /* 86400 seconds */
#define KL_WINDOWS 3

/* A window's length (KL_WINDOW_*), in microseconds. */
static inline kl_usec kl_window_len(int window) {
    static const kl_usec len[KL_WINDOWS] = {1 * KL_USEC_PER_SEC, 60 * KL_USEC_PER_SEC, 86400 * KL_USEC_PER_SEC};
    return len[window];
}

/* Largest accepted limit for one window (memory per key is 8 bytes per allowed send). */
#define KL_LIMIT_MAX 1000000u

/* A window's effective limit, the same in every store: max(1, floor(limit * safety)), or 0
 * (no such window) for a limit of 0. */
static inline uint32_t kl_effective_limit(uint32_t limit, double safety) {
    double v;
    if (limit == 0) return 0;
    /* The epsilon keeps 3500 * 0.95 at 3325 despite binary rounding. */
    v = (double)limit * safety + 1e-9; /* positive: the cast is floor */
    return v < 1 ? 1 : (uint32_t)v;
}

/* Requests allowed per window; 0 = no such window. */
typedef struct kl_limits {
    uint32_t burst;
    uint32_t steady;
    uint32_t daily;
} kl_limits;

typedef struct kl_limiter_options {
    double safety; /* in (0, 1]; 0 means the default 1.0 */
} kl_limiter_options;

/* Return codes. */
#define KL_LIMIT_GO 0       /* send now: the send has been recorded */
#define KL_LIMIT_WAIT 1     /* *wait holds the time until it would be go; nothing recorded */
#define KL_LIMIT_ERROR (-1) /* out of memory or invalid argument: see kl_limiter_errstr */

typedef struct kl_limiter kl_limiter;

/* NULL opts: defaults. Returns NULL when out of memory or when opts->safety is outside
 * (0, 1] (nothing to report an error in: the caller says "invalid safety or no memory"). */
kl_limiter *kl_limiter_new(const kl_limiter_options *opts);
void kl_limiter_free(kl_limiter *lim);

/* The error message of the last KL_LIMIT_ERROR. */
const char *kl_limiter_errstr(const kl_limiter *lim);

/* Ask to send one request under `key` (e.g. "<account>/<operation>") with `limits` (or the
 * key's override). GO: recorded at `now`. WAIT: *wait = how long until it would be go
 * (exact: asking again at now + *wait gives GO unless something else was sent or blocked
 * meanwhile). `now` must not go backwards for a key; an earlier value is treated as the
 * latest one seen. */
int kl_limiter_acquire(kl_limiter *lim, const char *key, const kl_limits *limits, kl_usec now, kl_usec *wait);

/* Like acquire, but never records: GO or WAIT with *wait, as acquire would answer. */
int kl_limiter_peek(kl_limiter *lim, const char *key, const kl_limits *limits, kl_usec now, kl_usec *wait);

/* A 429 said Retry-After: nothing is sent under `key` before `until`. */
int kl_limiter_block_until(kl_limiter *lim, const char *key, kl_usec until);

/* The server's RateLimit-Remaining (`remaining` more sends) and RateLimit-Reset (`reset`
 * from now) for the steady window. When that is less than the limiter believes is left,
 * at most `remaining` more sends are allowed before now + reset (another process is using
 * the same key). Never raises what the limiter allows. Pass the time the response arrived
 * as `now`: the server counted earlier, so the cap ends a little late, on the safe side
 * (as does a Reset rounded up to whole seconds, which is what the emulator sends). Sends
 * still in flight when the answer was computed are not in `remaining`; with many calls in
 * flight the later answers lower the cap further. */
int kl_limiter_observe(kl_limiter *lim, const char *key, const kl_limits *limits, long remaining, kl_usec reset,
                       kl_usec now);

/* Limits for `key` that replace whatever acquire is passed (client option
 * `limits = {create_event = {...}}`); NULL removes the override. */
int kl_limiter_override(kl_limiter *lim, const char *key, const kl_limits *limits);

/* *left = how many more sends the limiter would allow in `window` (KL_WINDOW_*) at `now`
 * without waiting (its belief, including observed caps; Retry-After blocks aside), or -1
 * when the window does not apply. Returns 0, or KL_LIMIT_ERROR. */
int kl_limiter_remaining(kl_limiter *lim, const char *key, const kl_limits *limits, int window, kl_usec now,
                         long *left);

/* Number of keys held (memory is bounded per key by its limits). */
size_t kl_limiter_keys(const kl_limiter *lim);

#ifdef __cplusplus
}
#endif

#endif
