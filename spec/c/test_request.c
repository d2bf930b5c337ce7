/*
 * test_request.c - request building without the network: URLs (path parameters, query
 * names and values, lists), headers, and every local refusal.  kl_build runs exactly the
 * checks kl_send runs before it touches libcurl.
 */
#include "ctest.h"
#include "ctest_client.h"
#include "kl_internal.h"

#include <strings.h>

#define KEY "pk_0123456789abcdef"

static const char *header(const kl_built *b, const char *name) {
    size_t i;
    for (i = 0; i < b->n_headers; i++)
        if (strcmp(b->headers[i].name, name) == 0) return b->headers[i].value;
    return NULL;
}

static void test_pct(void) {
    kl_buf b = {0};
    const char *all = "AZaz09-._~ !\"#$%&'()*+,/:;=?@[]\\^`{|}";
    kl_pct_encode(&b, all, strlen(all));
    CHECK_STR(b.p, "AZaz09-._~%20%21%22%23%24%25%26%27%28%29%2A%2B%2C%2F%3A%3B%3D%3F%40%5B%5D%5C%5E%60%7B%7C%7D");
    kl_buf_reset(&b);
    kl_pct_encode(&b, "\xc3\xa9\x01\x7f\xff", 5); /* UTF-8 e-acute, control chars, a stray byte */
    CHECK_STR(b.p, "%C3%A9%01%7F%FF");
    kl_buf_reset(&b);
    kl_pct_encode(&b, "", 0);
    CHECK_STR(b.p, "");
    kl_buf_free(&b);
}

