/*
 * response.c - what an answer means: success with rate-limit facts, or an error record
 * read from Klaviyo's JSON:API error document; non-JSON bodies (Cloudflare's HTML 403
 * challenge, 520-527 pages) still give a clear error.
 */
#include "kl_internal.h"
#include "json_read.h"

#include <curl/curl.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>


static char empty[1];

/* ---- header storage (shared by every transport) ---------------------------------------- */

void kl_resp_reset(kl_client *c) {
    kl_client_priv *p = c->priv;
    kl_buf_trim(&p->ans.body, KL_KEEP_BYTES);
    kl_buf_trim(&p->ans.rhstore, KL_KEEP_BYTES);
    kl_buf_reset(&p->ans.body);
    kl_buf_reset(&p->ans.rhstore);
    p->ans.n_rh = 0;
    memset(&p->ans.res, 0, sizeof p->ans.res);
    p->ans.res.retry_after = -1;
    p->ans.res.body = empty; /* never NULL, even after a transport failure */
}

int kl_resp_add_header(kl_client *c, const char *name, size_t nlen, const char *value, size_t vlen) {
    kl_client_priv *p = c->priv;
    size_t i, off;
    while (vlen && (value[0] == ' ' || value[0] == '\t')) {
        value++;
        vlen--;
    }
    while (vlen &&
           (value[vlen - 1] == ' ' || value[vlen - 1] == '\t' || value[vlen - 1] == '\r' || value[vlen - 1] == '\n'))
        vlen--;
    if (p->ans.n_rh == p->ans.cap_rh) {
        size_t cap = p->ans.cap_rh ? p->ans.cap_rh * 2 : 16;
        size_t *no = realloc(p->ans.rh_off, cap * 2 * sizeof *no);
        if (!no) return -1;
        p->ans.rh_off = no;
        p->ans.cap_rh = cap;
    }
    /* "name\0value\0", the name in ASCII lower case (header names are tokens: no locale); the
     * pairs follow each other in rhstore, in order: the Lua binding copies them as one block */
    if (kl_buf_reserve(&p->ans.rhstore, nlen + vlen + 2)) return -1;
    off = p->ans.rhstore.len;
    for (i = 0; i < nlen; i++) {
        char ch = name[i];
        p->ans.rhstore.p[off + i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + ('a' - 'A')) : ch;
    }
    p->ans.rhstore.p[off + nlen] = '\0';
    memcpy(p->ans.rhstore.p + off + nlen + 1, value, vlen);
    p->ans.rhstore.p[off + nlen + 1 + vlen] = '\0';
    p->ans.rhstore.len = off + nlen + vlen + 2;
    p->ans.rhstore.p[p->ans.rhstore.len] = '\0'; /* the buffer's invariant (kl_buf_add keeps it too) */
    p->ans.rh_off[2 * p->ans.n_rh] = off;
    p->ans.rh_off[2 * p->ans.n_rh + 1] = off + nlen + 1;
    p->ans.n_rh++;
    return 0;
}

int kl_resp_finish_headers(kl_client *c) {
    kl_client_priv *p = c->priv;
    size_t i;
    if (p->ans.n_rh > p->ans.cap_rhv) {
        kl_header *nh = realloc(p->ans.rh, p->ans.n_rh * sizeof *nh);
        if (!nh) return -1;
        p->ans.rh = nh;
        p->ans.cap_rhv = p->ans.n_rh;
    }
    for (i = 0; i < p->ans.n_rh; i++) {
        p->ans.rh[i].name = p->ans.rhstore.p + p->ans.rh_off[2 * i];
        p->ans.rh[i].value = p->ans.rhstore.p + p->ans.rh_off[2 * i + 1];
    }
    p->ans.res.headers = p->ans.rh;
    p->ans.res.n_headers = p->ans.n_rh;
    return 0;
}

void kl_shrink(kl_client *c) {
    kl_client_priv *p = c->priv;
    if (p->ans.body.cap > KL_KEEP_BYTES) {
        kl_buf_free(&p->ans.body);
        p->ans.res.body = empty;
        p->ans.res.body_len = 0;
    }
    if (p->ans.rhstore.cap > KL_KEEP_BYTES) {
        kl_buf_free(&p->ans.rhstore);
        p->ans.n_rh = 0;
        p->ans.res.n_headers = 0;
    }
    if (p->rec.error.body && p->rec.error.body_len > KL_KEEP_BYTES) {
        free((char *)p->rec.error.body);
        p->rec.error.body = NULL;
        p->rec.error.body_len = 0;
    }
}

