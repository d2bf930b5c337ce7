/*
 * retry.h: whether and when to repeat a failed request (a pure function: no clock, no
 * randomness of its own, no sleeping).
 *
 * A repeat must never change the outcome: an event sent twice without a unique_id fires its
 * flow twice, a profile created twice is a 409 or a duplicate. So:
 *   - always repeated (the request was not carried out): 429; 503; a transport failure
 *     before any byte of the request was sent (DNS, connect, TLS handshake);
 *   - repeated only when the operation is safe to repeat (GET, PATCH, DELETE, create_event
 *     and bulk_create_events with unique_ids, create_or_update_profile, subscription jobs,
 *     or the caller said so): 500, 502, 504, 524 (the origin may have done the work before
 *     the gateway gave up) and transport failures after the request may have reached the
 *     server (timeout, reset, truncated answer);
 *   - never: any other status (2xx/3xx are not failures; other 4xx would fail again).
 * Delay: exponential backoff with full jitter, random * min(cap, base * 2^(attempt-1)),
 * and never less than the server's Retry-After. Stop when the attempts are used up or the
 * delay would end after the total time allowed.
 */
#ifndef KL_RETRY_H
#define KL_RETRY_H

#ifdef __cplusplus
extern "C" {
#endif

/* What went wrong, when there is no HTTP status. */
#define KL_FAIL_NONE 0       /* an HTTP answer: see status */
#define KL_FAIL_NOT_SENT 1   /* failed before any byte of the request was sent */
#define KL_FAIL_MAYBE_SENT 2 /* the request may have reached the server (timeout, reset...) */

typedef struct kl_retry_policy {
    int max_attempts;   /* total attempts including the first; >= 1 */
    double max_elapsed; /* seconds from the first attempt; a retry must start before it */
    double base_delay;  /* seconds: ceiling of the first backoff */
    double max_delay;   /* seconds: ceiling of any backoff (Retry-After may exceed it) */
} kl_retry_policy;

/* 4 attempts, 60 s in all, 0.5 s base, 20 s cap. */
#define KL_RETRY_DEFAULT_MAX_ATTEMPTS 4
#define KL_RETRY_DEFAULT_MAX_ELAPSED 60.0
#define KL_RETRY_DEFAULT_BASE_DELAY 0.5
#define KL_RETRY_DEFAULT_MAX_DELAY 20.0

typedef struct kl_retry_input {
    int safe;           /* the operation is safe to repeat (or the caller allows it) */
    long status;        /* HTTP status, 0 when there was no answer */
    int failure;        /* KL_FAIL_* when status is 0 */
    int attempt;        /* attempts made so far, >= 1 (1 after the first failure) */
    double elapsed;     /* seconds since the first attempt started */
    double retry_after; /* seconds from the server's Retry-After, < 0 when absent */
    double random;      /* uniform in [0, 1), from the caller (specs pass fixed values) */
} kl_retry_input;

/* Results. */
#define KL_RETRY_STOP 0
#define KL_RETRY_AGAIN 1
#define KL_RETRY_ERROR (-1) /* invalid policy or input: *reason says which */

typedef struct kl_retry_decision {
    double delay;       /* seconds to wait before the next attempt (AGAIN only) */
    const char *reason; /* static text: why (for errors, logs and stats) */
} kl_retry_decision;

/* Fills *p with the defaults above. */
void kl_retry_policy_default(kl_retry_policy *p);

/* 1 if the status / failure kind may be retried for an operation with the given safety. */
int kl_retry_retryable(int safe, long status, int failure);

/* AGAIN with out->delay, STOP, or ERROR; out->reason is always set. */
int kl_retry_decide(const kl_retry_policy *p, const kl_retry_input *in, kl_retry_decision *out);

#ifdef __cplusplus
}
#endif

#endif
