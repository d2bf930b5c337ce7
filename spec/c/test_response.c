/*
 * test_response.c - what answers mean (kl_interpret: the same code kl_send runs on what
 * libcurl received): success and rate-limit facts, Klaviyo's JSON:API errors, and the
 * non-JSON bodies Klaviyo's edge sends (HTML 403, 52x); plus the tiny JSON reader.
 */
#include "ctest.h"
#include "json_read.h"
#include "kl_internal.h"
#include "klaviyo.h"

#include <stdlib.h>

static kl_client *c;

static int interp(long status, const kl_header *h, size_t nh, const char *body) {
    return kl_interpret(c, status, h, nh, body, body ? strlen(body) : 0, "op_x");
}

static void test_success(void) {
    kl_header h[] = {{"RateLimit-Limit", "700"},
                     {"ratelimit-remaining", " 699 "},
                     {"RATELIMIT-RESET", "42"},
                     {"Content-Type", "application/vnd.api+json"}};
    const kl_response *r;
    CHECK_INT(interp(200, h, 4, "{\"data\":[]}"), KL_OK);
    r = kl_last_response(c);
    CHECK_INT(r->status, 200);
    CHECK_INT(r->has_ratelimit, 1);
    CHECK_INT(r->rl_limit, 700);
    CHECK_INT(r->rl_remaining, 699);
    CHECK_INT(r->rl_reset, 42);
    CHECK_STR(r->body, "{\"data\":[]}");
    CHECK_INT(r->n_headers, 4);
    CHECK_STR(r->headers[0].name, "ratelimit-limit");
    CHECK_STR(r->headers[1].value, "699");
    CHECK_INT(interp(202, NULL, 0, NULL), KL_OK);
    r = kl_last_response(c);
    CHECK_INT(r->body_len, 0);
    CHECK_STR(r->body, "");
    CHECK_INT(r->has_ratelimit, 0);
    {
        kl_header partial[] = {{"ratelimit-limit", "700"}, {"ratelimit-remaining", "x"}, {"ratelimit-reset", "1"}};
        CHECK_INT(interp(204, partial, 3, NULL), KL_OK);
        CHECK_INT(kl_last_response(c)->has_ratelimit, 0);
    }
}

static void test_jsonapi_errors(void) {
    const kl_error *e;
    kl_header rid[] = {{"X-Klaviyo-Req-Id", "req-123"}};
    CHECK_INT(interp(400, rid, 1,
                     "{\"errors\":[{\"id\":\"e1\",\"status\":400,\"code\":\"invalid\",\"title\":\"Invalid input.\","
                     "\"detail\":\"The \\\"email\\\" is bad "
                     "\\u00e9\\ud83d\\ude00\",\"source\":{\"pointer\":\"/data/attributes/email\"}},"
                     "{\"code\":\"second\"}]}"),
              KL_ERR_HTTP);
    e = kl_last_error(c);
    CHECK_INT(c->err, KL_ERR_HTTP);
    CHECK_INT(e->kind, KL_ERR_HTTP);
    CHECK_INT(e->status, 400);
    CHECK_STR(e->code, "invalid");
    CHECK_STR(e->title, "Invalid input.");
    CHECK_STR(e->detail, "The \"email\" is bad \xc3\xa9\xf0\x9f\x98\x80");
    CHECK_STR(e->pointer, "/data/attributes/email");
    CHECK_STR(e->parameter, NULL);
    CHECK_STR(e->request_id, "req-123");
    CHECK_STR(e->operation, "op_x");
    CHECK(e->body != NULL && strstr(e->body, "second") != NULL);
    CHECK(strstr(c->errstr, "op_x: HTTP 400 invalid: The \"email\" is bad") == c->errstr);
    CHECK(strstr(c->errstr, "/data/attributes/email") != NULL);

    CHECK_INT(interp(400, NULL, 0,
                     "{\"errors\":[{\"id\":\"e2\",\"code\":\"invalid\",\"title\":\"t\",\"detail\":\"bad filter\","
                     "\"source\":{\"parameter\":\"filter\"}}]}"),
              KL_ERR_HTTP);
    e = kl_last_error(c);
    CHECK_STR(e->parameter, "filter");
    CHECK_STR(e->request_id, "e2"); /* no header: the error's id */

    CHECK_INT(interp(409, NULL, 0,
                     "{\"errors\":[{\"id\":\"x\",\"status\":409,\"code\":\"duplicate_profile\",\"title\":\"Conflict.\","
                     "\"detail\":\"A profile already exists with one of these "
                     "identifiers.\",\"source\":{\"pointer\":\"/data/attributes\"},"
                     "\"meta\":{\"duplicate_profile_id\":\"01HXYZ\"}}]}"),
              KL_ERR_HTTP);
    e = kl_last_error(c);
    CHECK_STR(e->code, "duplicate_profile");
    CHECK_STR(e->meta_json, "{\"duplicate_profile_id\":\"01HXYZ\"}");

    {
        kl_header ra[] = {{"Retry-After", "7"}};
        CHECK_INT(
            interp(
                429, ra, 1,
                "{\"errors\":[{\"id\":\"x\",\"status\":429,\"code\":\"throttled\",\"title\":\"Request was throttled.\","
                "\"detail\":\"Request was throttled. Expected available in 3 seconds.\",\"source\":{}}]}"),
            KL_ERR_HTTP);
        CHECK_STR(kl_last_error(c)->code, "throttled");
        CHECK(kl_last_error(c)->retry_after == 7.0); /* the header wins */
        CHECK_INT(interp(429, NULL, 0,
                         "{\"errors\":[{\"code\":\"throttled\",\"detail\":\"Request was throttled. Expected available "
                         "in 3 seconds.\"}]}"),
                  KL_ERR_HTTP);
        CHECK(kl_last_error(c)->retry_after == 3.0); /* no header: read from the detail */
        CHECK_INT(interp(503, NULL, 0, "{\"errors\":[]}"), KL_ERR_HTTP);
        CHECK(kl_last_error(c)->retry_after == -1.0);
        CHECK_STR(kl_last_error(c)->code, "service_unavailable");
    }
    {
        kl_header h401[] = {{"content-type", "application/vnd.api+json"}};
        CHECK_INT(interp(401, h401, 1,
                         "{\"errors\":[{\"code\":\"not_authenticated\",\"title\":\"Authentication credentials were not "
                         "provided.\"}]}"),
                  KL_ERR_HTTP);
        CHECK_STR(kl_last_error(c)->code, "not_authenticated");
        CHECK_STR(kl_last_error(c)->detail, NULL);
        CHECK(strstr(c->errstr, "Authentication credentials were not provided.") != NULL);
    }
}