const char *kl_resp_header(const kl_client *c, const char *lname) {
    const kl_client_priv *p = c->priv;
    size_t i;
    for (i = 0; i < p->ans.res.n_headers; i++)
        if (strcmp(p->ans.res.headers[i].name, lname) == 0) return p->ans.res.headers[i].value;
    return NULL;
}

/* ---- facts from headers ------------------------------------------------------------------ */

static int parse_long(const char *s, long *out) {
    char *e;
    long v;
    if (!s || !isdigit((unsigned char)*s)) return 0;
    v = strtol(s, &e, 10);
    while (*e == ' ') e++;
    if (*e && *e != ';' && *e != ',') return 0;
    *out = v;
    return 1;
}

/* Retry-After: delta-seconds (decimals tolerated) or an HTTP-date, checked and capped as
 * every outside duration is (duration.h); -1 when absent or not a duration. A date already
 * past means now. */
static double parse_retry_after(const char *s) {
    const char *e;
    double v;
    time_t t;
    if (!s) return -1;
    if (isdigit((unsigned char)*s)) {
        if (kl_duration_parse(s, &e, &v) == KL_DURATION_BAD) return -1;
        while (*e == ' ') e++;
        return *e ? -1 : v;
    }
    if (!isalpha((unsigned char)*s)) return -1; /* an HTTP-date starts with the day's name */
    t = curl_getdate(s, NULL);
    if (t == (time_t)-1) return -1;
    v = difftime(t, time(NULL));
    kl_duration_check(v > 0 ? v : 0, &v);
    return v;
}

/* Klaviyo's 429 detail "Request was throttled. Expected available in N seconds." */
static double retry_from_detail(const char *d) {
    const char *k = d ? strstr(d, "available in ") : NULL;
    double v;
    if (!k) return -1;
    kl_duration_parse(k + 13, NULL, &v);
    return v;
}

/* ---- errors -------------------------------------------------------------------------------- */

static const char *status_code_name(long s) {
    switch (s) {
    case 400: return "invalid";
    case 401: return "not_authenticated";
    case 403: return "permission_denied";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 406: return "not_acceptable";
    case 409: return "conflict";
    case 410: return "gone";
    case 413: return "payload_too_large";
    case 415: return "unsupported_media_type";
    case 429: return "throttled";
    case 500: return "server_error";
    case 501: return "not_implemented";
    case 502: return "bad_gateway";
    case 503: return "service_unavailable";
    case 504: return "gateway_timeout";
    default:
        if (s >= 520 && s <= 527) return "edge_error"; /* Cloudflare in front of Klaviyo */
        if (s >= 300 && s < 400) return "redirect";
        return s >= 500 ? "server_error" : "http_error";
    }
}

/* A readable one-line excerpt of a non-JSON body: the HTML <title> when there is one,
 * else the first bytes with tags dropped and blanks collapsed. */
static char *body_excerpt(const char *b, size_t n) {
    kl_buf o = {0};
    const char *t = NULL, *te = NULL;
    size_t i;
    int space = 0, tag = 0;
    for (i = 0; i + 7 <= n; i++)
        if (strncasecmp(b + i, "<title>", 7) == 0) {
            t = b + i + 7;
            break;
        }
    if (t) {
        for (te = t; te < b + n && *te != '<'; te++)
            ;
        b = t;
        n = (size_t)(te - t);
    }
    if (kl_buf_add(&o, "", 0)) return NULL;
    for (i = 0; i < n && o.len < 200; i++) {
        unsigned char ch = (unsigned char)b[i];
        if (ch == '<') {
            tag = 1;
            continue;
        }
        if (tag) {
            if (ch == '>') {
                tag = 0;
                space = 1;
            }
            continue;
        }
        if (ch <= 0x20 || ch == 0x7f) {
            space = 1;
            continue;
        }
        if (space && o.len && kl_buf_addc(&o, ' ')) {
            kl_buf_free(&o);
            return NULL;
        }
        space = 0;
        if (kl_buf_addc(&o, (char)ch)) {
            kl_buf_free(&o);
            return NULL;
        }
    }
    return o.p;
}

