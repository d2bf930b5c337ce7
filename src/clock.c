/*
 * clock.c - the monotonic clock the core measures waits and deadlines with, and the blocking
 * sleep of the libcurl drivers.
 */
#define _POSIX_C_SOURCE 199309L
#include "kl_internal.h"

#include <time.h>

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
