/*
 * test_redact.c - a server that echoes the client's key or token in an error (title,
 * detail, source, meta, body, a header) never gets it into the error: kl_interpret (what
 * kl_send and the nginx transport run on every answer) replaces it.
 */
#include "ctest.h"
#include "ctest_client.h"
#include "kl_internal.h"
#include "klaviyo.h"

#include <stdio.h>

static kl_client *client(const char *key, const char *token) {
    kl_client *c = ctest_client("http://127.0.0.1:9", key, token, NULL);
    CHECK(c != NULL && c->err == KL_OK);
    return c;
}

/* 1 when `secret` appears in no field of c's last error, its message or its headers */
static int clean(kl_client *c, const char *secret) {
    const kl_error *e = kl_last_error(c);
    const kl_response *r = kl_last_response(c);
    const char *f[] = {e->code,       e->title,     e->detail,    e->pointer, e->parameter,
                       e->request_id, e->operation, e->meta_json, c->errstr};
    size_t i;
    for (i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i] && strstr(f[i], secret)) return 0;
    if (e->body && strstr(e->body, secret)) return 0;
    if (strstr(r->body, secret)) return 0;
    for (i = 0; i < r->n_headers; i++)
        if (strstr(r->headers[i].name, secret) || strstr(r->headers[i].value, secret)) return 0;
    return 1;
}

static void echo(kl_client *c, const char *secret) {
    char body[1024];
    kl_header h[] = {{"X-Echo", NULL}, {"X-Klaviyo-Req-Id", NULL}, {"X-After", "kept"}};
    char hv[200], rid[200];
    snprintf(hv, sizeof hv, "key=%s;again=%s", secret, secret);
    snprintf(rid, sizeof rid, "req-%s", secret);
    h[0].value = hv;
    h[1].value = rid;
    snprintf(body, sizeof body,
             "{\"errors\":[{\"code\":\"bad_%s\",\"title\":\"%s\",\"detail\":\"your key %s is %s\","
             "\"source\":{\"pointer\":\"/%s\"},\"meta\":{\"%s\":[\"%s\"]}}]}",
             secret, secret, secret, secret, secret, secret, secret);
    CHECK_INT(kl_interpret(c, 400, h, 3, body, strlen(body), "op"), KL_ERR_HTTP);
}

int main(void) {
    const char *key = "pk_redact_0123456789abcdef", *token = "tok-abcdefghijklmnop";
    kl_client *c = client(key, NULL), *t = client(key, token), *s = client("pk_short", NULL);
    echo(c, key);
    CHECK(clean(c, key));
    CHECK(strstr(kl_last_error(c)->detail, "your key [redacted] is [redacted]") != NULL);
    CHECK(strstr(kl_last_error(c)->meta_json, "{\"[redacted]\":[\"[redacted]\"]}") != NULL);
    CHECK_INT(kl_last_response(c)->n_headers, 3);
    CHECK_STR(kl_last_response(c)->headers[0].value, "key=[redacted];again=[redacted]");
    CHECK_STR(kl_last_response(c)->headers[2].name, "x-after");
    CHECK_STR(kl_last_response(c)->headers[2].value, "kept");
    CHECK_INT(kl_last_error(c)->body_len, strlen(kl_last_error(c)->body));
    CHECK_INT(kl_last_response(c)->body_len, strlen(kl_last_response(c)->body));
    /* the token too, and the key beside it */
    echo(t, token);
    CHECK(clean(t, token));
    echo(t, key);
    CHECK(clean(t, key));
    /* a secret shorter than the mark becomes stars, never longer text */
    echo(s, "pk_short");
    CHECK(clean(s, "pk_short"));
    CHECK(strstr(kl_last_error(s)->detail, "your key ******** is ********") != NULL);
    /* a success is the caller's data: left as it came */
    CHECK_INT(kl_interpret(c, 200, NULL, 0, key, strlen(key), "op"), KL_OK);
    CHECK_STR(kl_last_response(c)->body, key);
    kl_free(c);
    kl_free(t);
    kl_free(s);
    CTEST_END();
}
