/*
 * bench/batch/multi_loop.c - the ceiling of libcurl's multi interface on this machine: the
 * same create_event POST as bench/batch, 16 easy handles kept busy by a plain C loop (no
 * limiter, no retries, no Lua).  client:batch is built on this interface, so its figure is
 * read against this one as well as against wrk.
 *   multi_loop URL SECONDS  ->  prints "<requests/s> <failed>"
 */
#define _POSIX_C_SOURCE 200809L
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CONC 16

static size_t sink(char *p, size_t s, size_t n, void *u) { (void)p; (void)u; return s * n; }

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    static const char body[] = "{\"data\":{\"type\":\"event\",\"attributes\":{\"properties\":{\"order_id\":\"1-1\","
                               "\"items\":[\"a\",\"b\"],\"total\":12.5},\"unique_id\":\"1-1\",\"metric\":{\"data\":"
                               "{\"type\":\"metric\",\"attributes\":{\"name\":\"Placed Order\"}}},\"profile\":{\"data\":"
                               "{\"type\":\"profile\",\"attributes\":{\"email\":\"user1@example.com\"}}}}}}";
    CURLM *m;
    CURL *h[CONC];
    struct curl_slist *sl = NULL;
    double t0, end;
    long done = 0, failed = 0;
    int i, running;
    if (argc != 3) { fprintf(stderr, "usage: multi_loop URL SECONDS\n"); return 2; }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    m = curl_multi_init();
    sl = curl_slist_append(sl, "Content-Type: application/vnd.api+json");
    sl = curl_slist_append(sl, "Accept: application/vnd.api+json");
    sl = curl_slist_append(sl, "Authorization: Klaviyo-API-Key pk_bench_sink_key");
    sl = curl_slist_append(sl, "revision: 2026-07-15");
    if (!m || !sl) return 1;
    t0 = now();
    end = t0 + atof(argv[2]);
    for (i = 0; i < CONC; i++) {
        if (!(h[i] = curl_easy_init())) return 1;
        curl_easy_setopt(h[i], CURLOPT_URL, argv[1]);
        curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, sl);
        curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, sink);
        curl_multi_add_handle(m, h[i]);
    }
    for (;;) {
        CURLMsg *msg;
        int left, active = 0;
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left))) {
            CURL *e;
            long st = 0;
            if (msg->msg != CURLMSG_DONE) continue;
            e = msg->easy_handle;
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &st);
            if (msg->data.result != CURLE_OK || st != 202) failed++;
            done++;
            curl_multi_remove_handle(m, e);
            if (now() < end) { /* the same request again */
                curl_easy_setopt(e, CURLOPT_URL, argv[1]);
                curl_multi_add_handle(m, e);
            }
        }
        curl_multi_perform(m, &running);
        active = running;
        if (!active && now() >= end) break;
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    printf("%.0f %ld\n", (double)done / (now() - t0), failed);
    for (i = 0; i < CONC; i++) curl_easy_cleanup(h[i]);
    curl_multi_cleanup(m);
    curl_slist_free_all(sl);
    curl_global_cleanup();
    return 0;
}
