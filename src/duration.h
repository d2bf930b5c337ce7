/*
 * duration.h - every duration that comes from outside the process passes here before
 * anything sleeps on it, stores it or prints it: a server's Retry-After (seconds or an
 * HTTP-date), RateLimit-Reset, the "Expected available in N seconds" of a 429's detail, a
 * wait answered by the Redis limiter store, and (through core.duration) what the Lua
 * limiter stores and the nginx transport read. A duration is finite, not negative, and at
 * most KL_DURATION_MAX; NaN, negatives and text that is not a number never pass.
 */
#ifndef KL_DURATION_H
#define KL_DURATION_H

#ifdef __cplusplus
extern "C" {
#endif

/* One day: longer than any window Klaviyo counts in, and longer than any call may last. */
#define KL_DURATION_MAX 86400.0

#define KL_DURATION_OK 0     /* *out = the value */
#define KL_DURATION_CAPPED 1 /* above KL_DURATION_MAX (infinity included): *out = the max */
#define KL_DURATION_BAD (-1) /* NaN, negative, or not a number: *out = -1 */

/* Checks `seconds`; returns KL_DURATION_* and sets *out as above. */
int kl_duration_check(double seconds, double *out);

/* Reads delta-seconds at `s` (digits, an optional fraction and exponent; no sign, no
 * "inf" or "nan"), then checks them. *end (may be NULL) = the first byte not read (`s`
 * itself when nothing was). */
int kl_duration_parse(const char *s, const char **end, double *out);

#ifdef __cplusplus
}
#endif

#endif