static int read_error_doc(kl_client *c, const char *body, size_t len) {
    kl_client_priv *p = c->priv;
    kj_doc d = {0};
    int rc = kj_parse(&d, body, len), e, src, v;
    if (rc == -2) {
        kj_free(&d);
        return -2;
    }
    if (rc < 0 || d.nodes[0].type != KJ_OBJECT) {
        kj_free(&d);
        return -1;
    }
    e = kj_at(&d, kj_get(&d, 0, "errors"), 0);
    if (e < 0 || d.nodes[e].type != KJ_OBJECT) {
        /* JSON but not JSON:API: take a message-like field */
        v = kj_get(&d, 0, "detail");
        if (v < 0) v = kj_get(&d, 0, "message");
        if (v < 0) v = kj_get(&d, 0, "error");
        if (v >= 0 && d.nodes[v].type == KJ_STRING && !(p->rec.error.detail = kj_string(&d, v, NULL))) rc = -2;
        kj_free(&d);
        return rc == -2 ? -2 : 1;
    }
#define TAKE(field, node)                                                                                              \
    do {                                                                                                               \
        int n_ = (node);                                                                                               \
        if (n_ >= 0 && d.nodes[n_].type == KJ_STRING && !(p->rec.error.field = kj_string(&d, n_, NULL))) rc = -2;      \
    } while (0)
    TAKE(code, kj_get(&d, e, "code"));
    TAKE(title, kj_get(&d, e, "title"));
    TAKE(detail, kj_get(&d, e, "detail"));
    src = kj_get(&d, e, "source");
    TAKE(pointer, kj_get(&d, src, "pointer"));
    TAKE(parameter, kj_get(&d, src, "parameter"));
    if (!p->rec.error.request_id) TAKE(request_id, kj_get(&d, e, "id"));
#undef TAKE
    v = kj_get(&d, e, "meta");
    if (v >= 0 && d.nodes[v].type == KJ_OBJECT &&
        !(p->rec.error.meta_json = kl_strndup(body + d.nodes[v].start, d.nodes[v].end - d.nodes[v].start)))
        rc = -2;
    kj_free(&d);
    return rc == -2 ? -2 : 0;
}

/* ---- secrets echoed by a server ----------------------------------------------------------- */

/* Each occurrence of `secret` in s[0..*len) becomes "[redacted]" (a secret shorter than that
 * becomes as many '*'), in place: the text only shrinks. Keeps s NUL-terminated at *len. */
static void redact(char *s, size_t *len, const char *secret) {
    static const char mark[] = "[redacted]";
    size_t n = strlen(secret), m = sizeof mark - 1, i = 0;
    if (!s || n == 0) return;
    while (i + n <= *len) {
        if (memcmp(s + i, secret, n) != 0) {
            i++;
            continue;
        }
        if (n < m) {
            memset(s + i, '*', n);
            i += n;
            continue;
        }
        memcpy(s + i, mark, m);
        memmove(s + i + m, s + i + n, *len - i - n);
        *len -= n - m;
        s[*len] = '\0';
        i += m;
    }
}

static void redact_str(char *s, const char *secret) {
    size_t len = s ? strlen(s) : 0;
    redact(s, &len, secret);
}

/* Response headers that hold a secret are stored again without it (they follow each other
 * as "name\0value\0" pairs: a value cannot shrink in place). */
static int redact_headers(kl_client *c, const char *secret) {
    kl_client_priv *p = c->priv;
    size_t i, n = p->ans.n_rh, len = p->ans.rhstore.len;
    char *old, *name;
    for (i = 0; i < n && !strstr(p->ans.rhstore.p + p->ans.rh_off[2 * i + 1], secret); i++)
        ;
    if (i == n) return 0;
    if (!(old = malloc(len + 1))) return -1;
    memcpy(old, p->ans.rhstore.p, len + 1);
    kl_buf_reset(&p->ans.rhstore);
    p->ans.n_rh = 0;
    for (i = 0, name = old; i < n; i++) {
        char *value = name + strlen(name) + 1;
        size_t vlen = strlen(value), nlen = strlen(name);
        char *next = value + vlen + 1;
        redact(value, &vlen, secret);
        if (kl_resp_add_header(c, name, nlen, value, vlen)) {
            free(old);
            return -1;
        }
        name = next;
    }
    free(old);
    return kl_resp_finish_headers(c);
}

/* The client's own secrets (API key, access token) never reach an error: a server that
 * echoes them in its text (title, detail, meta, body, headers) has them replaced. */