static void test_urls(void) {
    kl_client *c = ctest_client("http://127.0.0.1:8787/", KEY, NULL, "AbC123");
    const kl_built *b = NULL;
    const char *pp[] = {"id with space/slash?#&"};
    const char *fields[] = {"email", "first_name", "a,b"};
    kl_param q[] = {{"filter", "equals(email,\"a+b@x.com\")", NULL, 0},
                    {"fields[profile]", NULL, fields, 3},
                    {"additional-fields[profile]", "subscriptions", NULL, 0},
                    {"page[cursor]", "x y&z#w=", NULL, 0},
                    {"page[size]", "20", NULL, 0}};
    kl_request r;
    CHECK_INT(c->err, KL_OK);

    memset(&r, 0, sizeof r);
    r.operation = "get_profile";
    r.method = "GET";
    r.path = "/api/profiles/{id}";
    r.path_params = pp;
    r.n_path_params = 1;
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, "http://127.0.0.1:8787/api/profiles/id%20with%20space%2Fslash%3F%23%26");
    CHECK_STR(b->method, "GET");
    CHECK_STR(header(b, "Accept"), "application/vnd.api+json");
    CHECK_STR(header(b, "Content-Type"), NULL); /* no body, no content type */
    CHECK_STR(header(b, "revision"), KL_DEFAULT_REVISION);
    CHECK_STR(header(b, "User-Agent"), "lua-klaviyo/" KL_VERSION);
    CHECK_STR(header(b, "Authorization"), "Klaviyo-API-Key " KEY);
    { /* literal runs before, between and after placeholders */
        const char *two[] = {"L 1", "p/2"};
        r.path = "/api/lists/{id}/relationships/{rel}/x";
        r.path_params = two;
        r.n_path_params = 2;
        CHECK_INT(kl_build(c, &r, &b), KL_OK);
        CHECK_STR(b->url, "http://127.0.0.1:8787/api/lists/L%201/relationships/p%2F2/x");
    }

    r.path = "/api/profiles";
    r.path_params = NULL;
    r.n_path_params = 0;
    r.query = q;
    r.n_query = 5;
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url,
              "http://127.0.0.1:8787/api/profiles"
              "?filter=equals%28email%2C%22a%2Bb%40x.com%22%29"
              "&fields%5Bprofile%5D=email,first_name,a%2Cb"
              "&additional-fields%5Bprofile%5D=subscriptions"
              "&page%5Bcursor%5D=x%20y%26z%23w%3D"
              "&page%5Bsize%5D=20");

    /* body: content type, bytes passed as given; per-call revision */
    r.method = "POST";
    r.n_query = 0;
    r.body = "{\"data\":{}}";
    r.body_len = strlen(r.body);
    r.revision = "2024-10-15.pre";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(header(b, "Content-Type"), "application/vnd.api+json");
    CHECK_STR(header(b, "revision"), "2024-10-15.pre");
    CHECK(b->body == r.body && b->body_len == 11);
    /* headers kept from one request to the next only when they would be the same */
    r.method = "GET";
    r.body = NULL;
    r.body_len = 0;
    r.revision = NULL;
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(header(b, "Content-Type"), NULL);
    CHECK_STR(header(b, "revision"), KL_DEFAULT_REVISION);
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_INT(b->n_headers, 4);
    CHECK_STR(header(b, "Authorization"), "Klaviyo-API-Key " KEY);
    r.revision = "2025-01-15";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(header(b, "revision"), "2025-01-15");
    r.revision = NULL;
    r.method = "POST";
    r.body = "{}";
    r.body_len = 2;
    { /* a body with its own Content-Type (a multipart form) keeps it, once; the next
         * body without one is JSON:API again */
        kl_param ct[] = {{"content-type", "multipart/form-data; boundary=b", NULL, 0}};
        size_t k, n = 0;
        r.headers = ct;
        r.n_headers = 1;
        CHECK_INT(kl_build(c, &r, &b), KL_OK);
        for (k = 0; k < b->n_headers; k++) n += strcasecmp(b->headers[k].name, "Content-Type") == 0;
        CHECK_INT(n, 1);
        CHECK_STR(header(b, "content-type"), "multipart/form-data; boundary=b");
        r.headers = NULL;
        r.n_headers = 0;
        CHECK_INT(kl_build(c, &r, &b), KL_OK);
        CHECK_STR(header(b, "Content-Type"), "application/vnd.api+json");
    }

    /* public auth: company_id added, no Authorization */
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.path = "/client/subscriptions";
    r.auth = KL_AUTH_PUBLIC;
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, "http://127.0.0.1:8787/client/subscriptions?company_id=AbC123");
    CHECK_STR(header(b, "Authorization"), NULL);
    /* ...not added twice when the caller gives it */
    r.query = q;
    {
        kl_param cq[] = {{"company_id", "AbC123", NULL, 0}};
        r.query = cq;
        r.n_query = 1;
        CHECK_INT(kl_build(c, &r, &b), KL_OK);
        CHECK_STR(b->url, "http://127.0.0.1:8787/client/subscriptions?company_id=AbC123");
    }

    /* a links.next URL: its query is kept byte for byte */
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.url = "http://127.0.0.1:8787/api/profiles/?page%5Bcursor%5D=bmV4dDo6aWQ6OjQz&page%5Bsize%5D=2";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, r.url);
    r.url = "HTTP://127.0.0.1:8787/api/profiles#frag";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, "http://127.0.0.1:8787/api/profiles");

    /* extra headers pass; reserved ones and injected line breaks do not */
    {
        kl_param h[] = {{"X-Klaviyo-API-Filters", "a b", NULL, 0}};
        kl_param bad[] = {{"Authorization", "x", NULL, 0}};
        kl_param crlf[] = {{"X-A", "a\r\nInjected: 1", NULL, 0}};
        kl_param badname[] = {{"X A", "a", NULL, 0}};
        r.url = NULL;
        r.path = "/api/profiles";
        r.headers = h;
        r.n_headers = 1;
        CHECK_INT(kl_build(c, &r, &b), KL_OK);
        CHECK_STR(header(b, "X-Klaviyo-API-Filters"), "a b");
        r.headers = bad;
        CHECK_INT(kl_build(c, &r, &b), KL_ERR_USAGE);
        r.headers = crlf;
        CHECK_INT(kl_build(c, &r, &b), KL_ERR_USAGE);
        r.headers = badname;
        CHECK_INT(kl_build(c, &r, &b), KL_ERR_USAGE);
    }
    kl_free(c);

    /* base URL with a path prefix and default port */
    c = ctest_client("https://A.Klaviyo.com/prefix/", KEY, NULL, NULL);
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.path = "/api/events";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, "https://a.klaviyo.com/prefix/api/events");
    r.path = NULL;
    r.url = "https://a.klaviyo.com:443/prefix/api/events?page%5Bcursor%5D=abc";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, "https://a.klaviyo.com/prefix/api/events?page%5Bcursor%5D=abc");
    r.url = "https://a.klaviyo.com/other/api/events";
    CHECK_INT(kl_build(c, &r, &b), KL_ERR_REFUSED);
    CHECK_STR(kl_last_error(c)->code, "foreign_url");
    kl_free(c);

    /* a bearer token wins over the key */
    c = ctest_client("https://a.klaviyo.com", KEY, "tok_1", NULL);
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.path = "/api/events";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(header(b, "Authorization"), "Bearer tok_1");
    CHECK_INT(kl_set_access_token(c, "tok_2"), KL_OK);
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(header(b, "Authorization"), "Bearer tok_2");
    CHECK_INT(kl_set_access_token(c, "bad tok"), KL_ERR_REFUSED);
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(header(b, "Authorization"), "Bearer tok_2"); /* the refused token replaced nothing */
    CHECK_INT(kl_set_access_token(c, NULL), KL_OK);
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(header(b, "Authorization"), "Klaviyo-API-Key " KEY);
    kl_free(c);
}

