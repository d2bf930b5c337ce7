/*
 * test_path.c - the key/path rule on paths a hostile server or a careless caller could
 * give: kl_path_check reads them as the most lenient server would, and kl_build refuses
 * every form that reaches /client/ with a private key (or /api/ with a public key), from a
 * links.next URL or from a path template, while ordinary paths still build.
 */
#include "ctest.h"
#include "ctest_client.h"
#include "kl_internal.h"

#define KEY "pk_0123456789abcdef"
#define BASE "http://127.0.0.1:8787"

/* the first segment kl_path_check reads, or "!" when it refuses the path */
static const char *first_of(const char *path) {
    static char first[KL_SEG_MAX];
    const char *why = NULL;
    if (kl_path_check(path, first, &why)) return why ? "!" : "(refused without a reason)";
    return first;
}

static void test_check(void) {
    CHECK_STR(first_of("/api/profiles/"), "api");
    CHECK_STR(first_of("/client/profiles"), "client");
    CHECK_STR(first_of("//client/profiles"), "client");
    CHECK_STR(first_of("///client"), "client");
    CHECK_STR(first_of("/%63lient/x"), "client");
    CHECK_STR(first_of("/%63LIENT/x"), "client");
    CHECK_STR(first_of("/client%2Fprofiles"), "client");
    CHECK_STR(first_of("/client%2fprofiles"), "client");
    CHECK_STR(first_of("/%2Fclient"), "client");
    CHECK_STR(first_of("/%5Cclient/x"), "client");
    CHECK_STR(first_of("/\\client/x"), "client");
    CHECK_STR(first_of("/CLIENT?x=1"), "client");
    CHECK_STR(first_of("/client;a=b/x"), "client");
    CHECK_STR(first_of("/;x/client"), "client");
    CHECK_STR(first_of("/client%00/x"), "client");
    CHECK_STR(first_of("/clients/x"), "clients");
    CHECK_STR(first_of("/a-segment-longer-than-any-prefix/x"), "");
    CHECK_STR(first_of(""), "");
    CHECK_STR(first_of("/"), "");
    CHECK_STR(first_of("/?x=/client"), "");
    CHECK_STR(first_of("/api/a.b/c..d/...%2e/x"), "api"); /* dots inside names are names */
    CHECK_STR(first_of("/api/x?q=/../client"), "api");    /* the query is data */
    CHECK_STR(first_of("/api/x#/../client"), "api");
    /* refused: dot segments however written, malformed escapes */
    CHECK_STR(first_of("/api/../client/x"), "!");
    CHECK_STR(first_of("/./client/"), "!");
    CHECK_STR(first_of("/api/%2e%2e/client/"), "!");
    CHECK_STR(first_of("/api/%2E%2e/client/"), "!");
    CHECK_STR(first_of("/api/.%2E/client/"), "!");
    CHECK_STR(first_of("/api/..%2Fclient/"), "!");
    CHECK_STR(first_of("/api/..%5Cclient/"), "!");
    CHECK_STR(first_of("/api/..;x/client/"), "!");
    CHECK_STR(first_of("/api/.."), "!");
    CHECK_STR(first_of("/api/.?x"), "!");
    CHECK_STR(first_of("/api//..//client"), "!");
    CHECK_STR(first_of("/api/%zz"), "!");
    CHECK_STR(first_of("/api/%2"), "!");
    CHECK_STR(first_of("/api/%"), "!");
}

static void refused(kl_client *c, const kl_request *r, const char *code) {
    CHECK_INT(kl_build(c, r, NULL), KL_ERR_REFUSED);
    CHECK_STR(kl_last_error(c)->code, code);
    CHECK(strstr(c->errstr, KEY) == NULL);
}

static void test_build(void) {
    static const char *const to_client[] = {
        BASE "//client/profiles",   BASE "///client/profiles",   BASE "/%63lient/profiles",
        BASE "/client%2Fprofiles",  BASE "/CLIENT/profiles",     BASE "/Client?company_id=x",
        BASE "/%5cclient/profiles", BASE "/client;v=1/profiles", NULL};
    static const char *const dotted[] = {BASE "/api/../client/profiles", BASE "/./client/", BASE "/api/%2e%2e/client/",
                                         BASE "/api/..%2Fclient/",       BASE "/api/%2",    NULL};
    static const char *const to_api[] = {BASE "//api/profiles", BASE "/%61pi/profiles", BASE "/API", NULL};
    kl_client *c = ctest_client(BASE, KEY, NULL, "AbC123");
    kl_request r;
    const kl_built *b = NULL;
    const char *pp[1];
    size_t i;
    memset(&r, 0, sizeof r);
    r.operation = "op";
    r.method = "GET";
    for (i = 0; to_client[i]; i++) {
        r.url = to_client[i];
        refused(c, &r, "private_key_to_client");
        CHECK(strstr(c->errstr, "client") != NULL || strstr(c->errstr, "CLIENT") != NULL);
    }
    for (i = 0; dotted[i]; i++) {
        r.url = dotted[i];
        refused(c, &r, "invalid_path");
    }
    r.auth = KL_AUTH_PUBLIC;
    for (i = 0; to_api[i]; i++) {
        r.url = to_api[i];
        refused(c, &r, "public_key_to_api");
    }
    r.url = BASE "//client/profiles"; /* a public key goes to a client path however written */
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    r.auth = KL_AUTH_PRIVATE;

    /* what a server really sends back still builds, byte for byte */
    r.url = BASE "/api/profiles/?page%5Bcursor%5D=a%2F..%2Fclient&page%5Bsize%5D=20";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, BASE "/api/profiles/?page%5Bcursor%5D=a%2F..%2Fclient&page%5Bsize%5D=20");

    /* a path parameter is one segment: its '/' is encoded and read as a separator, so a value
     * that would walk out of /api/ is refused, and one that stays inside builds */
    r.url = NULL;
    r.path = "/api/catalog-items/{id}";
    r.path_params = pp;
    r.n_path_params = 1;
    pp[0] = "../../client/profiles";
    refused(c, &r, "invalid_path");
    pp[0] = "$custom:::$default:::SKU/1";
    CHECK_INT(kl_build(c, &r, &b), KL_OK);
    CHECK_STR(b->url, BASE "/api/catalog-items/%24custom%3A%3A%3A%24default%3A%3A%3ASKU%2F1");
    r.path = "//client/{id}";
    pp[0] = "x";
    refused(c, &r, "private_key_to_client");
    kl_free(c);
}

int main(void) {
    test_check();
    test_build();
    CTEST_END();
}
