/*
 * anchor.h - the plain libcurl request that the benchmarks' anchors send (bench/call's:
 * anchor_lua.c inside the Lua process, core_ab.c beside the C core; bench/batch's:
 * anchor_multi_lua.c over libcurl's multi interface): the same create_event bytes on the wire as
 * klaviyo's client sends, i.e. the same headers (including Accept-Encoding: gzip) and body, with
 * a fresh unique_id in every request as the client stamps one; everything else is libcurl's
 * defaults.
 * Header-only: each bench program is one file plus this.
 */
#ifndef BENCH_ANCHOR_H
#define BENCH_ANCHOR_H

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

/* The unique_id closes the event's attributes, where the client's encoder appends it; libcurl
 * reads POSTFIELDS at each transfer, so anchor_next_id() rewrites it in place. */
static char anchor_body[] =
    "{\"data\":{\"type\":\"event\",\"attributes\":{\"properties\":{\"item\":\"Bench\",\"value\":9.99},"
    "\"metric\":{\"data\":{\"type\":\"metric\",\"attributes\":{\"name\":\"Bench Call\"}}},"
    "\"profile\":{\"data\":{\"type\":\"profile\",\"attributes\":{\"email\":\"bench@example.com\"}}},"
    "\"unique_id\":\"00000000-0000-4000-8000-000000000000\"}}}";
#define ANCHOR_ID_AT (sizeof anchor_body - 1 - 4 - 36) /* before "}}} */

/* A random (version 4) uuid into body, a copy of anchor_body, from a pool of /dev/urandom bytes
 * as the core keeps one; 0, or -1 when no random bytes can be read. */
static int anchor_stamp(char *body) {
    static unsigned char pool[4096];
    static size_t at = sizeof pool;
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    char *o = body + ANCHOR_ID_AT;
    int i;
    if (at + 16 > sizeof pool) {
        FILE *f = fopen("/dev/urandom", "rb");
        size_t got = f ? fread(pool, 1, sizeof pool, f) : 0;
        if (f) fclose(f);
        if (got != sizeof pool) return -1;
        at = 0;
    }
    memcpy(b, pool + at, 16);
    at += 16;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) *o++ = '-';
        *o++ = hex[b[i] >> 4];
        *o++ = hex[b[i] & 15];
    }
    return 0;
}

/* A fresh uuid into anchor_body, the body of the handles anchor_handle sets up. */
static inline int anchor_next_id(void) {
    return anchor_stamp(anchor_body);
}

static size_t anchor_discard(char *p, size_t s, size_t n, void *ud) {
    (void)p;
    (void)ud;
    return s * n;
}

/* A handle set up to POST the event to url (…/api/events) with key; *hs gets the header list
 * (the caller frees it after the handle).  NULL when libcurl is out of memory. */
static CURL *anchor_handle(const char *url, const char *key, struct curl_slist **hs) {
    static const char *const fixed[] = {"Accept: application/vnd.api+json", "Content-Type: application/vnd.api+json",
                                        "revision: 2026-07-15", "User-Agent: lua-klaviyo/0.1.0"};
    char auth[512];
    struct curl_slist *l = NULL, *t;
    size_t i;
    CURL *h = curl_easy_init();
    if (!h) return NULL;
    snprintf(auth, sizeof auth, "Authorization: Klaviyo-API-Key %s", key);
    for (i = 0; i < sizeof fixed / sizeof *fixed + 2; i++) {
        const char *line = i < 4 ? fixed[i] : i == 4 ? auth : "Expect:";
        if (!(t = curl_slist_append(l, line))) {
            curl_slist_free_all(l);
            curl_easy_cleanup(h);
            return NULL;
        }
        l = t;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, anchor_body);
    curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)(sizeof anchor_body - 1));
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, anchor_discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "gzip");
    *hs = l;
    return h;
}

#endif
