/*
 * kl_internal.h - what the core's files share; not part of the public API.
 */
#ifndef KL_INTERNAL_H
#define KL_INTERNAL_H

#include "duration.h"
#include "klaviyo.h"
#include "limiter.h"
#include "limiter_redis.h"
#include "retry.h"
#include <stddef.h>
#include <stdint.h>

/* Growable byte buffer, always NUL-terminated when p != NULL. */
typedef struct kl_buf {
    char *p;
    size_t len, cap;
} kl_buf;

int kl_buf_reserve(kl_buf *b, size_t extra); /* 0 ok, -1 out of memory */
int kl_buf_add(kl_buf *b, const char *s, size_t n);
int kl_buf_adds(kl_buf *b, const char *s);
int kl_buf_addc(kl_buf *b, char ch);
void kl_buf_reset(kl_buf *b);             /* len = 0, keeps memory */
void kl_buf_trim(kl_buf *b, size_t keep); /* frees the block when cap > keep */
#define KL_KEEP_BYTES (1024 * 1024)       /* answer buffers kept between answers */
void kl_buf_free(kl_buf *b);
char *kl_strdup(const char *s); /* NULL on NULL or out of memory */
char *kl_strndup(const char *s, size_t n);

/* Percent-encode for a URL component: RFC 3986 unreserved kept, every other byte %XX. */
int kl_pct_encode(kl_buf *b, const char *s, size_t n);

/* A parsed http(s) URL.  host is lowercase and keeps IPv6 brackets; port is explicit. */
typedef struct kl_url {
    int https;
    char *host;
    int port;
    char *path;  /* from the first '/' up to '?' or '#' (never NULL, may be "") */
    char *query; /* after '?', up to '#', or NULL */
} kl_url;

/* 0 ok; -1 malformed (why in *why); -2 out of memory. */
int kl_url_parse(const char *s, kl_url *u, const char **why);
void kl_url_free(kl_url *u);

/* Reads a request path (up to '?', '#' or the end) as the most lenient server might:
 * percent-escapes decoded (hex digits in either case), '\' taken as '/', empty segments
 * (repeated '/') dropped, ";params" cut off a segment's name.  -1 (why in *why) for a '%'
 * without two hex digits or a dot segment ("." or "..", plain, encoded or with ";params"),
 * which a server resolving it could walk from one prefix to another; else 0 with the first
 * segment's name in `first`, lower-cased ("" when there is none or it is too long to be a
 * prefix any rule names).  The key/path rule (request.c) reads `first`. */
#define KL_SEG_MAX 16
int kl_path_check(const char *path, char first[KL_SEG_MAX], const char **why);

#define KL_MAX_BUILT_HEADERS 32

/* request.c's state: the last built request */
typedef struct kl_req {
    kl_buf url, hstore, method;
    kl_header bh[KL_MAX_BUILT_HEADERS];
    const char *bline[KL_MAX_BUILT_HEADERS]; /* "Name: value" for libcurl */
    size_t n_bh;
    int hs_valid, hs_body, hs_auth; /* what the headers in hstore were built for */
    char hs_rev[48];
    kl_built built;
} kl_req;

/* response.c's state: the last answer */
typedef struct kl_ans {
    kl_buf body, rhstore;
    size_t *rh_off; /* pairs of offsets into rhstore: name, value */
    size_t n_rh, cap_rh;
    kl_header *rh;
    size_t cap_rhv;
    kl_response res;
} kl_ans;

/* error.c's state: the last error, whose strings (and body) are the record's own copies,
 * malloc-ed by whoever fills them (kl_fail, response.c) and freed by kl_error_clear */
typedef struct kl_rec {
    kl_error error;
} kl_rec;

/* transport_curl.c's state */
typedef struct kl_net {
    void *curl;
    void *multi;        /* kl_send's transfers and every batch's run on it (made at the
                             first); it holds the connection cache */
    long keep;          /* idle connections it keeps: the widest batch's (0: libcurl's default) */
    void *slist;        /* headers as libcurl holds them, built from ... */
    kl_buf slist_src;   /* ... this copy of hstore: unchanged headers reuse the list */
    void *curlu;        /* the URL parsed once by libcurl (CURLU), from ... */
    kl_buf curlu_src;   /* ... this URL: the same URL again is not parsed again */
    char curl_err[256]; /* CURL_ERROR_SIZE */
    int body_too_large;
    int headers_ended; /* the last answer's header block reached its blank line */
} kl_net;

/* call.c's settings: the client's limiter and retry policy.  A batch's slot clients borrow
 * the parent's limiter or Redis store (lim_owned = 0). */
typedef struct kl_policy {
    kl_limiter *lim;
    kl_redis *redis;
    int lim_owned;
    char *account;
    kl_retry_policy retry;
    uint64_t rng;
} kl_policy;

/* One request in progress (call.c): a client holds one for kl_send and kl_batch; a driver in
 * Lua holds one per request, so requests of one client may overlap there. */
