/*
 * client.c - client settings (base URL, credentials, revision, timeouts) and their local
 * checks; kl_new, kl_free, kl_clone, kl_build, kl_interpret.
 */
#include "kl_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- checks -------------------------------------------------------------------------- */

int kl_credential_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    if (!s || !*s) return 0;
    /* A space, CR, LF or any control byte could split the Authorization header (header
     * injection) or be a copy-paste accident; refuse rather than send. */
    for (; *p; p++)
        if (*p <= 0x20 || *p == 0x7f) return 0;
    return 1;
}

/* ---- client ---------------------------------------------------------------------------- */

static int refuse(kl_client *c, const char *code, const char *msg) {
    return kl_fail(c, KL_ERR_REFUSED, code, NULL, "%s", msg);
}

static int setup(kl_client *c, const kl_options *o) {
    kl_client_priv *p = c->priv;
    const char *why = NULL, *base = o->base_url ? o->base_url : KL_DEFAULT_BASE_URL;
    const char *rev = o->revision ? o->revision : KL_DEFAULT_REVISION;
    size_t n;
    int rc = kl_url_parse(base, &p->base, &why);
    if (rc == -2) return kl_oom(c, NULL);
    if (rc) return kl_fail(c, KL_ERR_REFUSED, "invalid_base_url", NULL, "base_url: %s", why);
    if (p->base.query) return refuse(c, "invalid_base_url", "base_url must not hold a query");
    n = strlen(p->base.path);
    while (n > 0 && p->base.path[n - 1] == '/') p->base.path[--n] = '\0';

    if (!kl_revision_valid(rev))
        return refuse(c, "invalid_revision", "revision must be YYYY-MM-DD (a real date) with an optional .suffix");
    if (o->api_key && !kl_credential_valid(o->api_key))
        return refuse(c, "invalid_credential", "api_key is empty or holds a space, CR, LF or control character");
    if (o->access_token && !kl_credential_valid(o->access_token))
        return refuse(c, "invalid_credential", "access_token is empty or holds a space, CR, LF or control character");
    if (o->public_key && !kl_credential_valid(o->public_key))
        return refuse(c, "invalid_credential", "public_key is empty or holds a space, CR, LF or control character");
    if (o->user_agent) {
        const unsigned char *u = (const unsigned char *)o->user_agent;
        if (!*u) return refuse(c, "invalid_option", "user_agent is empty");
        for (; *u; u++)
            if (*u < 0x20 || *u == 0x7f) return refuse(c, "invalid_option", "user_agent holds a control character");
    }
    if (o->timeout_ms < 0 || o->connect_timeout_ms < 0)
        return refuse(c, "invalid_option", "timeouts must not be negative");

    {
        /* the network settings: printable text without spaces (a path or a URL) */
        const char *const names[] = {"proxy", "ca_file", "ca_path", "client_cert", "client_key"};
        const char *const vals[] = {o->proxy, o->ca_file, o->ca_path, o->client_cert, o->client_key};
        char **dst[] = {&p->proxy, &p->ca_file, &p->ca_path, &p->client_cert, &p->client_key};
        size_t i;
        for (i = 0; i < 5; i++) {
            if (!vals[i]) continue;
            if (!kl_credential_valid(vals[i]))
                return kl_fail(c, KL_ERR_REFUSED, "invalid_option", NULL,
                               "%s is empty or holds a space, CR, LF or control character", names[i]);
            if (!(*dst[i] = kl_strdup(vals[i]))) return kl_oom(c, NULL);
        }
        if (o->proxy) {
            const char *const schemes[] = {"http://", "https://", "socks4://", "socks4a://", "socks5://", "socks5h://"};
            int ok = 0;
            for (i = 0; i < sizeof schemes / sizeof *schemes; i++)
                if (strncmp(o->proxy, schemes[i], strlen(schemes[i])) == 0 && o->proxy[strlen(schemes[i])]) ok = 1;
            if (!ok)
                return refuse(c, "invalid_option",
                              "proxy must be an http://, https://, socks4://, socks4a://, socks5:// or socks5h:// URL");
        }
        if (o->client_key && !o->client_cert) return refuse(c, "invalid_option", "client_key needs client_cert");
    }
    p->observer = o->observer;
    p->observer_ud = o->observer_ud;

    p->plain_remote = !p->base.https && !kl_host_is_loopback(p->base.host);
    if (p->plain_remote && (o->api_key || o->access_token))
        return refuse(c, "insecure_transport",
                      "a private key or access token is never sent over plain http:// to a host that is not loopback; "
                      "use https://");

    p->timeout_ms = o->timeout_ms ? o->timeout_ms : KL_DEFAULT_TIMEOUT_MS;
    p->connect_timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : KL_DEFAULT_CONNECT_TIMEOUT_MS;
    {
        kl_buf ob = {0};
        char port[16];
        int defport = p->base.port == (p->base.https ? 443 : 80);
        snprintf(port, sizeof port, ":%d", p->base.port);
        if (kl_buf_adds(&ob, p->base.https ? "https://" : "http://") || kl_buf_adds(&ob, p->base.host) ||
            (!defport && kl_buf_adds(&ob, port))) {
            kl_buf_free(&ob);
            return kl_oom(c, NULL);
        }
        p->origin = ob.p;
    }
    p->revision = kl_strdup(rev);
    p->user_agent = kl_strdup(o->user_agent ? o->user_agent : "lua-klaviyo/" KL_VERSION);
    if ((o->api_key && !(p->api_key = kl_strdup(o->api_key))) ||
        (o->access_token && !(p->access_token = kl_strdup(o->access_token))) ||
        (o->public_key && !(p->public_key = kl_strdup(o->public_key))) || !p->revision || !p->user_agent)
        return kl_oom(c, NULL);
    if (kl_transport_init(c)) return kl_fail(c, KL_ERR_OOM, "out_of_memory", NULL, "cannot create a libcurl handle");
    return KL_OK;
}

