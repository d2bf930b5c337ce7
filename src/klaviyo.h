/*
 * klaviyo.h - public C API of lua-klaviyo's core (usable from C without Lua).
 *
 *   kl_options o = {0};
 *   o.api_key = getenv("KLAVIYO_API_KEY");
 *   kl_client *c = kl_new(&o);                  // NULL only when out of memory
 *   if (c->err) { fprintf(stderr, "%s\n", c->errstr); kl_free(c); return 1; }
 *   kl_request r = {0};
 *   r.operation = "create_event"; r.method = "POST"; r.path = "/api/events";
 *   r.body = json; r.body_len = strlen(json); r.auth = KL_AUTH_PRIVATE;
 *   if (kl_send(c, &r) == KL_OK) printf("%ld\n", kl_last_response(c)->status);
 *   else fprintf(stderr, "%s\n", c->errstr);   // e.g. "create_event: HTTP 400 invalid: ..."
 *   kl_free(c);
 *
 * Link with build/libklaviyo.a and libcurl (examples/track.c is a complete program).
 *
 * Style after hiredis: one prefix (kl_), version macros, an options struct, a client
 * context that carries err/errstr of its last failure.  A client owns one libcurl easy
 * handle, so one connection serves many requests.  Results (kl_response, kl_error,
 * kl_built) are owned by the client and stay valid until the next call on it; this keeps
 * the hot path free of per-request allocations.
 *
 * Secrets (API key, access token) never appear in errstr or any error field.
 * A client is not thread-safe; use one per thread.
 */
#ifndef KLAVIYO_H
#define KLAVIYO_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KL_VERSION_MAJOR 0
#define KL_VERSION_MINOR 1
#define KL_VERSION_PATCH 0
#define KL_VERSION "0.1.0"

#define KL_DEFAULT_BASE_URL "https://a.klaviyo.com"
#define KL_DEFAULT_REVISION "2026-07-15"
#define KL_DEFAULT_TIMEOUT_MS 30000L
#define KL_DEFAULT_CONNECT_TIMEOUT_MS 10000L
/* The largest response body a transport holds; a longer one fails with response_too_large. */
#define KL_MAX_BODY ((size_t)64 * 1024 * 1024)

/* kl_client.err / return values of the request functions. */
#define KL_OK 0
#define KL_ERR_REFUSED 1   /* refused locally: nothing was sent */
#define KL_ERR_TRANSPORT 2 /* no complete HTTP answer (DNS, connect, TLS, timeout, reset...) */
#define KL_ERR_HTTP 3      /* the server answered with a non-2xx status */
#define KL_ERR_USAGE 4     /* programmer error: malformed request description */
#define KL_ERR_OOM 5       /* out of memory */
#define KL_ERR_THROTTLED 6 /* a wait (Retry-After, the rate limiter) would outlast the call */

/* Which credential a request uses. */
#define KL_AUTH_PRIVATE 0 /* Authorization: Klaviyo-API-Key (or Bearer when a token is set); paths under /api/ only */
#define KL_AUTH_PUBLIC 1  /* company_id=<public key> in the query; paths under /client/ only */
#define KL_AUTH_CLIENT                                                                                                 \
    2 /* the request's own Authorization header (an OAuth app's Basic credential); no key or token; paths under /oauth/ only */

struct kl_attempt;
struct kl_header;

