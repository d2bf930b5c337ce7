/*
 * test_retry.c: every rule of the retry decision (src/retry.h), with fixed "random" values.
 * Last line: "N passed, N failed"; exit status non-zero on failure.
 */
#include "../../src/retry.h"
#include "ctest.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static kl_retry_policy policy(void) {
    kl_retry_policy p;
    kl_retry_policy_default(&p);
    return p;
}

static kl_retry_input input(int safe, long status, int failure) {
    kl_retry_input in;
    in.safe = safe;
    in.status = status;
    in.failure = failure;
    in.attempt = 1;
    in.elapsed = 0;
    in.retry_after = -1;
    in.random = 0.5;
    return in;
}

static int decide(const kl_retry_input *in, double *delay) {
    kl_retry_policy p = policy();
    kl_retry_decision d;
    int rc = kl_retry_decide(&p, in, &d);
    if (delay) *delay = d.delay;
    if (!d.reason || !*d.reason) {
        ctest_fail++;
        printf("FAIL: decision without a reason\n");
    }
    return rc;
}

static int near(double a, double b) {
    return a - b < 1e-12 && b - a < 1e-12;
}

/* Which answers are repeated: expected[safe] per status. */
static void test_statuses(void) {
    static const struct {
        long status;
        int unsafe_retry, safe_retry;
    } table[] = {
        {200, 0, 0}, {201, 0, 0}, {202, 0, 0}, {204, 0, 0}, {301, 0, 0}, {304, 0, 0},
        {400, 0, 0}, {401, 0, 0}, {403, 0, 0}, {404, 0, 0}, {405, 0, 0}, {408, 0, 0},
        {409, 0, 0}, {410, 0, 0}, {413, 0, 0}, {415, 0, 0}, {422, 0, 0}, {429, 1, 1}, /* throttled: never carried out */
        {500, 0, 1}, {501, 0, 0}, {502, 0, 1}, {503, 1, 1}, /* unavailable: never carried out */
        {504, 0, 1}, {520, 0, 0}, {521, 0, 0}, {522, 0, 0}, {523, 0, 0}, {524, 0, 1},
        {525, 0, 0}, {526, 0, 0}, {527, 0, 0}, {599, 0, 0},
    };
    size_t i;
    for (i = 0; i < sizeof table / sizeof table[0]; i++) {
        kl_retry_input u = input(0, table[i].status, KL_FAIL_NONE);
        kl_retry_input s = input(1, table[i].status, KL_FAIL_NONE);
        int ru = decide(&u, NULL), rs = decide(&s, NULL);
        CHECK_MSG(ru == (table[i].unsafe_retry ? KL_RETRY_AGAIN : KL_RETRY_STOP),
                  "status %ld, not safe to repeat: got %d", table[i].status, ru);
        CHECK_MSG(rs == (table[i].safe_retry ? KL_RETRY_AGAIN : KL_RETRY_STOP), "status %ld, safe to repeat: got %d",
                  table[i].status, rs);
        CHECK_MSG(kl_retry_retryable(0, table[i].status, KL_FAIL_NONE) == table[i].unsafe_retry &&
                      kl_retry_retryable(1, table[i].status, KL_FAIL_NONE) == table[i].safe_retry,
                  "kl_retry_retryable agrees for %ld", table[i].status);
    }
}

static void test_transport(void) {
    kl_retry_input in;
    kl_retry_policy p = policy();
    kl_retry_decision d;
    in = input(0, 0, KL_FAIL_NOT_SENT);
    CHECK_MSG(decide(&in, NULL) == KL_RETRY_AGAIN, "not sent, unsafe op: retried (nothing reached the server)");
    in = input(1, 0, KL_FAIL_NOT_SENT);
    CHECK_MSG(decide(&in, NULL) == KL_RETRY_AGAIN, "not sent, safe op: retried");
    in = input(0, 0, KL_FAIL_MAYBE_SENT);
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_STOP && strstr(d.reason, "may have reached"),
              "maybe sent (timeout on create_profile): not retried, reason: %s", d.reason);
    in = input(1, 0, KL_FAIL_MAYBE_SENT);
    CHECK_MSG(decide(&in, NULL) == KL_RETRY_AGAIN, "maybe sent (reset on create_event): retried");
    in = input(1, 0, KL_FAIL_NONE);
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR, "no status and no failure kind: error");
}

