/*
 * duration.c - the one check of durations from outside (duration.h).
 */
#include "duration.h"

#include <stdlib.h>

int kl_duration_check(double seconds, double *out) {
    /* negated so that NaN fails it too */
    if (!(seconds >= 0)) {
        *out = -1;
        return KL_DURATION_BAD;
    }
    if (seconds > KL_DURATION_MAX) {
        *out = KL_DURATION_MAX;
        return KL_DURATION_CAPPED;
    }
    *out = seconds;
    return KL_DURATION_OK;
}

int kl_duration_parse(const char *s, const char **end, double *out) {
    char *e;
    double v;
    if (end) *end = s;
    /* strtod also reads a sign, "inf", "nan" and hex: none of them is delta-seconds */
    if (!s || *s < '0' || *s > '9' || (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))) {
        *out = -1;
        return KL_DURATION_BAD;
    }
    v = strtod(s, &e); /* overflow gives HUGE_VAL: capped below */
    if (end) *end = e;
    return kl_duration_check(v, out);
}