typedef struct kl_options {
    const char *base_url;     /* NULL: KL_DEFAULT_BASE_URL; http(s)://host[:port][/prefix] */
    const char *api_key;      /* private key (pk_...), or NULL */
    const char *access_token; /* OAuth bearer token, or NULL; wins over api_key when both set */
    const char *public_key;   /* public key / site id for /client/ paths, or NULL */
    const char *revision;     /* NULL: KL_DEFAULT_REVISION; YYYY-MM-DD[.suffix] */
    const char *user_agent;   /* NULL: "lua-klaviyo/" KL_VERSION */
    long timeout_ms;          /* total per request; 0: KL_DEFAULT_TIMEOUT_MS */
    long connect_timeout_ms;  /* 0: KL_DEFAULT_CONNECT_TIMEOUT_MS */

    /* Rate limiting (see limiter.h): only requests that carry limits (kl_request.limit_*)
     * are limited, under the key "<account>/<operation>". */
    int limiter;                /* KL_LIMITER_LOCAL (0, in-process), KL_LIMITER_OFF, KL_LIMITER_REDIS */
    double limiter_safety;      /* in (0, 1]; 0: 1.0 */
    const char *limiter_url;    /* KL_LIMITER_REDIS: redis://[:password@]host[:port][/db] */
    const char *limiter_prefix; /* KL_LIMITER_REDIS: key prefix; NULL: "klaviyo:limit:" */
    const char *limiter_script; /* KL_LIMITER_REDIS: the script's text; NULL: the embedded one */
    const char *account;        /* names the account in limiter keys (never a secret); NULL: a
                                 hash of the api_key (else public key, else access token) */

    /* Retries (see retry.h): 0 means the default in brackets. */
    int retry_attempts;    /* attempts in all, first included [4]; 1: never retry */
    double retry_max_time; /* seconds from the first attempt a retry must start within [60] */
    double retry_base;     /* seconds: ceiling of the first backoff [0.5] */
    double retry_cap;      /* seconds: ceiling of any backoff [20] */

    /* Network (libcurl): NULL means none / libcurl's default.  Printable, no spaces. */
    const char *proxy;       /* http://, https://, socks4://, socks5://, socks5h:// proxy URL;
                                 used for every request, loopback and plain http too (the
                                 environment's proxies are not) */
    const char *ca_file;     /* PEM file of CAs to trust instead of the system's */
    const char *ca_path;     /* directory of hashed CA certificates (c_rehash) */
    const char *client_cert; /* PEM client certificate presented when the server asks */
    const char *client_key;  /* PEM private key of client_cert (needs client_cert) */

    /* Called for every attempt of every request, before it goes out and when it ended (see
     * kl_attempt); NULL: none.  It must not call back into this client. */
    void (*observer)(void *ud, const struct kl_attempt *a);
    void *observer_ud;
} kl_options;

/* What an observer is told about one attempt.  url and headers are as sent, except that the
 * Authorization value reads "[redacted]"; no field holds the private key or access token. */
#define KL_ATTEMPT_REQUEST 0  /* about to be sent */
#define KL_ATTEMPT_RESPONSE 1 /* ended: an answer (status) or a failure (code) */
typedef struct kl_attempt {
    int phase;             /* KL_ATTEMPT_* */
    const char *operation; /* may be NULL */
    const char *method;
    const char *url;
    const struct kl_header *headers; /* request headers, credentials redacted */
    size_t n_headers;
    int attempt;      /* 1 for the first */
    double waited;    /* seconds waited so far in the call (limiter and backoff) */
    double duration;  /* RESPONSE: seconds the attempt took */
    long status;      /* RESPONSE: HTTP status, 0 when there was no answer */
    const char *code; /* RESPONSE: the error code of a failed attempt, or NULL */
} kl_attempt;

#define KL_LIMITER_LOCAL 0
#define KL_LIMITER_OFF 1
#define KL_LIMITER_REDIS 2

/* kl_request.safe: may the request be repeated once it may have reached the server? */
#define KL_SAFE_AUTO 0 /* GET, PUT, PATCH, DELETE yes; POST no */
#define KL_SAFE_YES 1  /* e.g. create_event with a unique_id, subscription jobs */
#define KL_SAFE_NO 2

/* A query parameter or extra header.  For a query parameter, `values`/`n_values` (when
 * values != NULL) is a list: items are encoded one by one and joined with commas, as
 * Klaviyo expects for fields[...], include, additional-fields[...]. */
typedef struct kl_param {
    const char *name;
    const char *value;
    const char *const *values;
    size_t n_values;
} kl_param;

