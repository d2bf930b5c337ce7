/*
 * core_ab.c - for bench/call: the C core's kl_send next to the plain libcurl request of
 * anchor.h, in one process, in alternating blocks of N requests (the same create_event
 * bytes, the emulator's --sink), so that the machine's load falls on both alike. Prints the
 * median of the per-block rate ratios kl_send / libcurl: what the core itself costs, apart
 * from the Lua binding, the encoder and the Lua layer.
 *
 *   core_ab BASE_URL [BLOCKS, default 20] [N, default 1000]
 */
#define _POSIX_C_SOURCE 200809L
#include "anchor.h"
#include "klaviyo.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}
static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
int main(int argc, char **argv) {
    const char *base = argv[1];
    char url[256];
    int blocks = argc > 2 ? atoi(argv[2]) : 20, n = argc > 3 ? atoi(argv[3]) : 1000, b, i;
    double r[64];
    CURL *h;
    struct curl_slist *hs = NULL;
    kl_options o;
    kl_client *c;
    kl_request q;
    if (argc < 2 || blocks < 1 || blocks > 64 || n < 1) {
        fprintf(stderr, "usage: core_ab BASE_URL [BLOCKS 1..64] [N]\n");
        return 2;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(url, sizeof url, "%s/api/events", base);
    if (!(h = anchor_handle(url, "pk_x", &hs))) return 1;
    memset(&o, 0, sizeof o);
    o.base_url = base;
    o.api_key = "pk_x";
    o.limiter = KL_LIMITER_OFF;
    c = kl_new(&o);
    if (!c || c->err) {
        fprintf(stderr, "kl_new failed\n");
        return 1;
    }
    memset(&q, 0, sizeof q);
    q.operation = "create_event";
    q.method = "POST";
    q.path = "/api/events";
    q.safe = KL_SAFE_YES;
    q.body = anchor_body;
    q.body_len = sizeof anchor_body - 1;
    for (i = 0; i < 300; i++) {
        anchor_next_id();
        curl_easy_perform(h);
        anchor_next_id();
        kl_send(c, &q);
    } /* warm up */
    for (b = 0; b < blocks; b++) {
        double t0 = now(), t1, t2;
        for (i = 0; i < n; i++)
            if (anchor_next_id() != 0 || curl_easy_perform(h) != CURLE_OK) {
                fprintf(stderr, "libcurl failed\n");
                return 1;
            }
        t1 = now();
        for (i = 0; i < n; i++)
            if (anchor_next_id() != 0 || kl_send(c, &q) != KL_OK) {
                fprintf(stderr, "send failed\n");
                return 1;
            }
        t2 = now();
        r[b] = (t1 - t0) / (t2 - t1);
    }
    qsort(r, blocks, sizeof r[0], cmp);
    printf("%.3f %.3f %.3f\n", r[blocks / 2], r[0], r[blocks - 1]);
    kl_free(c);
    curl_slist_free_all(hs);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    return 0;
}
