/*
 * test_transport.c - the libcurl transport over real loopback sockets: what goes on the
 * wire, connection reuse, gzip, and each way a transfer can fail (refused connection,
 * DNS, TLS, timeout, reset before a response, empty reply, truncated body) as its own
 * clear error.  The server is a forked process speaking raw TCP, because the failures
 * under test live below HTTP (an RST, a close mid-body) where no HTTP server is precise.
 */
#define _POSIX_C_SOURCE 200809L
#include "ctest.h"
#include "klaviyo.h"
#include "testnet.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const unsigned char gz[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x03, 0xab,
                                   0x56, 0x4a, 0x49, 0x2c, 0x49, 0x54, 0xb2, 0x8a, 0x8e, 0xad, 0x05,
                                   0x00, 0x94, 0x64, 0xb2, 0x5e, 0x0b, 0x00, 0x00, 0x00};

/* Serve requests one connection at a time; the path picks the behaviour. */
static void serve(int ls) {
    int conns = 0;
    signal(SIGPIPE, SIG_IGN);
    for (;;) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) continue;
        conns++;
        for (;;) { /* requests on this connection */
            char req[65536], path[256], out[70000];
            size_t got = 0, hlen, clen = 0;
            char *end = NULL, *cl;
            int keep = 1;
            req[0] = '\0';
            while (!(end = strstr(req, "\r\n\r\n")) || got < (size_t)(end - req) + 4 + clen) {
                ssize_t r = read(fd, req + got, sizeof req - 1 - got);
                if (r <= 0) {
                    keep = 0;
                    break;
                }
                got += (size_t)r;
                req[got] = '\0';
                if ((unsigned char)req[0] == 0x16) { /* a TLS ClientHello: answer in plain text */
                    const char *p = "HTTP/1.1 400 Bad Request\r\n\r\n";
                    send_all(fd, p, strlen(p));
                    keep = 0;
                    break;
                }
                end = strstr(req, "\r\n\r\n");
                if (end && (cl = strstr(req, "Content-Length: ")) && cl < end) clen = (size_t)atol(cl + 16);
                if (end && got >= (size_t)(end - req) + 4 + clen) break;
            }
            if (!keep || !end) break;
            hlen = (size_t)(end - req) + 4;
            (void)hlen;
            if (sscanf(req, "%*s %255s", path) != 1) break;
            if (strstr(path, "/api/echo") || strstr(path, "/client/echo")) {
                int n = snprintf(out, sizeof out,
                                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Multi: a\r\nx-multi: b\r\n"
                                 "RateLimit-Limit: 700\r\nRateLimit-Remaining: 12\r\nRateLimit-Reset: 30\r\n"
                                 "Content-Length: %lu\r\n\r\n",
                                 (unsigned long)got);
                send_all(fd, out, (size_t)n);
                send_all(fd, req, got);
            } else if (strstr(path, "/api/conns")) {
                char b[32];
                int bl = snprintf(b, sizeof b, "%d", conns);
                int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", bl, b);
                send_all(fd, out, (size_t)n);
            } else if (strstr(path, "/api/gzip")) {
                int n = snprintf(out, sizeof out,
                                 "HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %lu\r\n\r\n",
                                 (unsigned long)sizeof gz);
                send_all(fd, out, (size_t)n);
                send_all(fd, (const char *)gz, sizeof gz);
            } else if (strstr(path, "/api/huge")) { /* 65 MB promised and sent */
                static char chunk[65536];
                size_t left = (size_t)65 * 1024 * 1024;
                int n = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %lu\r\n\r\n",
                                 (unsigned long)left);
                send_all(fd, out, (size_t)n);
                memset(chunk, 'x', sizeof chunk);
                while (left) {
                    size_t k = left < sizeof chunk ? left : sizeof chunk;
                    ssize_t w = write(fd, chunk, k);
                    if (w <= 0) break;
                    left -= (size_t)w;
                }
                break;
            } else if (strstr(path, "/api/empty")) {
                break; /* close without a byte */
            } else if (strstr(path, "/api/reset")) {
                struct linger l = {1, 0}; /* close with RST */
                setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
                break;
            } else if (strstr(path, "/api/truncated")) {
                const char *t = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"data\":";
                send_all(fd, t, strlen(t));
                break;
            } else if (strstr(path, "/api/hang")) {
                struct timespec ts = {1, 0};
                nanosleep(&ts, NULL);
                break;
            } else {
                const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
                send_all(fd, nf, strlen(nf));
            }
        }
        close(fd);
    }
}