typedef struct kl_request {
    const char *operation;          /* operation id, copied into errors; may be NULL */
    const char *method;             /* GET POST PATCH PUT DELETE */
    const char *path;               /* template, e.g. "/api/profiles/{id}" ... */
    const char *const *path_params; /* ... values in template order, percent-encoded here */
    size_t n_path_params;
    const char *url; /* or a full URL (links.next) instead of path */
    const kl_param *query;
    size_t n_query;
    const kl_param *headers; /* extra headers */
    size_t n_headers;
    const char *body; /* bytes, already encoded JSON, or NULL */
    size_t body_len;
    int auth;             /* KL_AUTH_PRIVATE, KL_AUTH_PUBLIC or KL_AUTH_CLIENT */
    const char *revision; /* per-call override or NULL */
    /* the operation's rate limits (requests per 1 s, 60 s, 86400 s; 0: no such window);
     * all 0: the request is not rate limited */
    unsigned long limit_burst, limit_steady, limit_daily;
    int safe;              /* KL_SAFE_* */
    int retry_attempts;    /* per call; 0: the client's */
    double retry_max_time; /* per call; 0: the client's */
} kl_request;

/* What the last kl_send did (also per request of kl_batch). */
typedef struct kl_send_info {
    int attempts;        /* requests that went out (or were tried) */
    int retries;         /* attempts after the first */
    int throttled;       /* 429 answers received */
    double waited;       /* seconds spent waiting for the rate limiter */
    double backoff;      /* seconds spent waiting between attempts */
    const char *stopped; /* after a failure: why it was not retried (static text), or NULL */
} kl_send_info;

typedef struct kl_header kl_header;
struct kl_header {
    char *name;  /* lowercase */
    char *value; /* surrounding blanks trimmed */
};

typedef struct kl_response {
    long status;
    kl_header *headers;
    size_t n_headers;
    char *body; /* NUL-terminated for convenience; body_len is authoritative */
    size_t body_len;
    int has_ratelimit; /* RateLimit-Limit/Remaining/Reset all present and numeric */
    long rl_limit, rl_remaining, rl_reset;
    double retry_after; /* seconds from Retry-After (or a 429's detail), -1 when absent */
} kl_response;

/* Error detail of the last failure.  Strings are NULL when absent.
 *
 * code, by kind:
 *   KL_ERR_HTTP       Klaviyo's own errors[0].code ("invalid", "throttled", "duplicate_profile"...);
 *                     for bodies that are not a JSON:API error document: "edge_blocked" (HTML 403
 *                     from the edge), "edge_error" (520-527) or a name for the status
 *                     ("bad_gateway", "service_unavailable", ...).
 *   KL_ERR_TRANSPORT  "dns_failed", "connect_failed", "connect_timeout" (nothing sent),
 *                     "tls_failed", "timeout" (sent, no complete answer), "connection_reset"
 *                     (reset before a response), "empty_reply", "truncated", "bad_reply",
 *                     "bad_encoding", "response_too_large", "unsupported_protocol", "transport_failed".
 *                     `sent` tells whether the request may have reached the server (what a
 *                     retry policy needs to know).
 *   KL_ERR_REFUSED    "private_key_to_client", "public_key_to_api", "missing_credential",
 *                     "invalid_credential", "insecure_transport", "invalid_revision",
 *                     "foreign_url", "invalid_url", "invalid_path", "invalid_base_url",
 *                     "invalid_option", "client_unusable".
 *   KL_ERR_THROTTLED  "throttled": the wait in retry_after would end after the time the call
 *                     may last (retry_max_time); status 429 when a 429 said so, 0 when the
 *                     rate limiter did (nothing sent).
 *   KL_ERR_USAGE      "invalid_request", "invalid_method", "invalid_auth", "invalid_path",
 *                     "invalid_path_params", "invalid_query", "invalid_header", "too_many_headers".
 */
typedef struct kl_error {
    int kind;         /* KL_ERR_* */
    long status;      /* HTTP status, 0 for transport/refused */
    const char *code; /* Klaviyo's code ("throttled"...) or a local one ("timeout",
                            "connect_failed", "private_key_to_client"...) */
    const char *title;
    const char *detail;
    const char *pointer;   /* source.pointer */
    const char *parameter; /* source.parameter */
    const char *request_id;
    const char *operation;
    const char *meta_json; /* raw JSON text of errors[0].meta, or NULL */
    double retry_after;    /* -1 when absent */
    int sent;              /* transport: 1 if the request may have reached the server */
    const char *body;      /* raw response body (HTTP errors), or NULL */
    size_t body_len;
} kl_error;