static void test_non_json(void) {
    const kl_error *e;
    kl_header html[] = {{"Content-Type", "text/html; charset=UTF-8"}, {"CF-RAY", "8abc-IAD"}};
    CHECK_INT(
        interp(403, html, 2,
               "<!DOCTYPE html>\n<html><head><title>Just a moment...</title></head><body>challenge</body></html>"),
        KL_ERR_HTTP);
    e = kl_last_error(c);
    CHECK_INT(e->status, 403);
    CHECK_STR(e->code, "edge_blocked");
    CHECK_STR(e->detail, "Just a moment...");
    CHECK_STR(e->request_id, "8abc-IAD");
    CHECK(e->title && strstr(e->title, "non-JSON") && strstr(e->title, "text/html"));
    CHECK(strstr(c->errstr, "HTTP 403 edge_blocked: Just a moment...") != NULL);

    CHECK_INT(interp(522, html, 1, "<html><body><h1>Error 522</h1>\n  <p>Connection   timed out</p></body></html>"),
              KL_ERR_HTTP);
    e = kl_last_error(c);
    CHECK_STR(e->code, "edge_error");
    CHECK_STR(e->detail, "Error 522 Connection timed out");

    CHECK_INT(interp(502, NULL, 0, NULL), KL_ERR_HTTP);
    e = kl_last_error(c);
    CHECK_STR(e->code, "bad_gateway");
    CHECK_STR(e->detail, NULL);
    CHECK(e->title && strstr(e->title, "empty"));
    CHECK(strstr(c->errstr, "HTTP 502 bad_gateway") != NULL);

    CHECK_INT(interp(500, NULL, 0, "{\"message\": \"Internal error\"}"), KL_ERR_HTTP);
    CHECK_STR(kl_last_error(c)->detail, "Internal error");
    CHECK_STR(kl_last_error(c)->code, "server_error");

    CHECK_INT(interp(403, NULL, 0, "{\"errors\":[{\"code\":\"permission_denied\",\"detail\":\"missing scope\"}]}"),
              KL_ERR_HTTP);
    CHECK_STR(kl_last_error(c)->code, "permission_denied"); /* JSON 403: a scope, not the edge */

    CHECK_INT(interp(404, NULL, 0, "{\"errors\":[{\"code\":\"not_found\"}"), KL_ERR_HTTP); /* truncated JSON */
    CHECK_STR(kl_last_error(c)->code, "not_found");
    CHECK_INT(interp(404, NULL, 0, "plain text \x01 with\tcontrol"), KL_ERR_HTTP);
    CHECK_STR(kl_last_error(c)->detail, "plain text with control");
}

