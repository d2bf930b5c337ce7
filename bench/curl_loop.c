/*
 * curl_loop.c - the anchor for bench/call: a plain libcurl loop sending the same
 * create_event request N times over one reused handle, as fast as it can.  "The same"
 * means the same bytes on the wire as klaviyo's client sends: the same headers (including
 * Accept-Encoding: gzip) and body; everything else is libcurl's defaults.
 *
 *   curl_loop URL API_KEY N     -> prints "<requests/s> <non-2xx count> <CPU microseconds/request>"
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static size_t discard(char *p, size_t s, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return s * n;
}

static const char body[] =
    "{\"data\":{\"type\":\"event\",\"attributes\":{\"properties\":{\"item\":\"Bench\",\"value\":9.99},"
    "\"metric\":{\"data\":{\"type\":\"metric\",\"attributes\":{\"name\":\"Bench Call\"}}},"
    "\"profile\":{\"data\":{\"type\":\"profile\",\"attributes\":{\"email\":\"bench@example.com\"}}}}}}";

int main(int argc, char **argv) {
    CURL *h;
    struct curl_slist *hs = NULL;
    char auth[512];
    long n, i, bad = 0, status;
    struct timespec t0, t1, c0, c1;
    double secs;
    if (argc != 4) {
        fprintf(stderr, "usage: curl_loop URL API_KEY N\n");
        return 2;
    }
    n = atol(argv[3]);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    h = curl_easy_init();
    if (!h) return 1;
    snprintf(auth, sizeof auth, "Authorization: Klaviyo-API-Key %s", argv[2]);
    hs = curl_slist_append(hs, "Accept: application/vnd.api+json");
    hs = curl_slist_append(hs, "Content-Type: application/vnd.api+json");
    hs = curl_slist_append(hs, "revision: 2026-07-15");
    hs = curl_slist_append(hs, "User-Agent: lua-klaviyo/0.1.0");
    hs = curl_slist_append(hs, auth);
    hs = curl_slist_append(hs, "Expect:");
    if (!hs) return 1;
    curl_easy_setopt(h, CURLOPT_URL, argv[1]);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(sizeof body - 1));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    for (i = 0; i < n; i++) {
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