static kl_client *client(const char *base, long timeout_ms) {
    kl_options o;
    kl_client *c;
    memset(&o, 0, sizeof o);
    o.base_url = base;
    o.api_key = "pk_transport_test";
    o.public_key = "AbC123";
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = 500;
    c = kl_new(&o);
    if (!c || c->err) {
        fprintf(stderr, "client: %s\n", c ? c->errstr : "oom");
        exit(2);
    }
    return c;
}

static int get(kl_client *c, const char *path) {
    kl_request r;
    memset(&r, 0, sizeof r);
    r.operation = "op_t";
    r.method = "GET";
    r.path = path;
    return kl_send(c, &r);
}

static const char *header(const kl_response *r, const char *name) {
    size_t i;
    for (i = 0; i < r->n_headers; i++)
        if (strcmp(r->headers[i].name, name) == 0) return r->headers[i].value;
    return NULL;
}

static void expect_failure(kl_client *c, const char *path, const char *code, int sent) {
    int rc = get(c, path);
    const kl_error *e = kl_last_error(c);
    CHECK_INT(rc, KL_ERR_TRANSPORT);
    CHECK_INT(e->kind, KL_ERR_TRANSPORT);
    CHECK_STR(e->code, code);
    CHECK_INT(e->sent, sent);
    CHECK_INT(e->status, 0);
    CHECK_STR(e->operation, "op_t");
    CHECK(strstr(c->errstr, "op_t: ") == c->errstr);
    CHECK(strstr(c->errstr, "pk_transport_test") == NULL);
}

