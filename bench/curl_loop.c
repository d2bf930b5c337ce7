/*
 * curl_loop.c - the anchor for bench/call: a plain libcurl loop sending the same
 * create_event request (anchor.h, a new unique_id each time) N times over one reused handle,
 * as fast as it can.
 *
 *   curl_loop URL API_KEY N     -> prints "<requests/s> <non-2xx count> <CPU microseconds/request>"
 */
#define _POSIX_C_SOURCE 200809L
#include "anchor.h"

#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv) {
    CURL *h;
    struct curl_slist *hs = NULL;
    long n, i, bad = 0, status;
    struct timespec t0, t1, c0, c1;
    double secs;
    if (argc != 4) {
        fprintf(stderr, "usage: curl_loop URL API_KEY N\n");
        return 2;
    }
    n = atol(argv[3]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!(h = anchor_handle(argv[1], argv[2], &hs))) return 1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (i = 0; i < n; i++) {
        if (anchor_next_id() != 0) return 1;
        if (curl_easy_perform(h) != CURLE_OK) { bad++; continue; }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299) bad++;
    }
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("%.0f %ld %.1f\n", (double)n / secs, bad,
           ((double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9) * 1e6 / (double)n);
    curl_slist_free_all(hs);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return 0;
}