typedef struct kl_call {
    kl_send_info info;
    const char *op; /* the request's operation (kl_build's copy) */
    kl_buf lkey;    /* "<account>/<operation>" */
    kl_limits limits;
    int limited, safe, outside; /* outside: the driver holds the limiter store */
    kl_retry_policy cur;
    kl_usec start, delay;  /* delay: a wait the driver makes before the next step */
    int state, after;      /* after: the state that follows a FEED step */
    int answered;          /* the last step was an answer (not the limiter) */
    int kind;              /* KL_ERR_* the call failed with */
    double block;          /* after an answer: seconds a 429 blocks the key, or -1 */
    long remaining, reset; /* after an answer: RateLimit-Remaining and -Reset, or -1 */
    kl_usec sent_at;       /* when the attempt in progress started (kl_call_observe) */
} kl_call;

/* A client: its settings (client.c) and each file's own state. */
struct kl_client_priv {
    kl_url base;      /* base URL; path is the prefix without trailing '/' */
    char *origin;     /* "scheme://host[:port]" as used to build URLs */
    int plain_remote; /* http:// to a non-loopback host */
    char *api_key, *access_token, *public_key, *revision, *user_agent;
    long timeout_ms, connect_timeout_ms;

    kl_req req;                                      /* request.c */
    kl_ans ans;                                      /* response.c */
    kl_rec rec;                                      /* error.c */
    kl_net net;                                      /* transport_curl.c */
    int usable;                                      /* the settings were accepted: a refused client never sends */
    kl_policy pol;                                   /* call.c */
    void (*observer)(void *ud, const kl_attempt *a); /* kl_options.observer */
    void *observer_ud;
    char *proxy, *ca_file, *ca_path, *client_cert, *client_key; /* transport_curl.c's settings */
    kl_call call;                                               /* kl_send's and kl_build's request (call.c) */
};

/* error.c: the error record (c->err, c->errstr, kl_last_error); kl_oom for out of memory */
int kl_fail(kl_client *c, int kind, const char *code, const char *operation, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 5, 6)))
#endif
    ;
int kl_oom(kl_client *c, const char *operation);
void kl_error_clear(kl_client *c);

/* clock.c */
kl_usec kl_now(void); /* monotonic microseconds */
void kl_sleep_us(kl_usec us);

/* request.c: fills priv->url/hstore/bh/built; returns KL_OK or an error via kl_fail. */
int kl_build_request(kl_client *c, const kl_request *req);

/* response.c: interprets priv->res (status, headers, body already stored). */
int kl_interpret_stored(kl_client *c, const char *operation);
/* response header storage used by transports */
void kl_resp_reset(kl_client *c);
int kl_resp_add_header(kl_client *c, const char *name, size_t nlen, const char *value, size_t vlen);
int kl_resp_finish_headers(kl_client *c);
const char *kl_resp_header(const kl_client *c, const char *lname);

/* transport_curl.c */
int kl_transport_init(kl_client *c);
void *kl_transport_multi(kl_client *c, size_t width);
void kl_transport_free(kl_client *c);
/* one transfer in two halves, for the multi interface (batch.c) */
int kl_transport_prepare(kl_client *c, const char *operation);
int kl_transport_finish(kl_client *c, int curl_code, const char *operation);

/* call.c: one request's life; what a driver does at each step is described there */
enum { KL_STEP_LIMIT, KL_STEP_WAIT, KL_STEP_SEND, KL_STEP_FEED, KL_STEP_DONE, KL_STEP_FAIL };
int kl_call_setup(kl_client *c, const kl_options *o);     /* at kl_new */
void kl_call_share(kl_client *to, const kl_client *from); /* to borrows from's limiter */
void kl_call_free(kl_client *c);
/* account: the key prefix of a limiter store the driver holds, or NULL (the core's store) */
int kl_call_begin(kl_client *c, kl_call *k, const kl_request *req, const char *account);
int kl_call_next(kl_client *c, kl_call *k, kl_usec *wait);         /* a KL_STEP_* */
void kl_call_received(kl_client *c, kl_call *k, int transport_rc); /* the answer is in c */
void kl_call_answered(kl_client *c, kl_call *k, int rc);           /* rc: the answer read */
/* the request begun asks the driver's store, keys prefixed with account, or none (NULL) */
int kl_call_store(kl_client *c, kl_call *k, const char *account);
int kl_call_limited(kl_client *c, kl_call *k, double wait, const char *why); /* its answer */
const char *kl_call_limit_key(const kl_call *k, kl_limits *limits);
/* what a driver-held store is told after an answer: 1 when there is something */
int kl_call_feed(const kl_call *k, double *block, long *remaining, long *reset);
double kl_call_time_left(const kl_call *k);          /* seconds left of retry_max_time */
void kl_call_copy(kl_call *to, const kl_call *from); /* the request kl_build began */
void kl_call_release(kl_call *k);
/* tells the client's observer about the attempt of the request c last built: phase
 * KL_ATTEMPT_REQUEST just before it is sent, KL_ATTEMPT_RESPONSE after kl_call_received */
void kl_call_observe(kl_client *c, kl_call *k, int phase);

/* client.c: a client with the same settings sharing c's limiter (for kl_batch's slots) */
kl_client *kl_clone(kl_client *c);

#endif
