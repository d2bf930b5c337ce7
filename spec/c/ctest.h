/*
 * ctest.h - the smallest test harness: CHECK counts, a failure prints where and why,
 * CTEST_END prints "N passed, N failed" and gives the exit status.
 */
#ifndef KL_CTEST_H
#define KL_CTEST_H

#include <stdio.h>
#include <string.h>

static int ctest_pass, ctest_fail;

#define CHECK(cond)                                                                \
    do {                                                                           \
        if (cond) ctest_pass++;                                                    \
        else { ctest_fail++; fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond); } \
    } while (0)

/* CHECK with a printf-style account of what was wrong: CHECK_MSG(n == 3, "n is %d", n) */
#define CHECK_MSG(cond, ...)                                                       \
    do {                                                                           \
        if (cond) ctest_pass++;                                                    \
        else { ctest_fail++; fprintf(stderr, "%s:%d: FAILED: %s: ", __FILE__, __LINE__, #cond); \
               fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); }               \
    } while (0)

#define CHECK_STR(got, want)                                                       \
    do {                                                                           \
        const char *g_ = (got), *w_ = (want);                                      \
        if ((g_ == NULL && w_ == NULL) || (g_ && w_ && strcmp(g_, w_) == 0)) ctest_pass++; \
        else { ctest_fail++; fprintf(stderr, "%s:%d: FAILED: %s\n   got: %s\n  want: %s\n", __FILE__, \
                                     __LINE__, #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)"); } \
    } while (0)

#define CHECK_INT(got, want)                                                       \
    do {                                                                           \
        long g_ = (long)(got), w_ = (long)(want);                                  \
        if (g_ == w_) ctest_pass++;                                                \
        else { ctest_fail++; fprintf(stderr, "%s:%d: FAILED: %s == %ld, want %ld\n", __FILE__, __LINE__, #got, g_, w_); } \
    } while (0)

#define CTEST_END()                                                                \
    do {                                                                           \
        printf("%d passed, %d failed\n", ctest_pass, ctest_fail);                 \
        return ctest_fail ? 1 : 0;                                                 \
    } while (0)

#endif