static void test_json_reader(void) {
    kj_doc d = {0};
    char *s;
    size_t n;
    int v;
    {
        const char *src = " {\"a\": [1, -2.5e3, true, false, null, \"x\\\\y\\/z\"], \"b\": {}} ";
        CHECK_INT(kj_parse(&d, src, strlen(src)), 0);
    }
    v = kj_get(&d, 0, "a");
    CHECK_INT(d.nodes[v].type, KJ_ARRAY);
    CHECK(kj_number(&d, kj_at(&d, v, 1)) == -2500.0);
    CHECK_INT(d.nodes[kj_at(&d, v, 4)].type, KJ_NULL);
    s = kj_string(&d, kj_at(&d, v, 5), &n);
    CHECK_STR(s, "x\\y/z");
    free(s);
    CHECK_INT(kj_at(&d, v, 6), -1);
    CHECK_INT(kj_get(&d, 0, "c"), -1);
    CHECK_INT(d.nodes[kj_get(&d, 0, "b")].type, KJ_OBJECT);
    {
        static const char *const bad[] = {"",      "{",          "[1,]",        "{\"a\" 1}", "01",
                                          "1.",    "-",          "\"\\x\"",     "\"a\nb\"",  "tru",
                                          "[1] x", "{\"a\":1,}", "\"\\u12g4\"", "<html>"};
        size_t i;
        for (i = 0; i < sizeof bad / sizeof bad[0]; i++) CHECK_INT(kj_parse(&d, bad[i], strlen(bad[i])), -1);
    }
    {
        char deep[200];
        memset(deep, '[', 100);
        memset(deep + 100, ']', 100);
        CHECK_INT(kj_parse(&d, deep, 200), -1); /* deeper than KJ_MAX_DEPTH */
        CHECK_INT(kj_parse(&d, deep + 100 - 10, 20), 0);
    }
    CHECK_INT(kj_parse(&d, "\"\\ud800x\"", 9), 0); /* lone surrogate: replaced, not invalid UTF-8 */
    s = kj_string(&d, 0, &n);
    CHECK_STR(s, "\xef\xbf\xbdx");
    free(s);
    kj_free(&d);
}

/* Many headers: the name/value store and its index grow past their first sizes, every name is
 * kept in ASCII lower case (only A-Z change), every value trimmed, all found again. */
static void test_many_headers(void) {
    enum { N = 300 };
    static char names[N][24], values[N][24];
    kl_header h[N];
    const kl_response *r;
    int i;
    char want[24];
    for (i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "X-Hdr-%d-\xc3\x89Z_a", i);
        snprintf(values[i], sizeof values[i], "\t v%d \r\n", i);
        h[i].name = names[i];
        h[i].value = values[i];
    }
    CHECK_INT(interp(200, h, N, "{}"), KL_OK);
    r = kl_last_response(c);
    CHECK_INT(r->n_headers, N);
    for (i = 0; i < N; i++) {
        snprintf(want, sizeof want, "x-hdr-%d-\xc3\x89z_a", i);
        CHECK_STR(r->headers[i].name, want);
        snprintf(want, sizeof want, "v%d", i);
        CHECK_STR(kl_resp_header(c, r->headers[i].name), want);
    }
}

/* A large answer's buffers are given back: by kl_shrink once the caller has what it needs, or
 * by the next request; small ones are kept for reuse. */
static void test_large_answer_shrinks(void) {
    enum { BIG = 3 * 1024 * 1024 };
    char *big = malloc(BIG + 1), *bigh = malloc(BIG / 2 + 1);
    kl_header h[1];
    if (!big || !bigh) {
        CHECK(0);
        free(big);
        free(bigh);
        return;
    }
    memset(big, 'x', BIG);
    big[BIG] = '\0';
    memset(bigh, 'h', BIG / 2);
    bigh[BIG / 2] = '\0';
    h[0].name = "X-Big";
    h[0].value = bigh;
    CHECK_INT(kl_interpret(c, 200, h, 1, big, BIG, "op_x"), KL_OK);
    CHECK(c->priv->ans.body.cap > BIG);
    CHECK(c->priv->ans.rhstore.cap > BIG / 2);
    kl_shrink(c);
    CHECK_INT(c->priv->ans.body.cap, 0);
    CHECK_INT(c->priv->ans.rhstore.cap, 0);
    CHECK_INT(kl_last_response(c)->body_len, 0);
    CHECK_STR(kl_last_response(c)->body, "");
    CHECK_INT(kl_last_response(c)->n_headers, 0);
    /* an error keeps a copy of its body: given back too */
    CHECK_INT(kl_interpret(c, 500, NULL, 0, big, BIG, "op_x"), KL_ERR_HTTP);
    CHECK(kl_last_error(c)->body_len == BIG);
    kl_shrink(c);
    CHECK(kl_last_error(c)->body == NULL);
    CHECK_INT(c->priv->ans.body.cap, 0);
    CHECK_STR(kl_last_error(c)->code, "server_error");
    /* without kl_shrink, the next answer gives it back */
    CHECK_INT(kl_interpret(c, 200, NULL, 0, big, BIG, "op_x"), KL_OK);
    CHECK_INT(interp(200, NULL, 0, "{}"), KL_OK);
    CHECK(c->priv->ans.body.cap > 0 && c->priv->ans.body.cap <= KL_KEEP_BYTES);
    /* a small answer's buffer stays for the next one */
    kl_shrink(c);
    CHECK(c->priv->ans.body.cap > 0);
    CHECK_STR(kl_last_response(c)->body, "{}");
    free(big);
    free(bigh);
}

int main(void) {
    kl_options o;
    memset(&o, 0, sizeof o);
    o.api_key = "pk_test";
    c = kl_new(&o);
    if (!c || c->err) {
        printf("0 passed, 1 failed\n");
        return 1;
    }
    test_success();
    test_jsonapi_errors();
    test_non_json();
    test_json_reader();
    test_many_headers();
    test_large_answer_shrinks();
    kl_free(c);
    CTEST_END();
}