/* the refusal's code, and that the secret is nowhere in the error */
static void refused(kl_client *c, const kl_request *r, int kind, const char *code) {
    const kl_built *b = NULL;
    const kl_error *e;
    CHECK_INT(kl_build(c, r, &b), kind);
    e = kl_last_error(c);
    CHECK_STR(e->code, code);
    CHECK(strstr(c->errstr, KEY) == NULL && strstr(c->errstr, "pk_") == NULL);
    CHECK(e->detail == NULL || strstr(e->detail, KEY) == NULL);
}

static void test_refusals(void) {
    kl_client *c = ctest_client("http://localhost:8787", KEY, NULL, "AbC123");
    kl_client *pub = ctest_client("http://localhost:8787", NULL, NULL, "AbC123");
    kl_client *priv = ctest_client("http://localhost:8787", KEY, NULL, NULL);
    kl_request r;
    const char *pp2[] = {"a", "b"};
    const char *pp1[] = {"a"};
    const char *empty[] = {""};
    memset(&r, 0, sizeof r);
    r.operation = "op";
    r.method = "GET";

    r.path = "/client/profiles";
    refused(c, &r, KL_ERR_REFUSED, "private_key_to_client");
    r.url = "http://localhost:8787/client/profiles?x=1";
    r.path = NULL;
    refused(c, &r, KL_ERR_REFUSED, "private_key_to_client");
    r.url = NULL;
    r.path = "/api/profiles";
    r.auth = KL_AUTH_PUBLIC;
    refused(c, &r, KL_ERR_REFUSED, "public_key_to_api");
    r.path = "/client/profiles";
    refused(priv, &r, KL_ERR_REFUSED, "missing_credential");
    r.auth = KL_AUTH_PRIVATE;
    r.path = "/api/profiles";
    refused(pub, &r, KL_ERR_REFUSED, "missing_credential");
    r.path = "/api/../client/profiles";
    refused(c, &r, KL_ERR_REFUSED, "invalid_path");
    r.path = NULL;
    r.url = "http://localhost:8787/api/%2e%2e/client/x";
    refused(c, &r, KL_ERR_REFUSED, "invalid_path");
    r.url = "http://localhost:8787/api/profiles?page%5Bcursor%5D=a%2e/./b";
    CHECK_INT(kl_build(c, &r, NULL), KL_OK); /* dots in the query are data, not path segments */
    r.url = "http://localhost:8788/api/profiles";
    refused(c, &r, KL_ERR_REFUSED, "foreign_url");
    r.url = "https://localhost:8787/api/profiles";
    refused(c, &r, KL_ERR_REFUSED, "foreign_url");
    r.url = "http://evil.example:8787/api/profiles";
    refused(c, &r, KL_ERR_REFUSED, "foreign_url");
    r.url = "http://localhost:8787@evil.example/api/profiles";
    refused(c, &r, KL_ERR_REFUSED, "invalid_url");
    r.url = "ftp://localhost:8787/api/profiles";
    refused(c, &r, KL_ERR_REFUSED, "invalid_url");
    r.url = NULL;
    r.path = "/api/profiles";
    r.revision = "2026-7-15";
    refused(c, &r, KL_ERR_REFUSED, "invalid_revision");
    r.revision = "2026-07-15\r\nX: y";
    refused(c, &r, KL_ERR_REFUSED, "invalid_revision");
    r.revision = NULL;

    /* programmer errors */
    r.path = "/api/profiles/{id}";
    refused(c, &r, KL_ERR_USAGE, "invalid_path_params");
    r.path_params = pp2;
    r.n_path_params = 2;
    refused(c, &r, KL_ERR_USAGE, "invalid_path_params");
    r.path_params = empty;
    r.n_path_params = 1;
    refused(c, &r, KL_ERR_USAGE, "invalid_path_params");
    r.path_params = NULL;
    r.n_path_params = 0;
    r.path = "/api/profiles?x=1";
    refused(c, &r, KL_ERR_USAGE, "invalid_path");
    r.path = "/api/pro}files";
    refused(c, &r, KL_ERR_USAGE, "invalid_path");
    r.path_params = pp1;
    r.n_path_params = 1;
    r.path = "/api/profiles/{id}/rel ationships"; /* a bad character after a placeholder */
    refused(c, &r, KL_ERR_USAGE, "invalid_path");
    r.path_params = NULL;
    r.n_path_params = 0;
    r.path = "api/profiles";
    refused(c, &r, KL_ERR_USAGE, "invalid_path");
    r.path = "/api/profiles";
    r.method = "get";
    refused(c, &r, KL_ERR_USAGE, "invalid_method");
    r.method = "GET";
    r.url = "http://localhost:8787/api/profiles";
    refused(c, &r, KL_ERR_USAGE, "invalid_request"); /* path and url both */
    kl_free(c);
    kl_free(pub);
    kl_free(priv);
}

