/*
 * request.c - turn a request description into what goes on the wire: method, URL
 * (path parameters and query percent-encoded), headers; and refuse locally what must
 * never be sent (wrong credential for the path, foreign URL, bad revision).
 */
#include "kl_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static int is_leap(int y) {
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int kl_revision_valid(const char *r) {
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int i, y, m, d, dim;
    if (!r) return 0;
    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (r[i] != '-') return 0;
        } else if (r[i] < '0' || r[i] > '9') {
            return 0;
        }
    }
    y = (r[0] - '0') * 1000 + (r[1] - '0') * 100 + (r[2] - '0') * 10 + (r[3] - '0');
    m = (r[5] - '0') * 10 + (r[6] - '0');
    d = (r[8] - '0') * 10 + (r[9] - '0');
    if (y < 1 || m < 1 || m > 12 || d < 1) return 0;
    dim = mdays[m - 1] + (m == 2 && is_leap(y));
    if (d > dim) return 0;
    if (r[10] == '\0') return 1;
    if (r[10] != '.' || r[11] == '\0') return 0;
    for (i = 11; r[i]; i++) {
        char ch = r[i];
        if (i > 42) return 0;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '_'))
            return 0;
    }
    return 1;
}


static int method_ok(const char *m) {
    static const char *const ms[] = {"GET", "POST", "PATCH", "PUT", "DELETE"};
    size_t i;
    for (i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (strcmp(m, ms[i]) == 0) return 1;
    return 0;
}

/* Characters a path template may hold literally (RFC 3986 pchar without '%' escapes,
 * which templates never need) plus '/' and the braces of placeholders. */
static int path_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           strchr("-._~!$&'()*+,;=:@/{}", ch) != NULL;
}