static void test_backoff(void) {
    kl_retry_input in = input(1, 503, KL_FAIL_NONE);
    double delay = -1, r;
    int a, ok = 1;
    /* full jitter: random * min(cap, base * 2^(attempt-1)), base 0.5 s, cap 20 s */
    in.random = 0;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && delay == 0, "random 0: no wait");
    in.random = 0.5;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && near(delay, 0.25), "attempt 1: 0.5 * 0.5 = %g", delay);
    in.attempt = 2;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && near(delay, 0.5), "attempt 2: 0.5 * 1 = %g", delay);
    in.attempt = 3;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && near(delay, 1.0), "attempt 3: 0.5 * 2 = %g", delay);
    /* the cap: a policy allowing many attempts */
    {
        kl_retry_policy p = policy();
        kl_retry_decision d;
        p.max_attempts = 1000000;
        p.max_elapsed = 1e9;
        in.attempt = 20;
        in.random = 0.999;
        CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_AGAIN && near(d.delay, 0.999 * 20),
                  "attempt 20 capped at 20 s: %g", d.delay);
        in.attempt = 999999;
        CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_AGAIN && near(d.delay, 0.999 * 20),
                  "huge attempt numbers stay capped: %g", d.delay);
        p.base_delay = 0;
        CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_AGAIN && d.delay == 0, "base 0: no wait");
        /* every delay lies in [0, ceiling) over the whole range of random */
        p.base_delay = 0.5;
        for (a = 1; a <= 8; a++) {
            double ceiling = 0.5 * (double)(1 << (a - 1));
            if (ceiling > 20) ceiling = 20;
            for (r = 0; r < 1; r += 0.0625) {
                in.attempt = a;
                in.random = r;
                if (kl_retry_decide(&p, &in, &d) != KL_RETRY_AGAIN || d.delay < 0 || d.delay >= ceiling ||
                    !near(d.delay, r * ceiling))
                    ok = 0;
            }
        }
        CHECK_MSG(ok, "delays are random * ceiling for attempts 1..8");
    }
}

static void test_retry_after(void) {
    kl_retry_input in = input(0, 429, KL_FAIL_NONE);
    kl_retry_policy p = policy();
    kl_retry_decision d;
    double delay;
    in.retry_after = 3;
    in.random = 0.1;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && delay == 3, "Retry-After: 3 honoured: %g", delay);
    in.retry_after = 0;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && near(delay, 0.05), "Retry-After: 0: the jitter: %g", delay);
    /* Retry-After shorter than the backoff: the backoff (never earlier than Retry-After) */
    in.attempt = 3;
    in.random = 0.9;
    in.retry_after = 1;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && near(delay, 1.8), "backoff 1.8 > Retry-After 1: %g", delay);
    /* Retry-After beyond the cap is still honoured */
    in.attempt = 1;
    in.retry_after = 45;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && delay == 45, "Retry-After 45 > cap honoured");
    /* ... unless it ends after the total time allowed */
    in.elapsed = 20;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_STOP && strstr(d.reason, "Retry-After"),
              "Retry-After past max_elapsed: stop (%s)", d.reason);
    /* 503 with Retry-After too */
    in = input(0, 503, KL_FAIL_NONE);
    in.retry_after = 7;
    CHECK_MSG(decide(&in, &delay) == KL_RETRY_AGAIN && delay == 7, "503 Retry-After honoured");
}

static void test_limits(void) {
    kl_retry_policy p = policy();
    kl_retry_decision d;
    kl_retry_input in = input(1, 429, KL_FAIL_NONE);
    in.attempt = 3;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_AGAIN, "attempt 3 of 4: again");
    in.attempt = 4;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_STOP && !strcmp(d.reason, "attempts used up"),
              "attempt 4 of 4: stop");
    p.max_attempts = 1;
    in.attempt = 1;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_STOP, "max_attempts 1: never retried");
    p = policy();
    in.attempt = 1;
    in.random = 0.5; /* delay 0.25 */
    in.elapsed = 59.75;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_AGAIN && near(d.delay, 0.25),
              "ends exactly at max_elapsed: again");
    in.elapsed = 59.8;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_STOP && strstr(d.reason, "total time"),
              "would end after max_elapsed: stop (%s)", d.reason);
    p.max_elapsed = 0;
    in.elapsed = 0;
    in.random = 0;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_AGAIN, "max_elapsed 0 still allows an immediate retry");
}

static void test_errors(void) {
    kl_retry_policy p = policy();
    kl_retry_decision d;
    kl_retry_input in = input(1, 503, KL_FAIL_NONE);
    CHECK_MSG(p.max_attempts == 4 && p.max_elapsed == 60 && p.base_delay == 0.5 && p.max_delay == 20,
              "defaults 4 attempts, 60 s, 0.5 s, 20 s");
    in.random = 1.0;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR && strstr(d.reason, "random"), "random 1 refused");
    in.random = -0.1;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR, "negative random refused");
    in.random = 0.5;
    in.attempt = 0;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR && strstr(d.reason, "attempt"), "attempt 0 refused");
    in.attempt = 1;
    in.elapsed = -1;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR, "negative elapsed refused");
    in.elapsed = 0;
    p.max_attempts = 0;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR, "max_attempts 0 refused");
    p = policy();
    p.base_delay = -1;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR, "negative base_delay refused");
    p = policy();
    p.max_delay = NAN;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR, "NaN max_delay refused");
    p = policy();
    p.max_elapsed = -5;
    CHECK_MSG(kl_retry_decide(&p, &in, &d) == KL_RETRY_ERROR, "negative max_elapsed refused");
    CHECK_MSG(kl_retry_decide(NULL, &in, &d) == KL_RETRY_ERROR, "NULL policy refused");
}

int main(void) {
    test_statuses();
    test_transport();
    test_backoff();
    test_retry_after();
    test_limits();
    test_errors();
    CTEST_END();
}