int main(void) {
    int port, ls = listen_any(&port), dead_port, dl;
    pid_t pid;
    char base[64], other[64];
    kl_client *c;
    const kl_response *r;
    int i;

    pid = fork();
    if (pid == 0) {
        alarm(120); /* never outlives a test run whose parent died early */
        serve(ls);
        _exit(0);
    }
    close(ls);
    snprintf(base, sizeof base, "http://127.0.0.1:%d", port);
    c = client(base, 3000);

    /* what goes on the wire */
    {
        kl_request q;
        kl_param qp[] = {{"filter", "equals(email,\"a b@x.com\")", NULL, 0}};
        memset(&q, 0, sizeof q);
        q.operation = "op_t";
        q.method = "PATCH";
        q.path = "/api/echo/{id}";
        {
            const char *pp[] = {"\xc3\xa9 #1"};
            q.path_params = pp;
            q.n_path_params = 1;
            q.query = qp;
            q.n_query = 1;
            q.body = "{\"data\":{\"type\":\"profile\"}}";
            q.body_len = strlen(q.body);
            CHECK_INT(kl_send(c, &q), KL_OK);
        }
        r = kl_last_response(c);
        CHECK_INT(r->status, 200);
        CHECK(strstr(r->body,
                     "PATCH /api/echo/%C3%A9%20%231?filter=equals%28email%2C%22a%20b%40x.com%22%29 HTTP/1.1\r\n") ==
              r->body);
        CHECK(strstr(r->body, "\r\nAuthorization: Klaviyo-API-Key pk_transport_test\r\n") != NULL);
        CHECK(strstr(r->body, "\r\nrevision: " KL_DEFAULT_REVISION "\r\n") != NULL);
        CHECK(strstr(r->body, "\r\nAccept: application/vnd.api+json\r\n") != NULL);
        CHECK(strstr(r->body, "\r\nContent-Type: application/vnd.api+json\r\n") != NULL);
        CHECK(strstr(r->body, "\r\nUser-Agent: lua-klaviyo/" KL_VERSION "\r\n") != NULL);
        CHECK(strstr(r->body, "\r\nAccept-Encoding: ") != NULL && strstr(r->body, "gzip") != NULL);
        CHECK(strstr(r->body, "Expect:") == NULL);
        CHECK(strstr(r->body, "\r\n\r\n{\"data\":{\"type\":\"profile\"}}") != NULL);
        CHECK_STR(header(r, "x-multi"), "a"); /* names lowercased; repeats kept in order */
        CHECK_INT(r->n_headers, 7);
        CHECK_INT(r->has_ratelimit, 1);
        CHECK_INT(r->rl_remaining, 12);
        /* a GET after a PATCH with a body: no body, no custom method left over */
        CHECK_INT(get(c, "/api/echo"), KL_OK);
        r = kl_last_response(c);
        CHECK(strstr(r->body, "GET /api/echo HTTP/1.1\r\n") == r->body);
        CHECK(strstr(r->body, "Content-Type") == NULL && strstr(r->body, "Content-Length") == NULL);
        /* POST without a body: explicit empty body */
        {
            kl_request pq;
            memset(&pq, 0, sizeof pq);
            pq.method = "POST";
            pq.path = "/api/echo";
            pq.safe = KL_SAFE_YES; /* reuse the connection: this server takes one at a time */
            CHECK_INT(kl_send(c, &pq), KL_OK);
            CHECK(strstr(kl_last_response(c)->body, "POST /api/echo HTTP/1.1\r\n") == kl_last_response(c)->body);
            CHECK(strstr(kl_last_response(c)->body, "Content-Length: 0\r\n") != NULL);
        }
    }

    /* gzip decoded; 404 as an HTTP error; one connection for all of it */
    CHECK_INT(get(c, "/api/gzip"), KL_OK);
    CHECK_STR(kl_last_response(c)->body, "{\"data\":[]}");
    CHECK_INT(get(c, "/api/nothing-here"), KL_ERR_HTTP);
    CHECK_INT(kl_last_error(c)->status, 404);
    for (i = 0; i < 20; i++) get(c, "/api/echo");
    CHECK_INT(get(c, "/api/conns"), KL_OK);
    CHECK_STR(kl_last_response(c)->body, "1");

    /* failures, each with its own code; the client stays usable after each */
    expect_failure(c, "/api/empty", "empty_reply", 1);
    expect_failure(c, "/api/reset", "connection_reset", 1);
    expect_failure(c, "/api/truncated", "truncated", 1);
    expect_failure(c, "/api/huge", "response_too_large", 1);
    CHECK_INT(get(c, "/api/gzip"), KL_OK);
    kl_free(c);

    /* (after kl_free(c): the server serves one connection at a time) proxies from the
     * environment: a plain-http target never goes through one, an https target goes through
     * it as a CONNECT tunnel (this server, as the proxy, refuses the tunnel: nothing sent) */
    {
        kl_options o;
        kl_request q;
        kl_client *pc;
        char nowhere[64];
        int nl, nport;
        nl = listen_any(&nport);
        close(nl); /* a proxy no one listens on: going through it would fail to connect */
        snprintf(nowhere, sizeof nowhere, "http://127.0.0.1:%d", nport);
        setenv("http_proxy", nowhere, 1);
        setenv("ALL_PROXY", nowhere, 1);
        unsetenv("no_proxy");
        unsetenv("NO_PROXY");
        memset(&o, 0, sizeof o);
        o.base_url = base;
        o.public_key = "AbC123";
        pc = kl_new(&o);
        memset(&q, 0, sizeof q);
        q.method = "GET";
        q.path = "/client/echo";
        q.auth = KL_AUTH_PUBLIC;
        CHECK_INT(kl_send(pc, &q), KL_OK);
        if (pc->err) fprintf(stderr, "no proxy: %s\n", pc->errstr);
        /* origin form: the request came straight here, not in a proxy's absolute form */
        CHECK(strstr(kl_last_response(pc)->body, "GET /client/echo?company_id=AbC123 HTTP/1.1\r\n") ==
              kl_last_response(pc)->body);
        kl_free(pc);
        unsetenv("http_proxy");
        unsetenv("ALL_PROXY");

        setenv("https_proxy", base, 1);
        o.base_url = "https://klaviyo.example"; /* never resolved here: the proxy would */
        o.public_key = NULL;
        o.api_key = "pk_transport_test";
        pc = kl_new(&o);
        q.path = "/api/echo";
        q.auth = KL_AUTH_PRIVATE;
        CHECK_INT(kl_send(pc, &q), KL_ERR_TRANSPORT);
        CHECK(strstr(pc->errstr, "CONNECT") != NULL); /* libcurl: "CONNECT tunnel failed, response 404" */
        CHECK_INT(kl_last_error(pc)->sent, 0);
        kl_free(pc);
        unsetenv("https_proxy");
    }

    snprintf(other, sizeof other, "https://127.0.0.1:%d", port); /* TLS to a plain HTTP server */
    c = client(other, 2000);
    expect_failure(c, "/api/x", "tls_failed", 0);
    kl_free(c);
    /* last for this server: it sleeps through the hang */
    c = client(base, 200);
    expect_failure(c, "/api/hang", "timeout", 1);
    kl_free(c);

    dl = listen_any(&dead_port);
    close(dl); /* nothing listens there now */
    snprintf(other, sizeof other, "http://127.0.0.1:%d", dead_port);
    c = client(other, 1000);
    expect_failure(c, "/api/x", "connect_failed", 0);
    kl_free(c);

    /* a real TLS server whose self-signed certificate must not be accepted */
    {
        char dir[] = "/tmp/kl-tls-XXXXXX", cmd[1024], a1[64];
        int tp, tl = listen_any(&tp), ok = 0;
        pid_t spid;
        close(tl);
        CHECK(mkdtemp(dir) != NULL);
        snprintf(cmd, sizeof cmd,
                 "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1 "
                 "-addext subjectAltName=IP:127.0.0.1 -keyout %s/k.pem -out %s/c.pem >/dev/null 2>&1",
                 dir, dir);
        CHECK_INT(system(cmd), 0);
        snprintf(a1, sizeof a1, "%d", tp);
        spid = fork();
        if (spid == 0) {
            alarm(120);
            char kp[64], cp[64];
            snprintf(kp, sizeof kp, "%s/k.pem", dir);
            snprintf(cp, sizeof cp, "%s/c.pem", dir);
            freopen("/dev/null", "w", stdout);
            freopen("/dev/null", "w", stderr);
            execlp("openssl", "openssl", "s_server", "-quiet", "-accept", a1, "-cert", cp, "-key", kp, "-www",
                   (char *)NULL);
            _exit(127);
        }
        for (i = 0; i < 100 && !ok; i++) { /* wait until it listens */
            struct sockaddr_in sa;
            int s = socket(AF_INET, SOCK_STREAM, 0);
            struct timespec ts = {0, 50000000};
            memset(&sa, 0, sizeof sa);
            sa.sin_family = AF_INET;
            sa.sin_port = htons((unsigned short)tp);
            sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            ok = connect(s, (struct sockaddr *)&sa, sizeof sa) == 0;
            close(s);
            if (!ok) nanosleep(&ts, NULL);
        }
        CHECK(ok);
        snprintf(other, sizeof other, "https://127.0.0.1:%d", tp);
        c = client(other, 3000);
        expect_failure(c, "/api/x", "tls_failed", 0);
        CHECK(strstr(c->errstr, "certificate") != NULL);
        kl_free(c);
        kill(spid, SIGTERM);
        waitpid(spid, NULL, 0);
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        CHECK_INT(system(cmd), 0);
    }

    {
        kl_options o;
        kl_request q;
        memset(&o, 0, sizeof o);
        o.base_url = "http://no-such-host.invalid"; /* RFC 6761: never resolves */
        o.public_key = "AbC123";
        c = kl_new(&o);
        memset(&q, 0, sizeof q);
        q.operation = "op_t";
        q.method = "GET";
        q.path = "/client/x";
        q.auth = KL_AUTH_PUBLIC;
        CHECK_INT(kl_send(c, &q), KL_ERR_TRANSPORT);
        CHECK_STR(kl_last_error(c)->code, "dns_failed");
        CHECK_INT(kl_last_error(c)->sent, 0);
        kl_free(c);
    }

    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    CTEST_END();
}