static int redact_error(kl_client *c) {
    kl_client_priv *p = c->priv;
    kl_response *r = &p->ans.res;
    kl_error *e = &p->rec.error;
    /* the record's own copies (kl_rec), written in place: the text only shrinks */
    char *const texts[] = {(char *)e->code,      (char *)e->title,      (char *)e->detail,   (char *)e->pointer,
                           (char *)e->parameter, (char *)e->request_id, (char *)e->meta_json};
    const char *secrets[2];
    size_t i;
    int k;
    secrets[0] = p->api_key;
    secrets[1] = p->access_token;
    for (k = 0; k < 2; k++) {
        const char *s = secrets[k];
        if (!s || !*s) continue;
        for (i = 0; i < sizeof texts / sizeof *texts; i++) redact_str(texts[i], s);
        redact(r->body, &r->body_len, s);
        p->ans.body.len = r->body_len;
        if (redact_headers(c, s)) return -1;
    }
    return 0;
}

static int http_error(kl_client *c, const char *op) {
    kl_client_priv *p = c->priv;
    kl_response *r = &p->ans.res;
    kl_error *e = &p->rec.error;
    const char *rid = kl_resp_header(c, "x-klaviyo-req-id");
    int doc;
    char where[200] = "";
    if (!rid) rid = kl_resp_header(c, "x-request-id");
    if (!rid) rid = kl_resp_header(c, "cf-ray");
    kl_error_clear(c);
    c->err = KL_ERR_HTTP;
    e->kind = KL_ERR_HTTP;
    e->status = r->status;
    if (rid && !(e->request_id = kl_strdup(rid))) return kl_oom(c, op);
    if (op && !(e->operation = kl_strdup(op))) return kl_oom(c, op);
    doc = read_error_doc(c, r->body, r->body_len);
    if (doc == -2) return kl_oom(c, op);
    if (doc != 0) {
        /* not a JSON:API error document: still say clearly what came back */
        const char *ct = kl_resp_header(c, "content-type");
        char title[160];
        snprintf(title, sizeof title, "HTTP %ld with a non-JSON:API body (%.80s)", r->status,
                 ct ? ct : (r->body_len ? "no content type" : "empty"));
        if (!(e->title = kl_strdup(title))) return kl_oom(c, op);
        if (!e->detail && r->body_len && !(e->detail = body_excerpt(r->body, r->body_len))) return kl_oom(c, op);
        if (r->status == 403 && doc == -1 && r->body_len) {
            /* an HTML 403 is the edge (Cloudflare) blocking, not a missing scope */
            if (!(e->code = kl_strdup("edge_blocked"))) return kl_oom(c, op);
        }
    }
    if (!e->code && !(e->code = kl_strdup(status_code_name(r->status)))) return kl_oom(c, op);
    if (redact_error(c)) return kl_oom(c, op);
    if (r->body_len && !(e->body = kl_strndup(r->body, r->body_len))) return kl_oom(c, op);
    if (r->retry_after < 0 && r->status == 429) r->retry_after = retry_from_detail(e->detail);
    e->retry_after = r->retry_after;
    e->body_len = e->body ? r->body_len : 0;
    e->sent = 1;
    if (e->pointer) snprintf(where, sizeof where, " (at %.150s)", e->pointer);
    else if (e->parameter) snprintf(where, sizeof where, " (parameter %.150s)", e->parameter);
    snprintf(c->errstr, sizeof c->errstr, "%s%sHTTP %ld %s: %.300s%s", op ? op : "", op ? ": " : "", r->status, e->code,
             e->detail ? e->detail : (e->title ? e->title : "no detail"), where);
    return KL_ERR_HTTP;
}

int kl_interpret_stored(kl_client *c, const char *op) {
    kl_client_priv *p = c->priv;
    kl_response *r = &p->ans.res;
    long a, b, d;
    if (!p->ans.body.p && kl_buf_add(&p->ans.body, "", 0)) return kl_oom(c, op);
    r->body = p->ans.body.p;
    r->body_len = p->ans.body.len;
    r->retry_after = parse_retry_after(kl_resp_header(c, "retry-after"));
    r->has_ratelimit = parse_long(kl_resp_header(c, "ratelimit-limit"), &a) &&
                       parse_long(kl_resp_header(c, "ratelimit-remaining"), &b) &&
                       parse_long(kl_resp_header(c, "ratelimit-reset"), &d);
    if (r->has_ratelimit) {
        double reset;
        kl_duration_check((double)d, &reset); /* seconds until the window resets: capped */
        r->rl_limit = a;
        r->rl_remaining = b;
        r->rl_reset = (long)reset;
    }
    if (r->status >= 200 && r->status < 300) return KL_OK;
    return http_error(c, op);
}
