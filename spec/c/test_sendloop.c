/*
 * test_sendloop.c - the limiter and retry steps of kl_send and kl_batch over real loopback
 * sockets: what is repeated and what is not, Retry-After, per-request limits and overrides,
 * an unreachable Redis store refusing to send, and batches in order.  The server is a forked
 * process answering a script of statuses in arrival order (several connections at once, for
 * kl_batch) and reporting each request it received on a pipe.
 */
#define _POSIX_C_SOURCE 200809L
#include "ctest.h"
#include "kl_internal.h"
#include "klaviyo.h"
#include "testnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXC 32

static int free_port(void) {
    int port, s = listen_any(&port);
    close(s);
    return port;
}

/* Answers `script` ("503", "429:1" = with Retry-After: 1, "200"), one entry per request in
 * arrival order, then 200s; writes one byte per request to `report`. */
static void serve(int ls, const char *const *script, int report) {
    struct pollfd pf[MAXC + 1];
    char buf[MAXC][8192];
    size_t got[MAXC];
    int n = 1, next = 0, i;
    memset(got, 0, sizeof got);
    pf[0].fd = ls;
    pf[0].events = POLLIN;
    for (;;) {
        if (poll(pf, (nfds_t)n, -1) < 0) {
            if (errno == EINTR) continue;
            return;
        }
        if ((pf[0].revents & POLLIN) && n <= MAXC) {
            int fd = accept(ls, NULL, NULL);
            if (fd >= 0) {
                pf[n].fd = fd;
                pf[n].events = POLLIN;
                pf[n].revents = 0;
                got[n - 1] = 0;
                n++;
            }
        }
        for (i = 1; i < n; i++) {
            char *end;
            ssize_t r;
            if (!(pf[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            r = read(pf[i].fd, buf[i - 1] + got[i - 1], sizeof buf[0] - 1 - got[i - 1]);
            if (r <= 0) {
                close(pf[i].fd);
                pf[i] = pf[n - 1];
                memcpy(buf[i - 1], buf[n - 2], got[n - 2]);
                got[i - 1] = got[n - 2];
                n--;
                i--;
                continue;
            }
            got[i - 1] += (size_t)r;
            buf[i - 1][got[i - 1]] = '\0';
            if ((unsigned char)buf[i - 1][0] == 0x16) { /* a TLS ClientHello: answer in plain text */
                send_all(pf[i].fd, "HTTP/1.1 400 X\r\n\r\n", 18);
                got[i - 1] = 0;
                continue;
            }
            end = strstr(buf[i - 1], "\r\n\r\n");
            if (end) {
                const char *cl = strstr(buf[i - 1], "Content-Length: ");
                size_t blen = cl && cl < end ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
                size_t need = (size_t)(end + 4 - buf[i - 1]) + blen;
                char resp[512], body[256];
                const char *entry = script[next] ? script[next++] : "200";
                int status = atoi(entry), ra = strchr(entry, ':') ? atoi(strchr(entry, ':') + 1) : -1;
                char rah[64] = "";
                if (got[i - 1] < need) continue; /* the body is still coming */
                if (status < 300) snprintf(body, sizeof body, "{\"data\":[]}");
                else
                    snprintf(body, sizeof body,
                             "{\"errors\":[{\"status\":\"%d\",\"code\":\"c%d\",\"title\":\"t\",\"detail\":\"d\"}]}",
                             status, status);
                if (ra >= 0) snprintf(rah, sizeof rah, "Retry-After: %d\r\n", ra);
                snprintf(resp, sizeof resp,
                         "HTTP/1.1 %d X\r\nContent-Type: application/vnd.api+json\r\n%s"
                         "Content-Length: %zu\r\n\r\n%s",
                         status, rah, strlen(body), body);
                send_all(report, "r", 1);
                send_all(pf[i].fd, resp, strlen(resp));
                memmove(buf[i - 1], buf[i - 1] + need, got[i - 1] - need);
                got[i - 1] -= need;
            }
        }
    }
}

typedef struct server {
    pid_t pid;
    int report;
    char base[64];
} server;

static server start(const char *const *script) {
    server s;
    int port, ls = listen_any(&port), p[2];
    if (pipe(p)) {
        perror("pipe");
        exit(2);
    }
    s.pid = fork();
    if (s.pid == 0) {
        close(p[0]);
        alarm(120); /* never outlives a test run whose parent died early */
        serve(ls, script, p[1]);
        _exit(0);
    }
    close(ls);
    close(p[1]);
    fcntl(p[0], F_SETFL, O_NONBLOCK);
    s.report = p[0];
    snprintf(s.base, sizeof s.base, "http://127.0.0.1:%d", port);
    return s;
}

/* requests the server received since the last call */
static int received(server *s) {
    char b[256];
    int n = 0;
    ssize_t r;
    while ((r = read(s->report, b, sizeof b)) > 0) n += (int)r;
    return n;
}

static void stop(server *s) {
    kill(s->pid, SIGTERM);
    waitpid(s->pid, NULL, 0);
    close(s->report);
}

static kl_client *client(const char *base, int limiter, const char *url) {
    kl_options o;
    kl_client *c;
    memset(&o, 0, sizeof o);
    o.base_url = base;
    o.api_key = "pk_sendloop_test";
    o.timeout_ms = 5000;
    o.limiter = limiter;
    o.limiter_url = url;
    o.retry_base = 0.01; /* short backoffs: the test waits for Retry-After and the limiter only */
    o.retry_cap = 0.05;
    c = kl_new(&o);
    if (!c || c->err) {
        fprintf(stderr, "client: %s\n", c ? c->errstr : "oom");
        exit(2);
    }
    return c;
}

static kl_request req(const char *method, int safe) {
    kl_request r;
    memset(&r, 0, sizeof r);
    r.operation = "op_s";
    r.method = method;
    r.path = "/api/things";
    r.safe = safe;
    if (strcmp(method, "GET") != 0) {
        r.body = "{\"data\":{}}";
        r.body_len = 11;
    }
    return r;
}

typedef struct batch_seen {
    int order[16];
    long status[16];
    int n;
    kl_request r;
} batch_seen;

static int b_get(void *ud, size_t index, size_t slot, kl_request *out) {
    batch_seen *b = ud;
    (void)slot;
    if (index == 3) return 1; /* "cannot describe" this one */
    *out = b->r;
    return 0;
}

static void b_done(void *ud, size_t index, size_t slot, kl_client *sc, int rc) {
    batch_seen *b = ud;
    (void)slot;
    b->order[b->n++] = (int)index;
    b->status[index] = rc == KL_OK ? kl_last_response(sc)->status : -rc;
}

typedef struct observed {
    int n, phase[16], attempt[16];
    long status[16];
    int redacted, leaked, urls_ok;
    double waited[16];
} observed;

static void observe(void *ud, const kl_attempt *a) {
    observed *o = ud;
    size_t i;
    if (o->n >= 16) return;
    o->phase[o->n] = a->phase;
    o->attempt[o->n] = a->attempt;
    o->status[o->n] = a->status;
    o->waited[o->n] = a->waited;
    o->n++;
    if (a->url && strstr(a->url, "/api/things")) o->urls_ok++;
    for (i = 0; i < a->n_headers; i++) {
        if (strstr(a->headers[i].value, "pk_sendloop_test")) o->leaked++;
        if (strcmp(a->headers[i].name, "Authorization") == 0 && strcmp(a->headers[i].value, "[redacted]") == 0)
            o->redacted++;
    }
}

/* The network options are checked at kl_new: a refused one leaves the client unusable. */
static void check_refused(kl_options *o, const char *what) {
    kl_client *c = kl_new(o);
    CHECK(c && c->err == KL_ERR_REFUSED && strstr(c->errstr, what));
    kl_free(c);
}

static void observer_and_options(void) {
    { /* the observer sees every attempt of kl_send, the key redacted */
        static const char *const script[] = {"503", "503", "200", NULL};
        server s = start(script);
        observed ob;
        kl_options o;
        kl_client *c;
        kl_request r = req("GET", KL_SAFE_AUTO);
        memset(&ob, 0, sizeof ob);
        memset(&o, 0, sizeof o);
        o.base_url = s.base;
        o.api_key = "pk_sendloop_test";
        o.retry_base = 0.01;
        o.retry_cap = 0.02;
        o.observer = observe;
        o.observer_ud = &ob;
        c = kl_new(&o);
        CHECK(c && !c->err);
        CHECK_INT(kl_send(c, &r), KL_OK);
        CHECK_INT(ob.n, 6);
        CHECK_INT(ob.phase[0], KL_ATTEMPT_REQUEST);
        CHECK_INT(ob.phase[1], KL_ATTEMPT_RESPONSE);
        CHECK_INT(ob.attempt[4], 3);
        CHECK_INT(ob.attempt[5], 3);
        CHECK_INT(ob.status[1], 503);
        CHECK_INT(ob.status[5], 200);
        CHECK(ob.waited[0] == 0 && ob.waited[2] > 0);
        CHECK_INT(ob.redacted, 6);
        CHECK_INT(ob.leaked, 0);
        CHECK_INT(ob.urls_ok, 6);
        kl_free(c);
        stop(&s);
    }
    {
        kl_options o;
        memset(&o, 0, sizeof o);
        o.api_key = "pk_x";
        o.proxy = "127.0.0.1:3128";
        check_refused(&o, "proxy must be");
        o.proxy = "http://proxy\r\n:3128";
        check_refused(&o, "proxy is empty or holds");
        o.proxy = NULL;
        o.ca_file = "";
        check_refused(&o, "ca_file is empty");
        o.ca_file = NULL;
        o.client_key = "/k.pem";
        check_refused(&o, "client_key needs client_cert");
    }
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    observer_and_options();
    { /* a 503 is repeated; a success after a retry carries no earlier error */
        static const char *const script[] = {"503", "200", NULL};
        server s = start(script);
        kl_client *c = client(s.base, KL_LIMITER_LOCAL, NULL);
        kl_request r = req("POST", KL_SAFE_AUTO);
        CHECK_INT(kl_send(c, &r), KL_OK);
        CHECK_INT(kl_last_response(c)->status, 200);
        CHECK_INT(kl_last_info(c)->attempts, 2);
        CHECK_INT(kl_last_info(c)->retries, 1);
        CHECK_INT(c->err, KL_OK);
        CHECK_INT(received(&s), 2);
        kl_free(c);
        stop(&s);
    }
    { /* 500: a POST is not repeated, unless safe; a GET is */
        static const char *const script[] = {"500", "500", "200", "500", "200", NULL};
        server s = start(script);
        kl_client *c = client(s.base, KL_LIMITER_LOCAL, NULL);
        kl_request r = req("POST", KL_SAFE_AUTO);
        CHECK_INT(kl_send(c, &r), KL_ERR_HTTP);
        CHECK_INT(kl_last_error(c)->status, 500);
        CHECK_INT(kl_last_info(c)->attempts, 1);
        CHECK(kl_last_info(c)->stopped && strstr(kl_last_info(c)->stopped, "not safe"));
        r = req("POST", KL_SAFE_YES);
        CHECK_INT(kl_send(c, &r), KL_OK);
        CHECK_INT(kl_last_info(c)->retries, 1);
        r = req("GET", KL_SAFE_AUTO);
        CHECK_INT(kl_send(c, &r), KL_OK);
        CHECK_INT(kl_last_info(c)->retries, 1);
        CHECK_INT(received(&s), 5);
        kl_free(c);
        stop(&s);
    }
    { /* attempts: per request 1 = no retry; the client's cap stops a long run of 503s */
        static const char *const script[] = {"503", "503", "503", "503", "503", "503", NULL};
        server s = start(script);
        kl_client *c = client(s.base, KL_LIMITER_LOCAL, NULL);
        kl_request r = req("GET", KL_SAFE_AUTO);
        r.retry_attempts = 1;
        CHECK_INT(kl_send(c, &r), KL_ERR_HTTP);
        CHECK_INT(kl_last_info(c)->attempts, 1);
        r.retry_attempts = 0;
        CHECK_INT(kl_send(c, &r), KL_ERR_HTTP);
        CHECK_INT(kl_last_info(c)->attempts, 4);
        CHECK_STR(kl_last_info(c)->stopped, "attempts used up");
        CHECK_INT(received(&s), 5);
        kl_free(c);
        stop(&s);
    }
    { /* 429 with Retry-After: 1: repeated no earlier than that; counted */
        static const char *const script[] = {"429:1", "200", NULL};
        server s = start(script);
        kl_client *c = client(s.base, KL_LIMITER_LOCAL, NULL);
        kl_request r = req("POST", KL_SAFE_NO);
        r.limit_burst = 10;
        CHECK_INT(kl_send(c, &r), KL_OK);
        CHECK_INT(kl_last_info(c)->throttled, 1);
        CHECK(kl_last_info(c)->backoff >= 1.0);
        CHECK_INT(received(&s), 2);
        kl_free(c);
        stop(&s);
    }
    { /* a 429 whose Retry-After (capped at a day) outlasts the call: throttled at once, with
         * its status; the next call is not sent and does not sleep on the block either */
        static const char *const script[] = {"429:100000", NULL};
        server s = start(script);
        kl_client *c = client(s.base, KL_LIMITER_LOCAL, NULL);
        kl_request r = req("GET", KL_SAFE_AUTO);
        kl_usec t0 = kl_now();
        r.limit_burst = 10;
        CHECK_INT(kl_send(c, &r), KL_ERR_THROTTLED);
        CHECK_INT(c->err, KL_ERR_THROTTLED);
        CHECK_INT(kl_last_error(c)->kind, KL_ERR_THROTTLED);
        CHECK_INT(kl_last_error(c)->status, 429);
        CHECK(kl_last_error(c)->retry_after == KL_DURATION_MAX);
        CHECK_INT(kl_send(c, &r), KL_ERR_THROTTLED);
        CHECK_INT(kl_last_error(c)->status, 0);
        CHECK_STR(kl_last_error(c)->code, "throttled");
        CHECK(kl_last_error(c)->retry_after > KL_DURATION_MAX - 60 && kl_last_error(c)->retry_after <= KL_DURATION_MAX);
        CHECK(kl_now() - t0 < 5 * KL_USEC_PER_SEC);
        CHECK_INT(received(&s), 1);
        kl_free(c);
        stop(&s);
    }
    { /* limits: burst 2 per second; the third and fourth wait; the limiter off: no wait */
        static const char *const script[] = {NULL};
        server s = start(script);
        kl_client *c = client(s.base, KL_LIMITER_LOCAL, NULL), *off = client(s.base, KL_LIMITER_OFF, NULL);
        kl_request r = req("GET", KL_SAFE_AUTO);
        double waited = 0;
        int i;
        r.limit_burst = 2;
        r.limit_steady = 100;
        for (i = 0; i < 4; i++) {
            CHECK_INT(kl_send(c, &r), KL_OK);
            if (i < 2) CHECK(kl_last_info(c)->waited == 0);
            waited += kl_last_info(c)->waited;
        }
        CHECK(waited >= 0.9); /* sends 3 and 4 come a second after sends 1 and 2 */
        for (i = 0; i < 4; i++) {
            CHECK_INT(kl_send(off, &r), KL_OK);
            CHECK(kl_last_info(off)->waited == 0);
        }
        r.limit_burst = 2000000; /* over KL_LIMIT_MAX */
        CHECK_INT(kl_send(c, &r), KL_ERR_USAGE);
        CHECK_INT(received(&s), 8);
        kl_free(c);
        kl_free(off);
        stop(&s);
    }
    { /* Redis store unreachable: refused, nothing sent; requests without limits still go */
        static const char *const script[] = {NULL};
        server s = start(script);
        char url[64];
        kl_client *c;
        kl_request r = req("GET", KL_SAFE_AUTO);
        snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port());
        c = client(s.base, KL_LIMITER_REDIS, url);
        r.limit_burst = 5;
        CHECK_INT(kl_send(c, &r), KL_ERR_REFUSED);
        CHECK_STR(kl_last_error(c)->code, "limiter_unavailable");
        CHECK(strstr(c->errstr, "unreachable") != NULL);
        CHECK(strstr(c->errstr, "op_s: ") == c->errstr);
        r.limit_burst = 0;
        CHECK_INT(kl_send(c, &r), KL_OK);
        CHECK_INT(received(&s), 1);
        kl_free(c);
        stop(&s);
    }
    { /* a TLS failure is not repeated: it would fail the same way */
        static const char *const script[] = {NULL};
        server s = start(script);
        char tls[80];
        kl_client *c;
        kl_request r = req("GET", KL_SAFE_AUTO);
        snprintf(tls, sizeof tls, "https://%s", s.base + 7); /* the plain server, spoken to in TLS */
        c = client(tls, KL_LIMITER_LOCAL, NULL);
        CHECK_INT(kl_send(c, &r), KL_ERR_TRANSPORT);
        CHECK_STR(kl_last_error(c)->code, "tls_failed");
        CHECK_INT(kl_last_info(c)->attempts, 1);
        CHECK_STR(kl_last_info(c)->stopped, "failure is not transient");
        kl_free(c);
        stop(&s);
    }
    { /* bad settings are refused at kl_new */
        kl_options o;
        kl_client *c;
        memset(&o, 0, sizeof o);
        o.base_url = "http://127.0.0.1:1";
        o.limiter = KL_LIMITER_REDIS;
        o.limiter_url = "http://not-redis";
        c = kl_new(&o);
        CHECK(c && c->err == KL_ERR_REFUSED);
        kl_free(c);
        memset(&o, 0, sizeof o);
        o.retry_attempts = -1;
        c = kl_new(&o);
        CHECK(c && c->err == KL_ERR_REFUSED);
        kl_free(c);
        memset(&o, 0, sizeof o);
        o.limiter_safety = 1.5;
        c = kl_new(&o);
        CHECK(c && c->err == KL_ERR_REFUSED);
        kl_free(c);
    }
    { /* kl_batch: 8 requests over 3 connections; one 503 repeated; index 3 not describable */
        static const char *const script[] = {"503", NULL};
        server s = start(script);
        kl_client *c = client(s.base, KL_LIMITER_LOCAL, NULL);
        batch_seen b;
        int i, seen[8] = {0};
        memset(&b, 0, sizeof b);
        b.r = req("POST", KL_SAFE_NO);
        b.r.limit_burst = 100;
        CHECK_INT(kl_batch(c, 8, 3, b_get, b_done, &b), KL_OK);
        CHECK_INT(b.n, 8);
        for (i = 0; i < b.n; i++) seen[b.order[i]]++;
        for (i = 0; i < 8; i++) {
            CHECK_INT(seen[i], 1);
            CHECK_INT(b.status[i], i == 3 ? -KL_ERR_USAGE : 200);
        }
        CHECK_INT(received(&s), 8); /* 7 sent, one of them twice */
        CHECK_INT(kl_batch(c, 0, 3, b_get, b_done, &b), KL_OK);
        CHECK_INT(kl_batch(c, 2, 0, b_get, b_done, &b), KL_ERR_USAGE);
        kl_free(c);
        stop(&s);
    }
    CTEST_END();
}