static void new_refused(const char *base, const char *key, const char *token, const char *pub, const char *rev,
                        const char *code) {
    kl_options o;
    kl_client *c;
    kl_request r;
    memset(&o, 0, sizeof o);
    o.base_url = base;
    o.api_key = key;
    o.access_token = token;
    o.public_key = pub;
    o.revision = rev;
    c = kl_new(&o);
    CHECK(c != NULL);
    if (!c) return;
    CHECK_INT(c->err, KL_ERR_REFUSED);
    CHECK_STR(kl_last_error(c)->code, code);
    CHECK(!key || !*key || strstr(c->errstr, key) == NULL);
    CHECK(!token || strstr(c->errstr, token) == NULL);
    CHECK(!kl_last_error(c)->detail || !key || !*key || strstr(kl_last_error(c)->detail, key) == NULL);
    /* a refused client never sends */
    memset(&r, 0, sizeof r);
    r.method = "GET";
    r.path = "/api/profiles";
    CHECK_INT(kl_build(c, &r, NULL), KL_ERR_REFUSED);
    kl_free(c);
}

static void test_settings(void) {
    kl_client *c;
    new_refused("http://example.com", KEY, NULL, NULL, NULL, "insecure_transport");
    new_refused("http://10.0.0.1:80", NULL, "tok_secret", NULL, NULL, "insecure_transport");
    new_refused("http://128.0.0.1", KEY, NULL, NULL, NULL, "insecure_transport");
    new_refused(NULL, "pk_with space", NULL, NULL, NULL, "invalid_credential");
    new_refused(NULL, "pk_x\r\nX-Evil: 1", NULL, NULL, NULL, "invalid_credential");
    new_refused(NULL, "pk_x\n", NULL, NULL, NULL, "invalid_credential");
    new_refused(NULL, "pk_\x01x", NULL, NULL, NULL, "invalid_credential");
    new_refused(NULL, "", NULL, NULL, NULL, "invalid_credential");
    new_refused(NULL, NULL, "tok \t", NULL, NULL, "invalid_credential");
    new_refused(NULL, NULL, NULL, "Ab C", NULL, "invalid_credential");
    new_refused(NULL, KEY, NULL, NULL, "2026-02-30", "invalid_revision");
    new_refused(NULL, KEY, NULL, NULL, "", "invalid_revision");
    new_refused("gopher://a.klaviyo.com", KEY, NULL, NULL, NULL, "invalid_base_url");
    new_refused("https://", KEY, NULL, NULL, NULL, "invalid_base_url");
    new_refused("https://a.klaviyo.com:99999", KEY, NULL, NULL, NULL, "invalid_base_url");
    new_refused("https://a.klaviyo.com?x=1", KEY, NULL, NULL, NULL, "invalid_base_url");
    /* plain http is fine for loopback, and for a public key anywhere (not a secret) */
    c = ctest_client("http://127.8.9.10:1234", KEY, NULL, NULL);
    CHECK_INT(c->err, KL_OK);
    kl_free(c);
    c = ctest_client("http://[::1]:1234", KEY, NULL, NULL);
    CHECK_INT(c->err, KL_OK);
    kl_free(c);
    c = ctest_client("http://example.com", NULL, NULL, "AbC123");
    CHECK_INT(c->err, KL_OK);
    CHECK_INT(kl_set_access_token(c, "tok_x"), KL_ERR_REFUSED); /* a token would go over plain http */
    CHECK_STR(kl_last_error(c)->code, "insecure_transport");
    kl_free(c);
    kl_free(NULL); /* safe */
}

