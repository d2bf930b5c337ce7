/*
 * fuzz_core.c - libFuzzer target for the parts that read untrusted bytes: answers (status,
 * headers, body -> kl_interpret and its JSON reader) and request pieces a caller may pass
 * through from elsewhere (links.next URLs, path parameters, query values, revisions).
 * Built by `make fuzz-core` with clang -fsanitize=fuzzer,address,undefined.
 */
#include "json_read.h"
#include "klaviyo.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static kl_client *client(void) {
    static kl_client *c;
    if (!c) {
        kl_options o;
        memset(&o, 0, sizeof o);
        o.base_url = "http://127.0.0.1:8787";
        o.api_key = "pk_fuzz";
        o.public_key = "AbC123";
        c = kl_new(&o);
        if (!c || c->err) abort();
    }
    return c;
}

/* splits data at the first NUL bytes into up to n strings (the rest is the last one) */
static size_t split(char *buf, size_t len, char **out, size_t n) {
    size_t k = 0, i, start = 0;
    for (i = 0; i < len && k + 1 < n; i++)
        if (buf[i] == '\0') {
            out[k++] = buf + start;
            start = i + 1;
        }
    out[k++] = buf + start;
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kl_client *c = client();
    char *buf;
    if (size < 2) return 0;
    buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    switch (data[0] % 4) {
    case 0: { /* an answer: headers "name\0value\0name\0value\0...body" */
        char *parts[9];
        kl_header h[4];
        size_t n = split(buf, size - 1, parts, 9), nh = 0, i;
        long status = 100 + (long)(data[0] % 500);
        for (i = 0; i + 1 < n - 1 && nh < 4; i += 2) {
            h[nh].name = parts[i];
            h[nh].value = parts[i + 1];
            nh++;
        }
        kl_interpret(c, status, h, nh, parts[n - 1], strlen(parts[n - 1]), "fuzz");
        break;
    }
    case 1: { /* a JSON document */
        kj_doc d = {0};
        if (kj_parse(&d, buf, size - 1) == 0) {
            int e = kj_at(&d, kj_get(&d, 0, "errors"), 0);
            char *s = kj_string(&d, kj_get(&d, e, "detail"), NULL);
            free(s);
        }
        kj_free(&d);
        break;
    }
    case 2: { /* a links.next URL */
        kl_request r;
        kl_param h = {"Authorization", "Basic aWQ6c2VjcmV0", NULL, 0};
        memset(&r, 0, sizeof r);
        r.method = "GET";
        r.url = buf;
        r.auth = data[0] & 4 ? KL_AUTH_PUBLIC : data[0] & 8 ? KL_AUTH_CLIENT : KL_AUTH_PRIVATE;
        if (r.auth == KL_AUTH_CLIENT) {
            r.headers = &h;
            r.n_headers = 1;
        }
        kl_build(c, &r, NULL);
        break;
    }
    default: { /* path template, path parameter, query name and value, revision */
        char *parts[5];
        size_t n = split(buf, size - 1, parts, 5);
        kl_request r;
        kl_param q;
        const char *pp[1];
        memset(&r, 0, sizeof r);
        r.method = "POST";
        r.path = parts[0];
        pp[0] = n > 1 ? parts[1] : "x";
        r.path_params = pp;
        r.n_path_params = strchr(parts[0], '{') ? 1 : 0;
        memset(&q, 0, sizeof q);
        q.name = n > 2 ? parts[2] : "filter";
        q.value = n > 3 ? parts[3] : "";
        r.query = &q;
        r.n_query = 1;
        r.revision = n > 4 ? parts[4] : NULL;
        r.body = "{}";
        r.body_len = 2;
        kl_build(c, &r, NULL);
        break;
    }
    }
    free(buf);
    return 0;
}
