/*
 * ctest_client.h - a client for a C test that builds requests without the network: the
 * base URL and credentials it names, every other option zero.
 */
#ifndef KL_CTEST_CLIENT_H
#define KL_CTEST_CLIENT_H

#include "klaviyo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* kl_new's answer, which may carry an error for the test to check; no client at all (out of
 * memory) ends the test with status 2, as nothing can be checked without one. */
static kl_client *ctest_client(const char *base, const char *key, const char *token, const char *pub) {
    kl_options o;
    kl_client *c;
    memset(&o, 0, sizeof o);
    o.base_url = base;
    o.api_key = key;
    o.access_token = token;
    o.public_key = pub;
    c = kl_new(&o);
    if (!c) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return c;
}

#endif