static void test_loopback_and_urls(void) {
    kl_url u;
    const char *why;
    CHECK(kl_host_is_loopback("localhost"));
    CHECK(kl_host_is_loopback("LOCALHOST"));
    CHECK(kl_host_is_loopback("127.0.0.1"));
    CHECK(kl_host_is_loopback("127.255.1.2"));
    CHECK(kl_host_is_loopback("[::1]"));
    CHECK(kl_host_is_loopback("[0:0:0:0:0:0:0:1]"));
    CHECK(kl_host_is_loopback("[::ffff:127.0.0.1]"));
    CHECK(!kl_host_is_loopback("127.0.0.1.evil.com"));
    CHECK(!kl_host_is_loopback("localhost.evil.com"));
    CHECK(!kl_host_is_loopback("128.0.0.1"));
    CHECK(!kl_host_is_loopback("[::2]"));
    CHECK(!kl_host_is_loopback("0x7f000001"));
    CHECK(!kl_host_is_loopback(""));
    CHECK_INT(kl_url_parse("https://A.b.C:8443/x/y?q=1#f", &u, &why), 0);
    CHECK_STR(u.host, "a.b.c");
    CHECK_INT(u.port, 8443);
    CHECK_STR(u.path, "/x/y");
    CHECK_STR(u.query, "q=1");
    kl_url_free(&u);
    CHECK_INT(kl_url_parse("http://[::1]/", &u, &why), 0);
    CHECK_STR(u.host, "[::1]");
    CHECK_INT(u.port, 80);
    kl_url_free(&u);
    CHECK_INT(kl_url_parse("http://a b/", &u, &why), -1);
    CHECK_INT(kl_url_parse("http://user:pw@host/", &u, &why), -1);
    CHECK_INT(kl_url_parse("http://host:/", &u, &why), -1);
    CHECK_INT(kl_url_parse("http://[::1/", &u, &why), -1);
    CHECK_INT(kl_url_parse("//host/", &u, &why), -1);
}