static int token_char(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* path from a template: {name} placeholders replaced by the values, in order */
static int add_template(kl_client *c, const kl_request *r, kl_buf *u) {
    const char *s = r->path, *op = r->operation;
    size_t used = 0;
    if (s[0] != '/') return kl_fail(c, KL_ERR_USAGE, "invalid_path", op, "path must start with '/'");
    while (*s) {
        if (*s == '{') {
            const char *e = strchr(s, '}');
            const char *v;
            if (!e || e == s + 1)
                return kl_fail(c, KL_ERR_USAGE, "invalid_path", op, "path has a malformed {placeholder}");
            if (used >= r->n_path_params || !r->path_params)
                return kl_fail(c, KL_ERR_USAGE, "invalid_path_params", op,
                               "path has more placeholders than the %lu path parameter(s) given",
                               (unsigned long)r->n_path_params);
            v = r->path_params[used++];
            if (!v || !*v)
                return kl_fail(c, KL_ERR_USAGE, "invalid_path_params", op, "path parameter %.*s is empty",
                               (int)(e - s - 1), s + 1);
            if (kl_pct_encode(u, v, strlen(v))) return kl_oom(c, op);
            s = e + 1;
            continue;
        }
        { /* a run of literal characters up to the next placeholder, added at once */
            const char *run = s;
            while (*s && *s != '{') {
                if (!path_char((unsigned char)*s) || *s == '}')
                    return kl_fail(c, KL_ERR_USAGE, "invalid_path", op, "path holds a character not allowed in a path");
                s++;
            }
            if (kl_buf_add(u, run, (size_t)(s - run))) return kl_oom(c, op);
        }
    }
    if (used != r->n_path_params)
        return kl_fail(c, KL_ERR_USAGE, "invalid_path_params", op,
                       "%lu path parameter(s) given, the path has %lu placeholder(s)", (unsigned long)r->n_path_params,
                       (unsigned long)used);
    return KL_OK;
}

static int query_has(const char *q, const char *name) {
    size_t n = strlen(name);
    while (q && *q) {
        if (strncmp(q, name, n) == 0 && (q[n] == '=' || q[n] == '&' || q[n] == '\0')) return 1;
        q = strchr(q, '&');
        if (q) q++;
    }
    return 0;
}

typedef struct hoff {
    size_t name, line, nlen;
} hoff;

static int add_header(kl_client *c, hoff *ho, size_t *n, const char *name, const char *value, const char *op) {
    kl_buf *h = &c->priv->req.hstore;
    if (*n >= KL_MAX_BUILT_HEADERS) return kl_fail(c, KL_ERR_USAGE, "too_many_headers", op, "too many headers");
    ho[*n].nlen = strlen(name);
    ho[*n].name = h->len;
    if (kl_buf_add(h, name, ho[*n].nlen + 1)) return kl_oom(c, op);
    ho[*n].line = h->len;
    if (kl_buf_adds(h, name) || kl_buf_add(h, ": ", 2) || kl_buf_adds(h, value) || kl_buf_add(h, "", 1))
        return kl_oom(c, op);
    (*n)++;
    return KL_OK;
}

static const char *const reserved_headers[] = {
    "authorization", "host", "content-length", "transfer-encoding", "revision", "connection", NULL};

int kl_build_request(kl_client *c, const kl_request *r) {
    kl_client_priv *p = c->priv;
    kl_buf *u = &p->req.url;
    const char *op = r ? r->operation : NULL;
    const char *rev, *api_path, *given_query = NULL;
    hoff ho[KL_MAX_BUILT_HEADERS];
    char first[KL_SEG_MAX];
    size_t nh = 0, i, plen = strlen(p->base.path);
    int has_q, rc, shown, own_ctype = 0, own_accept = 0, own_auth = 0;
    kl_url full;

    if (!r) return kl_fail(c, KL_ERR_USAGE, "invalid_request", NULL, "no request given");
    if (!r->method || !method_ok(r->method))
        return kl_fail(c, KL_ERR_USAGE, "invalid_method", op, "method must be GET, POST, PATCH, PUT or DELETE");
    if (r->auth != KL_AUTH_PRIVATE && r->auth != KL_AUTH_PUBLIC && r->auth != KL_AUTH_CLIENT)
        return kl_fail(c, KL_ERR_USAGE, "invalid_auth", op, "auth must be private, public or client");
    if ((r->path == NULL) == (r->url == NULL))
        return kl_fail(c, KL_ERR_USAGE, "invalid_request", op, "give exactly one of path and url");
    if (r->body == NULL && r->body_len) return kl_fail(c, KL_ERR_USAGE, "invalid_request", op, "body_len without body");
    rev = r->revision ? r->revision : p->revision;
    if (r->revision && !kl_revision_valid(rev)) /* the client's own was checked when set */
        return kl_fail(c, KL_ERR_REFUSED, "invalid_revision", op,
                       "revision must be YYYY-MM-DD (a real date) with an optional .suffix");

    /* ---- URL ---- */
    kl_buf_reset(u);
    if (kl_buf_adds(u, p->origin) || kl_buf_adds(u, p->base.path)) return kl_oom(c, op);
    if (r->url) {
        const char *why;
        rc = kl_url_parse(r->url, &full, &why);
        if (rc == -2) return kl_oom(c, op);
        if (rc) return kl_fail(c, KL_ERR_REFUSED, "invalid_url", op, "url: %s", why);
        if (full.https != p->base.https || full.port != p->base.port || strcmp(full.host, p->base.host) != 0 ||
            strncmp(full.path, p->base.path, plen) != 0 || full.path[plen] != '/') {
            kl_url_free(&full);
            return kl_fail(c, KL_ERR_REFUSED, "foreign_url", op,
                           "url's scheme, host, port or path prefix differ from the client's base URL");
        }
        /* the query of a links.next URL is already encoded by the server: kept byte for byte */
        rc = kl_buf_adds(u, full.path + plen) || (full.query && (kl_buf_addc(u, '?') || kl_buf_adds(u, full.query)));
        kl_url_free(&full);
        if (rc) return kl_oom(c, op);
    } else {
        rc = add_template(c, r, u);
        if (rc) return rc;
    }
    api_path = u->p + strlen(p->origin) + plen;
    given_query = strchr(api_path, '?');
    /* the path as refusals name it: up to the query, and not the whole of a hostile one */
    shown = given_query ? (int)(given_query - api_path) : (int)strlen(api_path);
    if (shown > 120) shown = 120;
    {
        const char *why;
        if (kl_path_check(api_path, first, &why))
            return kl_fail(c, KL_ERR_REFUSED, "invalid_path", op, "%s: %.*s", why, shown, api_path);
    }

    /* ---- which credential may go where ----
     * Decided on the path as the most lenient server would read it (kl_path_check), whether
     * it came from a template or a links.next URL: "//client/x", "/%63lient/x", "/client%2Fx"
     * and "/x/../client" all reach /client/ somewhere.  Klaviyo's paths are case-sensitive
     * (it answers /CLIENT/ with 404), but the rule ignores case, so a server or proxy that
     * folds it cannot route a private key to a client endpoint either. */
    if (r->auth == KL_AUTH_PRIVATE) {
        if (strcmp(first, "client") == 0)
            return kl_fail(c, KL_ERR_REFUSED, "private_key_to_client", op,
                           "a private key or access token is never sent to /client/* (use auth=public): %.*s", shown,
                           api_path);
        if (!p->access_token && !p->api_key)
            return kl_fail(c, KL_ERR_REFUSED, "missing_credential", op, "no api_key or access_token configured");
        if (p->plain_remote)
            return kl_fail(
                c, KL_ERR_REFUSED, "insecure_transport", op,
                "a private key or access token is never sent over plain http:// to a host that is not loopback");
    } else if (r->auth == KL_AUTH_CLIENT) {
        /* an OAuth app's own credential (client id and secret) goes to the OAuth endpoints
         * only, never over plain http to a remote host; the request carries it */
        if (strcmp(first, "oauth") != 0)
            return kl_fail(c, KL_ERR_REFUSED, "client_auth_not_oauth", op,
                           "auth=client is for paths under /oauth/ only: %.*s", shown, api_path);
        for (i = 0; i < r->n_headers && !own_auth; i++)
            own_auth = r->headers[i].name && strcasecmp(r->headers[i].name, "Authorization") == 0;
        if (!own_auth)
            return kl_fail(c, KL_ERR_REFUSED, "missing_credential", op, "auth=client needs an Authorization header");
        if (p->plain_remote)
            return kl_fail(c, KL_ERR_REFUSED, "insecure_transport", op,
                           "an OAuth client secret is never sent over plain http:// to a host that is not loopback");
    } else {
        if (strcmp(first, "api") == 0)
            return kl_fail(c, KL_ERR_REFUSED, "public_key_to_api", op,
                           "a public key cannot authenticate /api/* (use auth=private): %.*s", shown, api_path);
        if (!p->public_key) return kl_fail(c, KL_ERR_REFUSED, "missing_credential", op, "no public_key configured");
    }

    /* ---- query ---- */
    has_q = given_query != NULL;
    for (i = 0; i < r->n_query; i++) {
        const kl_param *q = &r->query[i];
        if (!q->name || !*q->name)
            return kl_fail(c, KL_ERR_USAGE, "invalid_query", op, "query parameter without a name");
        if (!q->values && !q->value)
            return kl_fail(c, KL_ERR_USAGE, "invalid_query", op, "query parameter %s has no value", q->name);
        if (kl_buf_addc(u, has_q ? '&' : '?') || kl_pct_encode(u, q->name, strlen(q->name)) || kl_buf_addc(u, '='))
            return kl_oom(c, op);
        has_q = 1;
        if (q->values) {
            size_t k;
            for (k = 0; k < q->n_values; k++) {
                const char *v = q->values[k];
                if (!v)
                    return kl_fail(c, KL_ERR_USAGE, "invalid_query", op, "query parameter %s has a NULL item", q->name);
                /* items encoded one by one (a comma inside an item becomes %2C), joined by
                 * literal commas: Klaviyo's list syntax, fields[profile]=email,first_name */
                if ((k && kl_buf_addc(u, ',')) || kl_pct_encode(u, v, strlen(v))) return kl_oom(c, op);
            }
        } else if (kl_pct_encode(u, q->value, strlen(q->value))) {
            return kl_oom(c, op);
        }
    }
    if (r->auth == KL_AUTH_PUBLIC) {
        int given = given_query && query_has(given_query + 1, "company_id");
        for (i = 0; i < r->n_query && !given; i++) given = strcmp(r->query[i].name, "company_id") == 0;
        if (!given) {
            if (kl_buf_adds(u, has_q ? "&company_id=" : "?company_id=") ||
                kl_pct_encode(u, p->public_key, strlen(p->public_key)))
                return kl_oom(c, op);
        }
    }

    /* ---- headers ---- */
    /* The same kind of request as the last one (no extra headers, same body presence, auth
     * and revision) has the same headers: they are kept, not rebuilt. */
    if (p->req.hs_valid && r->n_headers == 0 && p->req.hs_body == (r->body != NULL) && p->req.hs_auth == r->auth &&
        strcmp(p->req.hs_rev, rev) == 0)
        goto headers_done;
    p->req.hs_valid = 0;
    kl_buf_reset(&p->req.hstore);
    /* a body is JSON:API unless the request names its own Content-Type (a multipart upload, an
     * OAuth form), and so is the answer unless it names its own Accept; the OAuth endpoints
     * are not versioned: no revision goes to them */
    for (i = 0; i < r->n_headers; i++) {
        if (!r->headers[i].name) continue;
        own_ctype |= strcasecmp(r->headers[i].name, "Content-Type") == 0;
        own_accept |= strcasecmp(r->headers[i].name, "Accept") == 0;
    }
    if ((!own_accept && (rc = add_header(c, ho, &nh, "Accept", "application/vnd.api+json", op))) ||
        (r->body && !own_ctype && (rc = add_header(c, ho, &nh, "Content-Type", "application/vnd.api+json", op))) ||
        (r->auth != KL_AUTH_CLIENT && (rc = add_header(c, ho, &nh, "revision", rev, op))) ||
        (rc = add_header(c, ho, &nh, "User-Agent", p->user_agent, op)))
        return rc;
    if (r->auth == KL_AUTH_PRIVATE) {
        kl_buf av = {0};
        if (p->access_token) rc = kl_buf_adds(&av, "Bearer ") || kl_buf_adds(&av, p->access_token);
        else rc = kl_buf_adds(&av, "Klaviyo-API-Key ") || kl_buf_adds(&av, p->api_key);
        if (rc) {
            kl_buf_free(&av);
            return kl_oom(c, op);
        }
        rc = add_header(c, ho, &nh, "Authorization", av.p, op);
        memset(av.p, 0, av.len);
        kl_buf_free(&av);
        if (rc) return rc;
    }
    for (i = 0; i < r->n_headers; i++) {
        const kl_param *h = &r->headers[i];
        const unsigned char *s;
        size_t k;
        if (!h->name || !*h->name || !h->value)
            return kl_fail(c, KL_ERR_USAGE, "invalid_header", op, "header without a name or value");
        for (s = (const unsigned char *)h->name; *s; s++)
            if (!token_char(*s))
                return kl_fail(c, KL_ERR_USAGE, "invalid_header", op,
                               "header name holds a character not allowed in a header name");
        for (s = (const unsigned char *)h->value; *s; s++)
            if ((*s < 0x20 && *s != '\t') || *s == 0x7f)
                return kl_fail(c, KL_ERR_USAGE, "invalid_header", op, "header %s holds a CR, LF or control character",
                               h->name);
        if (r->auth == KL_AUTH_CLIENT && strcasecmp(h->name, "Authorization") == 0) {
            /* the OAuth app's credential, under the name the observer redacts */
            if ((rc = add_header(c, ho, &nh, "Authorization", h->value, op))) return rc;
            continue;
        }
        for (k = 0; reserved_headers[k]; k++)
            if (strcasecmp(h->name, reserved_headers[k]) == 0)
                return kl_fail(c, KL_ERR_USAGE, "invalid_header", op, "header %s is set by the client itself", h->name);
        if ((rc = add_header(c, ho, &nh, h->name, h->value, op))) return rc;
    }
    for (i = 0; i < nh; i++) {
        p->req.bh[i].name = p->req.hstore.p + ho[i].name;
        p->req.bh[i].value = p->req.hstore.p + ho[i].line + ho[i].nlen + 2;
        p->req.bline[i] = p->req.hstore.p + ho[i].line;
    }
    p->req.n_bh = nh;
    if (r->n_headers == 0 && strlen(rev) < sizeof p->req.hs_rev) {
        p->req.hs_valid = 1;
        p->req.hs_body = r->body != NULL;
        p->req.hs_auth = r->auth;
        strcpy(p->req.hs_rev, rev);
    }
headers_done:

    kl_buf_reset(&p->req.method);
    if (kl_buf_adds(&p->req.method, r->method)) return kl_oom(c, op);
    p->req.built.method = p->req.method.p;
    p->req.built.url = u->p;
    p->req.built.headers = p->req.bh;
    p->req.built.n_headers = p->req.n_bh;
    p->req.built.body = r->body;
    p->req.built.body_len = r->body ? r->body_len : 0;
    return KL_OK;
}