/* A request as it would go on the wire, for other transports (OpenResty). */
typedef struct kl_built {
    const char *method;
    const char *url;
    const kl_header *headers; /* name as sent (canonical case), value */
    size_t n_headers;
    const char *body;
    size_t body_len;
} kl_built;

typedef struct kl_client_priv kl_client_priv;

typedef struct kl_client {
    int err;          /* KL_OK or KL_ERR_* of the last call */
    char errstr[512]; /* one readable line; never holds a secret */
    kl_client_priv *priv;
} kl_client;

/* Create a client.  Returns NULL only when out of memory; otherwise check c->err:
 * refused settings (bad revision, key with control chars, secret over plain http to a
 * non-loopback host, unparsable base URL) leave c->err = KL_ERR_REFUSED.  kl_free it
 * either way. */
kl_client *kl_new(const kl_options *opts);
void kl_free(kl_client *c);

/* Replace the bearer token (OAuth refresh).  NULL or "" clears it (the api_key, if any,
 * is used again).  Refused: control characters, or a client on plain http to a
 * non-loopback host. */
int kl_set_access_token(kl_client *c, const char *token);

/* Send a request and wait for the answer (blocking, libcurl).  A request with limits waits
 * (sleeps) for the rate limiter first; a failure the retry policy allows is repeated after
 * its backoff (kl_last_info says what happened).  KL_OK: kl_last_response()
 * holds the 2xx answer.  Otherwise kl_last_error() describes the failure (also c->err and
 * c->errstr); after an HTTP error kl_last_response() still holds status and headers.
 * The request's strings and body only need to live for the duration of the call. */
int kl_send(kl_client *c, const kl_request *req);

/* Build without sending (the same local checks as kl_send); *out stays valid until the
 * next call on the client and its body points at req->body. */
int kl_build(kl_client *c, const kl_request *req, const kl_built **out);

/* Interpret an answer another transport received, exactly as kl_send would. */
int kl_interpret(kl_client *c, long status, const kl_header *headers, size_t n_headers, const char *body,
                 size_t body_len, const char *operation);

/* Many requests at once over libcurl's multi interface, through the same limiter and retry
 * rules as kl_send, at most `concurrency` in flight.  `get` describes request `index` (0..n-1)
 * into *req (its strings must live until `done` is called for that index; `slot` in
 * 0..concurrency-1 says which of the batch's connections carries it, so a caller can keep
 * per-slot storage) and returns 0, or non-zero to fail that request without sending it
 * (`done` then gets KL_ERR_USAGE and `sc`'s error says "could not describe the request").
 * `done` gets the result on `sc` (kl_last_response, kl_last_error, kl_last_info and errstr of
 * `sc`, valid during the call) and rc as kl_send returns it.  Returns KL_OK when every request
 * was run (each may have failed: see done), else an error on c (out of memory, bad arguments). */
typedef int (*kl_batch_get)(void *ud, size_t index, size_t slot, kl_request *req);
typedef void (*kl_batch_done)(void *ud, size_t index, size_t slot, kl_client *sc, int rc);
int kl_batch(kl_client *c, size_t n, int concurrency, kl_batch_get get, kl_batch_done done, void *ud);

/* Gives back the memory the last answer holds beyond 1 MB (a large body, its headers, the
 * error's copy of the body): kl_last_response and kl_last_error then lose those parts.  For a
 * binding that has copied what it needs; otherwise the next request gives it back. */
void kl_shrink(kl_client *c);

const kl_send_info *kl_last_info(const kl_client *c);
const kl_response *kl_last_response(const kl_client *c);
const kl_error *kl_last_error(const kl_client *c);

/* Pure helpers, exposed for tests and other bindings. */
int kl_revision_valid(const char *rev);    /* 1 if YYYY-MM-DD (real date)[.suffix] */
int kl_credential_valid(const char *s);    /* 1 if non-empty, no space/CR/LF/control */
int kl_host_is_loopback(const char *host); /* 127.0.0.0/8, ::1, localhost */
/* The default account part of limiter keys for a credential: "h" + 16 hex digits (FNV-1a 64);
 * out must hold 18 bytes.  Other transports use it to share keys with this core's. */
void kl_account_key(const char *credential, char *out);

#ifdef __cplusplus
}
#endif
#endif