/* auth=client: an OAuth endpoint's request carries its own Basic credential, Accept and
 * Content-Type; no key, token or revision; /oauth/ paths only, never over plain remote http */
static void test_client_auth(void) {
    kl_client *c = ctest_client("http://127.0.0.1:8787", KEY, NULL, NULL);
    kl_request r;
    const kl_built *b;
    kl_param h[] = {{"authorization", "Basic aWQ6c2VjcmV0", NULL, 0},
                    {"Content-Type", "application/x-www-form-urlencoded", NULL, 0},
                    {"Accept", "application/json", NULL, 0}};
    size_t i;
    memset(&r, 0, sizeof r);
    r.method = "POST";
    r.path = "/oauth/token";
    r.auth = KL_AUTH_CLIENT;
    r.body = "grant_type=refresh_token&refresh_token=r";
    r.body_len = strlen(r.body);
    r.headers = h;
    r.n_headers = 3;
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, "http://127.0.0.1:8787/oauth/token");
    CHECK_STR(header(b, "Authorization"), "Basic aWQ6c2VjcmV0");
    CHECK_STR(header(b, "Content-Type"), "application/x-www-form-urlencoded");
    CHECK_STR(header(b, "Accept"), "application/json");
    CHECK(header(b, "revision") == NULL);
    for (i = 0; i < b->n_headers; i++) CHECK(strstr(b->headers[i].value, KEY) == NULL);
    CHECK_INT((int)b->n_headers, 4); /* the three given and User-Agent */
    /* the app's credential goes to /oauth/ only, however the path is spelled */
    r.path = "/api/profiles";
    CHECK_INT(kl_build(c, &r, &b), KL_ERR_REFUSED);
    CHECK_STR(kl_last_error(c)->code, "client_auth_not_oauth");
    r.path = NULL;
    r.url = "http://127.0.0.1:8787//%61pi/x";
    CHECK_INT(kl_build(c, &r, &b), KL_ERR_REFUSED);
    CHECK_STR(kl_last_error(c)->code, "client_auth_not_oauth");
    r.url = NULL;
    r.path = "/oauthx/token";
    CHECK_INT(kl_build(c, &r, &b), KL_ERR_REFUSED);
    CHECK_STR(kl_last_error(c)->code, "client_auth_not_oauth");
    /* without its Authorization header there is nothing to send */
    r.path = "/oauth/token";
    r.headers = h + 1;
    r.n_headers = 2;
    CHECK_INT(kl_build(c, &r, &b), KL_ERR_REFUSED);
    CHECK_STR(kl_last_error(c)->code, "missing_credential");
    /* the other modes still refuse an Authorization header of the caller's */
    r.headers = h;
    r.n_headers = 3;
    r.auth = KL_AUTH_PRIVATE;
    CHECK_INT(kl_build(c, &r, &b), KL_ERR_USAGE);
    r.auth = 3;
    CHECK_INT(kl_build(c, &r, &b), KL_ERR_USAGE);
    CHECK_STR(kl_last_error(c)->code, "invalid_auth");
    kl_free(c);
    /* a client secret never goes over plain http to a remote host */
    c = ctest_client("http://example.com", NULL, NULL, "AbC123");
    r.auth = KL_AUTH_CLIENT;
    CHECK_INT(kl_build(c, &r, &b), KL_ERR_REFUSED);
    CHECK_STR(kl_last_error(c)->code, "insecure_transport");
    kl_free(c);
}

int main(void) {
    test_pct();
    test_client_auth();
    test_urls();
    test_refusals();
    test_settings();
    test_loopback_and_urls();
    CTEST_END();
}