kl_client *kl_new(const kl_options *opts) {
    kl_options none;
    kl_client *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->priv = calloc(1, sizeof *c->priv);
    if (!c->priv) {
        free(c);
        return NULL;
    }
    c->priv->rec.error.retry_after = -1;
    if (!opts) {
        memset(&none, 0, sizeof none);
        opts = &none;
    }
    c->priv->usable = setup(c, opts) == KL_OK && kl_call_setup(c, opts) == KL_OK;
    return c;
}

static void wipe_free(char *s) {
    /* secrets do not linger in freed memory */
    if (s) {
        volatile char *v = s;
        while (*v) *v++ = 0;
        free(s);
    }
}

void kl_free(kl_client *c) {
    kl_client_priv *p;
    if (!c) return;
    p = c->priv;
    if (p) {
        kl_transport_free(c);
        kl_call_free(c);
        kl_error_clear(c);
        kl_url_free(&p->base);
        free(p->origin);
        wipe_free(p->api_key);
        wipe_free(p->access_token);
        free(p->public_key);
        free(p->revision);
        free(p->user_agent);
        wipe_free(p->proxy); /* may hold the proxy's password */
        free(p->ca_file);
        free(p->ca_path);
        free(p->client_cert);
        free(p->client_key);
        kl_buf_free(&p->req.url);
        if (p->req.hstore.p) memset(p->req.hstore.p, 0, p->req.hstore.len); /* held the Authorization value */
        kl_buf_free(&p->req.hstore);
        kl_buf_free(&p->req.method);
        kl_buf_free(&p->ans.body);
        kl_buf_free(&p->ans.rhstore);
        free(p->ans.rh_off);
        free(p->ans.rh);
        free(p);
    }
    free(c);
}

int kl_set_access_token(kl_client *c, const char *token) {
    kl_client_priv *p = c->priv;
    char *t = NULL;
    if (token && *token) {
        if (!kl_credential_valid(token))
            return kl_fail(c, KL_ERR_REFUSED, "invalid_credential", NULL,
                           "access_token holds a space, CR, LF or control character");
        if (p->plain_remote)
            return kl_fail(c, KL_ERR_REFUSED, "insecure_transport", NULL,
                           "an access token is never sent over plain http:// to a host that is not loopback");
        if (!(t = kl_strdup(token))) return kl_oom(c, NULL);
    }
    wipe_free(p->access_token);
    p->access_token = t;
    p->req.hs_valid = 0; /* the Authorization header changes */
    kl_error_clear(c);
    return KL_OK;
}

/* A client whose settings were refused keeps refusing: nothing is ever sent with it. */
static int usable(kl_client *c) {
    return c->priv && c->priv->usable;
}

kl_client *kl_clone(kl_client *c) {
    kl_client_priv *p = c->priv;
    kl_options o;
    kl_buf base = {0};
    kl_client *n;
    if (!usable(c)) return NULL;
    if (kl_buf_adds(&base, p->origin) || kl_buf_adds(&base, p->base.path)) {
        kl_buf_free(&base);
        return NULL;
    }
    memset(&o, 0, sizeof o);
    o.base_url = base.p;
    o.api_key = p->api_key;
    o.access_token = p->access_token;
    o.public_key = p->public_key;
    o.revision = p->revision;
    o.user_agent = p->user_agent;
    o.timeout_ms = p->timeout_ms;
    o.connect_timeout_ms = p->connect_timeout_ms;
    o.proxy = p->proxy;
    o.ca_file = p->ca_file;
    o.ca_path = p->ca_path;
    o.client_cert = p->client_cert;
    o.client_key = p->client_key;
    o.observer = p->observer;
    o.observer_ud = p->observer_ud;
    o.limiter = KL_LIMITER_OFF; /* borrows c's below */
    o.account = p->pol.account;
    n = kl_new(&o);
    kl_buf_free(&base);
    if (!n) return NULL;
    if (n->err) {
        kl_free(n);
        return NULL;
    }
    kl_call_share(n, c);
    return n;
}

/* Builds req and begins its steps (call.c), for a driver outside the core. */
int kl_build(kl_client *c, const kl_request *req, const kl_built **out) {
    int rc = kl_call_begin(c, &c->priv->call, req, NULL);
    if (rc == KL_OK && out) *out = &c->priv->req.built;
    return rc;
}

int kl_interpret(kl_client *c, long status, const kl_header *headers, size_t n_headers, const char *body,
                 size_t body_len, const char *operation) {
    kl_client_priv *p = c->priv;
    size_t i;
    kl_error_clear(c);
    kl_resp_reset(c);
    p->ans.res.status = status;
    for (i = 0; i < n_headers; i++) {
        if (!headers[i].name || !headers[i].value) continue;
        if (kl_resp_add_header(c, headers[i].name, strlen(headers[i].name), headers[i].value, strlen(headers[i].value)))
            return kl_oom(c, operation);
    }
    if (kl_resp_finish_headers(c) || (body_len && kl_buf_add(&p->ans.body, body, body_len)) ||
        (!body_len && kl_buf_add(&p->ans.body, "", 0)))
        return kl_oom(c, operation);
    return kl_interpret_stored(c, operation);
}

const kl_response *kl_last_response(const kl_client *c) {
    return &c->priv->ans.res;
}

const kl_error *kl_last_error(const kl_client *c) {
    return &c->priv->rec.error;
}
