/*
 * track.c - send one event to Klaviyo (or the emulator) with the C API, no Lua involved.
 *
 *   track [-u BASE_URL] [-k API_KEY] [-m METRIC] [-e EMAIL] [-p KEY=VALUE]...
 *
 * BASE_URL and API_KEY default to $KLAVIYO_BASE_URL and $KLAVIYO_API_KEY.  The event gets
 * a unique_id so that sending it again can never fire a flow twice.
 */
#define _POSIX_C_SOURCE 200809L
#include "klaviyo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* JSON string body: the few escapes RFC 8259 requires; other bytes pass (UTF-8 expected). */
static int put_json_string(char *out, size_t cap, size_t *len, const char *s) {
    static const char hex[] = "0123456789abcdef";
    if (*len + 1 >= cap) return -1;
    out[(*len)++] = '"';
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (*len + 7 >= cap) return -1;
        if (ch == '"' || ch == '\\') {
            out[(*len)++] = '\\';
            out[(*len)++] = (char)ch;
        } else if (ch < 0x20) {
            memcpy(out + *len, "\\u00", 4);
            out[*len + 4] = hex[ch >> 4];
            out[*len + 5] = hex[ch & 15];
            *len += 6;
        } else {
            out[(*len)++] = (char)ch;
        }
    }
    if (*len + 1 >= cap) return -1;
    out[(*len)++] = '"';
    return 0;
}

static int put(char *out, size_t cap, size_t *len, const char *s) {
    size_t n = strlen(s);
    if (*len + n >= cap) return -1;
    memcpy(out + *len, s, n);
    *len += n;
    return 0;
}

static void usage(void) {
    fprintf(stderr,
            "usage: track [-u BASE_URL] [-k API_KEY] [-m METRIC] [-e EMAIL] [-p KEY=VALUE]...\n"
            "       BASE_URL and API_KEY default to $KLAVIYO_BASE_URL and $KLAVIYO_API_KEY\n");
}

int main(int argc, char **argv) {
    const char *base = getenv("KLAVIYO_BASE_URL"), *key = getenv("KLAVIYO_API_KEY");
    const char *metric = "Tracked From C", *email = "track@example.com";
    const char *props[32];
    size_t nprops = 0, len = 0, i;
    char body[8192], uid[64];
    kl_options o;
    kl_client *c;
    kl_request r;
    int opt, rc, fail = 0;

    while ((opt = getopt(argc, argv, "u:k:m:e:p:h")) != -1) {
        switch (opt) {
        case 'u': base = optarg; break;
        case 'k': key = optarg; break;
        case 'm': metric = optarg; break;
        case 'e': email = optarg; break;
        case 'p':
            if (nprops == sizeof props / sizeof props[0] || !strchr(optarg, '=')) {
                usage();
                return 2;
            }
            props[nprops++] = optarg;
            break;
        default: usage(); return 2;
        }
    }
    if (!key) {
        fprintf(stderr, "track: no API key (-k or $KLAVIYO_API_KEY)\n");
        usage();
        return 2;
    }

    snprintf(uid, sizeof uid, "track-%ld-%ld", (long)time(NULL), (long)getpid());
    fail |= put(body, sizeof body, &len,
                "{\"data\":{\"type\":\"event\",\"attributes\":{\"metric\":{\"data\":{"
                "\"type\":\"metric\",\"attributes\":{\"name\":");
    fail |= put_json_string(body, sizeof body, &len, metric);
    fail |= put(body, sizeof body, &len, "}}},\"profile\":{\"data\":{\"type\":\"profile\",\"attributes\":{\"email\":");
    fail |= put_json_string(body, sizeof body, &len, email);
    fail |= put(body, sizeof body, &len, "}}},\"unique_id\":");
    fail |= put_json_string(body, sizeof body, &len, uid);
    fail |= put(body, sizeof body, &len, ",\"properties\":{");
    for (i = 0; i < nprops; i++) {
        char name[256];
        const char *eq = strchr(props[i], '=');
        size_t n = (size_t)(eq - props[i]);
        if (n >= sizeof name) {
            fprintf(stderr, "track: property name too long\n");
            return 2;
        }
        memcpy(name, props[i], n);
        name[n] = '\0';
        if (i) fail |= put(body, sizeof body, &len, ",");
        fail |= put_json_string(body, sizeof body, &len, name);
        fail |= put(body, sizeof body, &len, ":");
        fail |= put_json_string(body, sizeof body, &len, eq + 1);
    }
    fail |= put(body, sizeof body, &len, "}}}}");
    if (fail) {
        fprintf(stderr, "track: event too large\n");
        return 2;
    }

    memset(&o, 0, sizeof o);
    o.base_url = base; /* NULL: https://a.klaviyo.com */
    o.api_key = key;
    c = kl_new(&o);
    if (!c) {
        fprintf(stderr, "track: out of memory\n");
        return 1;
    }
    if (c->err) {
        fprintf(stderr, "track: %s\n", c->errstr);
        kl_free(c);
        return 1;
    }
    memset(&r, 0, sizeof r);
    r.operation = "create_event";
    r.method = "POST";
    r.path = "/api/events";
    r.body = body;
    r.body_len = len;
    r.auth = KL_AUTH_PRIVATE;
    /* create_event's limits (operation table); the unique_id makes a retry record it once */
    r.limit_burst = 350;
    r.limit_steady = 3500;
    r.safe = KL_SAFE_YES;
    rc = kl_send(c, &r);
    if (rc == KL_OK) {
        const kl_response *res = kl_last_response(c);
        printf("event \"%s\" for %s accepted: HTTP %ld, unique_id %s", metric, email, res->status, uid);
        if (res->has_ratelimit) printf(", rate limit %ld/%ld left", res->rl_remaining, res->rl_limit);
        printf("\n");
    } else {
        const kl_error *e = kl_last_error(c);
        fprintf(stderr, "track: %s\n", c->errstr);
        if (e->request_id) fprintf(stderr, "track: request id %s\n", e->request_id);
    }
    kl_free(c);
    return rc == KL_OK ? 0 : 1;
}
