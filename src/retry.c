/*
 * retry.c: the retry decision (rules and their reasons in retry.h).
 */
#include "retry.h"

void kl_retry_policy_default(kl_retry_policy *p) {
    p->max_attempts = KL_RETRY_DEFAULT_MAX_ATTEMPTS;
    p->max_elapsed = KL_RETRY_DEFAULT_MAX_ELAPSED;
    p->base_delay = KL_RETRY_DEFAULT_BASE_DELAY;
    p->max_delay = KL_RETRY_DEFAULT_MAX_DELAY;
}

/* Class of a failure: 0 never retried, 1 retried when safe to repeat, 2 always retried
 * (the server did not carry the request out). */
static int failure_class(long status, int failure) {
    if (status == 0) {
        if (failure == KL_FAIL_NOT_SENT) return 2;
        if (failure == KL_FAIL_MAYBE_SENT) return 1;
        return 0;
    }
    switch (status) {
    case 429: /* throttled: rejected before any work */
    case 503: /* unavailable: refused, not attempted */ return 2;
    case 500:
    case 502:
    case 504: /* gateway timeout: the origin may have finished the work */
    case 524: /* Cloudflare: origin timed out, same */ return 1;
    default: return 0;
    }
}

int kl_retry_retryable(int safe, long status, int failure) {
    int c = failure_class(status, failure);
    return c == 2 || (c == 1 && safe);
}

static int bad(kl_retry_decision *out, const char *why) {
    out->delay = 0;
    out->reason = why;
    return KL_RETRY_ERROR;
}

static int stop(kl_retry_decision *out, const char *why) {
    out->delay = 0;
    out->reason = why;
    return KL_RETRY_STOP;
}

int kl_retry_decide(const kl_retry_policy *p, const kl_retry_input *in, kl_retry_decision *out) {
    double ceiling, delay;
    int c, i;
    /* Negated comparisons so NaN fails them too. */
    if (!p || !in || !out) return out ? bad(out, "retry: NULL argument") : KL_RETRY_ERROR;
    if (p->max_attempts < 1) return bad(out, "retry policy: max_attempts must be at least 1");
    if (!(p->max_elapsed >= 0)) return bad(out, "retry policy: max_elapsed must be >= 0");
    if (!(p->base_delay >= 0)) return bad(out, "retry policy: base_delay must be >= 0");
    if (!(p->max_delay >= 0)) return bad(out, "retry policy: max_delay must be >= 0");
    if (in->attempt < 1) return bad(out, "retry: attempt must be at least 1");
    if (!(in->elapsed >= 0)) return bad(out, "retry: elapsed must be >= 0");
    if (!(in->random >= 0 && in->random < 1)) return bad(out, "retry: random must be in [0, 1)");
    if (in->status == 0 && in->failure != KL_FAIL_NOT_SENT && in->failure != KL_FAIL_MAYBE_SENT)
        return bad(out, "retry: no status and no failure kind");

    c = failure_class(in->status, in->failure);
    if (c == 0) return stop(out, in->status ? "status is not retryable" : "failure is not retryable");
    if (c == 1 && !in->safe)
        return stop(out, in->status ? "not safe to repeat: the server may have carried the request out"
                                    : "not safe to repeat: the request may have reached the server");
    if (in->attempt >= p->max_attempts) return stop(out, "attempts used up");

    /* Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))). */
    ceiling = p->base_delay;
    for (i = 1; i < in->attempt && ceiling > 0 && ceiling < p->max_delay; i++) ceiling *= 2;
    if (ceiling > p->max_delay) ceiling = p->max_delay;
    delay = in->random * ceiling;
    if (in->retry_after >= 0 && delay < in->retry_after) delay = in->retry_after;

    if (in->elapsed + delay > p->max_elapsed)
        return stop(out, in->retry_after >= 0 && delay == in->retry_after
                             ? "Retry-After ends after the total time allowed"
                             : "total time allowed used up");
    out->delay = delay;
    out->reason = in->status == 429                 ? "throttled"
                  : in->status                      ? "server error"
                  : in->failure == KL_FAIL_NOT_SENT ? "not sent"
                                                    : "connection failed";
    return KL_RETRY_AGAIN;
}
