/*
 * test_duration.c - the one check of durations from outside (src/duration.h), and every
 * reader of a server's durations going through it: Retry-After in seconds and as an
 * HTTP-date, a 429's "Expected available in N seconds", RateLimit-Reset.
 */
#include "ctest.h"
#include "kl_internal.h"
#include "klaviyo.h"

#include <math.h>
#include <stdio.h>
#include <time.h>

static kl_client *c;

static void test_check(void) {
    double v = 0;
    CHECK_INT(kl_duration_check(0, &v), KL_DURATION_OK);
    CHECK(v == 0);
    CHECK_INT(kl_duration_check(2.5, &v), KL_DURATION_OK);
    CHECK(v == 2.5);
    CHECK_INT(kl_duration_check(KL_DURATION_MAX, &v), KL_DURATION_OK);
    CHECK(v == KL_DURATION_MAX);
    CHECK_INT(kl_duration_check(1e12, &v), KL_DURATION_CAPPED);
    CHECK(v == KL_DURATION_MAX);
    CHECK_INT(kl_duration_check(HUGE_VAL, &v), KL_DURATION_CAPPED);
    CHECK(v == KL_DURATION_MAX);
    CHECK_INT(kl_duration_check(-HUGE_VAL, &v), KL_DURATION_BAD);
    CHECK(v == -1);
    CHECK_INT(kl_duration_check(-5, &v), KL_DURATION_BAD);
    CHECK_INT(kl_duration_check(-0.000001, &v), KL_DURATION_BAD);
    CHECK_INT(kl_duration_check(NAN, &v), KL_DURATION_BAD);
    CHECK(v == -1);
}

static void test_parse(void) {
    double v = 0;
    const char *e;
    CHECK_INT(kl_duration_parse("30", &e, &v), KL_DURATION_OK);
    CHECK(v == 30 && *e == '\0');
    CHECK_INT(kl_duration_parse("1.5 seconds", &e, &v), KL_DURATION_OK);
    CHECK(v == 1.5);
    CHECK_STR(e, " seconds");
    CHECK_INT(kl_duration_parse("1e12", NULL, &v), KL_DURATION_CAPPED);
    CHECK(v == KL_DURATION_MAX);
    CHECK_INT(kl_duration_parse("1e999", NULL, &v), KL_DURATION_CAPPED);
    CHECK(v == KL_DURATION_MAX);
    CHECK_INT(kl_duration_parse("-5", &e, &v), KL_DURATION_BAD);
    CHECK(v == -1);
    CHECK_STR(e, "-5");
    CHECK_INT(kl_duration_parse("+5", NULL, &v), KL_DURATION_BAD);
    CHECK_INT(kl_duration_parse("NaN", NULL, &v), KL_DURATION_BAD);
    CHECK_INT(kl_duration_parse("nan", NULL, &v), KL_DURATION_BAD);
    CHECK_INT(kl_duration_parse("inf", NULL, &v), KL_DURATION_BAD);
    CHECK_INT(kl_duration_parse("0x10", NULL, &v), KL_DURATION_BAD);
    CHECK_INT(kl_duration_parse("", NULL, &v), KL_DURATION_BAD);
    CHECK_INT(kl_duration_parse(NULL, NULL, &v), KL_DURATION_BAD);
}

/* Retry-After of a 429 as kl_interpret reads it; -1 when it is not a duration */
static double retry_after(const char *value) {
    kl_header h[] = {{"Retry-After", NULL}};
    h[0].value = (char *)(uintptr_t)value;
    kl_interpret(c, 429, h, 1, "{\"errors\":[{\"code\":\"throttled\",\"detail\":\"slow down\"}]}", 55, "op");
    CHECK(kl_last_response(c)->retry_after == kl_last_error(c)->retry_after);
    return kl_last_error(c)->retry_after;
}

static void test_retry_after(void) {
    char date[64];
    time_t t;
    double v;
    CHECK(retry_after("7") == 7);
    CHECK(retry_after("0.25") == 0.25);
    CHECK(retry_after("1e12") == KL_DURATION_MAX);
    CHECK(retry_after("1e999") == KL_DURATION_MAX);
    CHECK(retry_after("-5") == -1);
    CHECK(retry_after("NaN") == -1);
    CHECK(retry_after("nan") == -1);
    CHECK(retry_after("5 apples") == -1);
    CHECK(retry_after("Fri, 31 Dec 9999 23:59:59 GMT") == KL_DURATION_MAX);
    CHECK(retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0);
    t = time(NULL) + 100;
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", gmtime(&t));
    v = retry_after(date);
    CHECK(v > 95 && v <= 100);
}

static double from_detail(const char *detail) {
    char body[300];
    snprintf(body, sizeof body, "{\"errors\":[{\"code\":\"throttled\",\"detail\":\"%s\"}]}", detail);
    kl_interpret(c, 429, NULL, 0, body, strlen(body), "op");
    return kl_last_error(c)->retry_after;
}

static void test_detail(void) {
    CHECK(from_detail("Request was throttled. Expected available in 3 seconds.") == 3);
    CHECK(from_detail("Request was throttled. Expected available in 1e12 seconds.") == KL_DURATION_MAX);
    CHECK(from_detail("Request was throttled. Expected available in 1e999 seconds.") == KL_DURATION_MAX);
    CHECK(from_detail("Request was throttled. Expected available in -5 seconds.") == -1);
    CHECK(from_detail("Request was throttled. Expected available in nan seconds.") == -1);
}

static void test_ratelimit_reset(void) {
    kl_header h[] = {{"RateLimit-Limit", "700"},
                     {"RateLimit-Remaining", "0"},
                     {"RateLimit-Reset", "99999999999999999999999"}};
    CHECK_INT(kl_interpret(c, 200, h, 3, "{}", 2, "op"), KL_OK);
    CHECK_INT(kl_last_response(c)->has_ratelimit, 1);
    CHECK_INT(kl_last_response(c)->rl_reset, (long)KL_DURATION_MAX);
    h[2].value = "42";
    CHECK_INT(kl_interpret(c, 200, h, 3, "{}", 2, "op"), KL_OK);
    CHECK_INT(kl_last_response(c)->rl_reset, 42);
}

/* seconds <-> microseconds never overflow, whatever the seconds */
static void test_usec(void) {
    CHECK(kl_usec_from_sec(NAN) == 0);
    CHECK(kl_usec_from_sec(HUGE_VAL) == INT64_MAX);
    CHECK(kl_usec_from_sec(-HUGE_VAL) == -INT64_MAX);
    CHECK(kl_usec_from_sec(1.5) == 1500000);
}

int main(void) {
    kl_options o;
    memset(&o, 0, sizeof o);
    o.base_url = "http://127.0.0.1:9";
    o.api_key = "pk_test_duration";
    c = kl_new(&o);
    CHECK(c != NULL && c->err == KL_OK);
    test_check();
    test_parse();
    test_retry_after();
    test_detail();
    test_ratelimit_reset();
    test_usec();
    kl_free(c);
    CTEST_END();
}
