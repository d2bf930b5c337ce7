/*
 * test_limiter_redis.c: the shared limiter store against real redis-server processes that
 * this test starts on free loopback ports (18700-18799) and stops again.
 *
 * What must hold: the same guarantee as the in-process limiter across processes (several
 * forked processes hammer one key; their send times, in Redis's clock, never put more than
 * the limit into any interval of a window's length, and every "wait" was exact, so the
 * whole allowance is used); Retry-After blocks and RateLimit-Remaining feedback shared by
 * every store; an unreachable or silent Redis is an error that says so (never a blind go);
 * the EVAL fallback after SCRIPT FLUSH; URL parsing, AUTH, SELECT; keys that expire; answers
 * larger than any of the limiter's (from a peer this test forks) refused at once, whatever
 * they announce, and their connection dropped.
 *
 * Ends with "N passed, N failed"; exits non-zero on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "limiter_redis.h"
#include "redis_script.h"

static int passed, failed, case_failed;

#define CHECK(cond, ...)                                                                                               \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            case_failed = 1;                                                                                           \
            printf("    FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond);                                               \
            printf(__VA_ARGS__);                                                                                       \
            printf("\n");                                                                                              \
        }                                                                                                              \
    } while (0)

static void run_case(const char *name, void (*fn)(void)) {
    case_failed = 0;
    fn();
    if (case_failed) {
        failed++;
        printf("not ok - %s\n", name);
    } else {
        passed++;
        printf("ok - %s\n", name);
    }
    fflush(stdout);
}

static void sleep_us(kl_usec us) {
    struct timespec ts;
    if (us <= 0) return;
    ts.tv_sec = (time_t)(us / KL_USEC_PER_SEC);
    ts.tv_nsec = (long)(us % KL_USEC_PER_SEC) * 1000;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* ---- redis-server processes ---------------------------------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    const char *password; /* NULL: none */
} server;

static int port_free(int port) {
    struct sockaddr_in a;
    int ok, fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A free port of 18700-18799, starting at a per-process offset so parallel runs differ. */
static int pick_port(int avoid) {
    int i, base = (int)(getpid() % 100);
    for (i = 0; i < 100; i++) {
        int port = 18700 + (base + i) % 100;
        if (port != avoid && port_free(port)) return port;
    }
    return -1;
}

static redisContext *admin(const server *s) {
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    if (c && !c->err && s->password) {
        redisReply *r = redisCommand(c, "AUTH %s", s->password);
        if (r) freeReplyObject(r);
    }
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

static int server_ping(const server *s) {
    redisContext *c = admin(s);
    redisReply *r;
    int ok;
    if (!c) return 0;
    r = redisCommand(c, "PING");
    ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r) freeReplyObject(r);
    redisFree(c);
    return ok;
}

/* Start redis-server on s->port (0: pick one); 0 on success. */
static int server_start(server *s) {
    char port[16];
    int i;
    if (!s->port) s->port = pick_port(0);
    if (s->port < 0) return -1;
    snprintf(port, sizeof port, "%d", s->port);
    fflush(stdout);
    s->pid = fork();
    if (s->pid < 0) return -1;
    if (s->pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        if (s->password)
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                   "no", "--requirepass", s->password, (char *)NULL);
        else
            execlp("redis-server", "redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly",
                   "no", (char *)NULL);
        _exit(127);
    }
    for (i = 0; i < 500; i++) { /* up to 10 s on a loaded machine */
        int st;
        if (server_ping(s)) return 0;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        sleep_us(20000);
    }
    return -1;
}

static void server_stop(server *s, int sig) {
    if (s->pid > 0) {
        kill(s->pid, sig);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

static server shared; /* most cases use this one */

static char *url_of(const server *s, const char *creds, const char *path) {
    static char buf[256];
    snprintf(buf, sizeof buf, "redis://%s127.0.0.1:%d%s", creds ? creds : "", s->port, path ? path : "");
    return buf;
}

static kl_redis *store(const char *url, double safety) {
    kl_redis_options o;
    memset(&o, 0, sizeof o);
    o.url = url;
    o.safety = safety;
    o.connect_timeout_ms = 2000;
    o.timeout_ms = 2000;
    return kl_redis_new(&o);
}

/* A key no other case or run uses (from a ring of buffers: several stay valid at once). */
static const char *fresh_key(const char *name) {
    static char buf[8][128];
    static int n;
    char *b = buf[n % 8];
    snprintf(b, sizeof buf[0], "acct-%ld/%s-%d", (long)getpid(), name, n);
    n++;
    return b;
}

static long long admin_int(redisContext *c, const char *fmt, ...) {
    va_list ap;
    redisReply *r;
    long long v = -999;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r && r->type == REDIS_REPLY_INTEGER) v = r->integer;
    if (r) freeReplyObject(r);
    return v;
}

/* ---- cases ------------------------------------------------------------------------------ */

static void test_url_refusals(void) {
    static const char *bad[] = {"http://127.0.0.1:6379", "rediss://127.0.0.1", "redis://",        "redis://h:0",
                                "redis://h:70000",       "redis://h:",         "redis://h:12x",   "redis://h/abc",
                                "redis://pw@h",          "redis://h?db=1",     "redis://:p%zz@h", "redis://[::1",
                                "redis://h:1 2",         "redis://:p%00@h",    "redis://[::1]x"};
    size_t i;
    kl_limits lim = {1, 0, 0};
    kl_usec wait;
    kl_redis_options o;
    kl_redis *r;

    for (i = 0; i < sizeof bad / sizeof *bad; i++) {
        r = store(bad[i], 0);
        CHECK(r != NULL, "%s", bad[i]);
        if (!r) continue;
        CHECK(r->err == KL_REDIS_ERR_USAGE && strstr(r->errstr, "redis") != NULL, "%s -> err %d '%s'", bad[i], r->err,
              r->errstr);
        /* every later call refuses with the same reason, and nothing is ever "go" */
        CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_ERROR && r->err == KL_REDIS_ERR_USAGE &&
                  strstr(r->errstr, "redis") != NULL,
              "%s acquire -> err %d '%s'", bad[i], r->err, r->errstr);
        kl_redis_free(r);
    }
    /* the password never shows, even when the rest of the URL is refused */
    r = store("redis://:s3cretpw@127.0.0.1:0", 0);
    CHECK(r && r->err == KL_REDIS_ERR_USAGE && !strstr(r->errstr, "s3cretpw"), "%s", r ? r->errstr : "NULL");
    kl_redis_free(r);
    memset(&o, 0, sizeof o);
    o.url = "redis://127.0.0.1:1";
    o.safety = 1.5;
    r = kl_redis_new(&o);
    CHECK(r && r->err == KL_REDIS_ERR_USAGE && strstr(r->errstr, "safety"), "%s", r ? r->errstr : "NULL");
    kl_redis_free(r);
}

static void test_unreachable_then_recovers(void) {
    server s = {0, 0, NULL};
    kl_limits lim = {100, 0, 0};
    kl_usec wait;
    kl_redis *r;
    char where[64];

    s.port = pick_port(shared.port);
    CHECK(s.port > 0, "no free port");
    snprintf(where, sizeof where, "127.0.0.1:%d", s.port);
    r = store(url_of(&s, NULL, NULL), 0);
    CHECK(r != NULL, "new");
    if (!r) return;
    CHECK(r->err == KL_REDIS_ERR_IO && strstr(r->errstr, "unreachable") && strstr(r->errstr, where), "new: err %d '%s'",
          r->err, r->errstr);
    CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_ERROR && r->err == KL_REDIS_ERR_IO &&
              strstr(r->errstr, "not sending"),
          "acquire: err %d '%s'", r->err, r->errstr);
    CHECK(kl_redis_block_for(r, "k", 1000) == KL_LIMIT_ERROR && r->err == KL_REDIS_ERR_IO, "block: err %d", r->err);

    /* Redis comes up: the next call connects by itself */
    CHECK(server_start(&s) == 0, "start redis on %d", s.port);
    CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_GO, "after start: '%s'", r->errstr);
    CHECK(strlen(kl_redis_script_sha(r)) == 40, "sha '%s'", kl_redis_script_sha(r));

    /* Redis dies: an error, not a go */
    server_stop(&s, SIGKILL);
    CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_ERROR && r->err == KL_REDIS_ERR_IO,
          "after kill: err %d '%s'", r->err, r->errstr);
    CHECK(strstr(r->errstr, where) != NULL, "'%s'", r->errstr);

    /* and back again (a fresh server: empty script cache too) */
    CHECK(server_start(&s) == 0, "restart redis on %d", s.port);
    CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_GO, "after restart: '%s'", r->errstr);
    server_stop(&s, SIGTERM);
    kl_redis_free(r);
}

/* An idle connection that Redis dropped is replaced silently, once. */
static void test_dropped_connection_reconnects(void) {
    kl_limits lim = {100, 0, 0};
    kl_usec wait;
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    redisContext *a = admin(&shared);
    redisReply *rep;
    CHECK(r && r->err == KL_REDIS_OK, "new: '%s'", r ? r->errstr : "NULL");
    CHECK(a != NULL, "admin");
    if (!r || !a) goto out;
    CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_GO, "first: '%s'", r->errstr);
    rep = redisCommand(a, "CLIENT KILL TYPE normal SKIPME yes");
    CHECK(rep && rep->type == REDIS_REPLY_INTEGER && rep->integer >= 1, "client kill");
    if (rep) freeReplyObject(rep);
    CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_GO, "after kill: '%s'", r->errstr);
out:
    kl_redis_free(r);
    if (a) redisFree(a);
}

/* A server that accepts connections and never answers. */
static void test_silent_redis_times_out(void) {
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = pick_port(shared.port);
    kl_redis_options o;
    kl_limits lim = {100, 0, 0};
    kl_usec wait;
    kl_redis *r;
    char url[64];

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && listen(fd, 8) == 0, "listen on %d", port);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    memset(&o, 0, sizeof o);
    o.url = url;
    o.timeout_ms = 200;
    r = kl_redis_new(&o);
    CHECK(r && r->err == KL_REDIS_ERR_IO && strstr(r->errstr, "did not answer") && strstr(r->errstr, "200 ms"),
          "new: '%s'", r ? r->errstr : "NULL");
    if (r) {
        CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_ERROR && r->err == KL_REDIS_ERR_IO &&
                  strstr(r->errstr, "did not answer"),
              "acquire: '%s'", r->errstr);
    }
    kl_redis_free(r);
    if (fd >= 0) close(fd);
}

static void test_burst_exact_wait(void) {
    kl_limits lim = {3, 0, 0};
    kl_usec wait = -1, t1 = 0;
    const char *key = fresh_key("burst");
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    redisContext *a = admin(&shared);
    int i;
    CHECK(r && r->err == KL_REDIS_OK && a, "setup");
    if (!r || !a) goto out;
    for (i = 0; i < 3; i++) {
        CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "send %d: '%s'", i, r->errstr);
        if (i == 0) t1 = r->now;
    }
    for (i = 0; i < 2; i++) { /* asking again records nothing and stays exact */
        CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_WAIT, "4th: '%s'", r->errstr);
        CHECK(wait == t1 + KL_USEC_PER_SEC - r->now && wait > 0, "wait %lld, t1 %lld, now %lld", (long long)wait,
              (long long)t1, (long long)r->now);
    }
    CHECK(admin_int(a, "LLEN klaviyo:limit:{%s}:log", key) == 3, "log holds the 3 sends");
    /* both keys expire, the log after its window */
    {
        long long pl = admin_int(a, "PTTL klaviyo:limit:{%s}:log", key);
        long long pm = admin_int(a, "PTTL klaviyo:limit:{%s}:meta", key);
        CHECK(pl > 0 && pl <= 1002 && pm > 0 && pm <= 1002, "pttl log %lld meta %lld", pl, pm);
    }
    /* after the wait it is go again */
    sleep_us(wait);
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "after wait: %lld", (long long)wait);
out:
    kl_redis_free(r);
    if (a) redisFree(a);
}

/* The steady and daily windows reach the script with their real lengths. */
static void test_steady_and_daily_windows(void) {
    kl_limits steady = {5, 2, 0}, daily = {5, 5, 2};
    kl_usec wait = -1, t1;
    const char *ks = fresh_key("steady"), *kd = fresh_key("daily");
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    redisContext *a = admin(&shared);
    CHECK(r && r->err == KL_REDIS_OK && a, "setup");
    if (!r || !a) goto out;

    CHECK(kl_redis_acquire(r, ks, &steady, &wait) == KL_LIMIT_GO, "1");
    t1 = r->now;
    CHECK(kl_redis_acquire(r, ks, &steady, &wait) == KL_LIMIT_GO, "2");
    CHECK(kl_redis_acquire(r, ks, &steady, &wait) == KL_LIMIT_WAIT && wait == t1 + 60 * KL_USEC_PER_SEC - r->now,
          "steady wait %lld", (long long)wait);

    CHECK(kl_redis_acquire(r, kd, &daily, &wait) == KL_LIMIT_GO, "1");
    t1 = r->now;
    CHECK(kl_redis_acquire(r, kd, &daily, &wait) == KL_LIMIT_GO, "2");
    CHECK(kl_redis_acquire(r, kd, &daily, &wait) == KL_LIMIT_WAIT && wait == t1 + 86400 * KL_USEC_PER_SEC - r->now,
          "daily wait %lld", (long long)wait);
    {
        long long pl = admin_int(a, "PTTL klaviyo:limit:{%s}:log", kd);
        CHECK(pl > 86390000 && pl <= 86400002, "daily log pttl %lld", pl);
    }

    /* no window at all: always go, nothing stored */
    {
        kl_limits none = {0, 0, 0};
        const char *kn = fresh_key("none");
        int i;
        for (i = 0; i < 5; i++) CHECK(kl_redis_acquire(r, kn, &none, &wait) == KL_LIMIT_GO, "no limits %d", i);
        CHECK(admin_int(a, "EXISTS klaviyo:limit:{%s}:log", kn) == 0, "no log");
    }
out:
    kl_redis_free(r);
    if (a) redisFree(a);
}

/* Should the Redis host's clock step back, the log stays ordered: now is the newest send. */
static void test_clock_step_back(void) {
    kl_limits lim = {100, 0, 0};
    kl_usec wait;
    const char *key = fresh_key("clock");
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    redisContext *a = admin(&shared);
    long long future;
    redisReply *rep;
    CHECK(r && r->err == 0 && a, "setup");
    if (!r || !a) goto out;
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "first");
    future = (long long)r->now + 30000000; /* as if the clock had been 30 s ahead */
    rep = redisCommand(a, "LPUSH klaviyo:limit:{%s}:log %lld", key, future);
    if (rep) freeReplyObject(rep);
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO && r->now == future,
          "recorded at the newest time: %lld vs %lld", (long long)r->now, future);
    rep = redisCommand(a, "LRANGE klaviyo:limit:{%s}:log 0 1", key);
    CHECK(rep && rep->elements == 2 && atoll(rep->element[0]->str) == future && atoll(rep->element[1]->str) == future,
          "log still newest first");
    if (rep) freeReplyObject(rep);
out:
    kl_redis_free(r);
    if (a) redisFree(a);
}

/* The log never holds more than the largest limit, however long a key is used. */
static void test_memory_bounded(void) {
    kl_usec win[2] = {50000, 150000}, wait;
    uint32_t lim[2] = {3, 5};
    const char *key = fresh_key("bounded");
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    redisContext *a = admin(&shared);
    int sends = 0, rc, max = 0, guard = 0;
    CHECK(r && r->err == KL_REDIS_OK && a, "setup");
    if (!r || !a) goto out;
    while (sends < 20 && guard++ < 1000) {
        rc = kl_redis_acquire_windows(r, key, win, lim, 2, &wait);
        CHECK(rc != KL_LIMIT_ERROR, "'%s'", r->errstr);
        if (rc == KL_LIMIT_ERROR) break;
        if (rc == KL_LIMIT_GO) {
            long long n = admin_int(a, "LLEN klaviyo:limit:{%s}:log", key);
            sends++;
            if (n > max) max = (int)n;
        } else {
            sleep_us(wait);
        }
    }
    CHECK(sends == 20, "sends %d", sends);
    CHECK(max == 5, "log size peaked at %d, limit 5", max);
out:
    kl_redis_free(r);
    if (a) redisFree(a);
}

/* Callers with lower limits or fewer windows (an override in one process) never make the
 * store forget sends that another caller's windows still count. */
static void test_mixed_callers_never_forget(void) {
    kl_usec wa[2] = {50000, 2000000}, wb[1] = {50000}, wait;
    uint32_t la[2] = {100, 3}, lb[1] = {100}, lc[1] = {1};
    const char *key = fresh_key("mixed");
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    int i;
    CHECK(r && r->err == 0, "setup");
    if (!r) return;
    for (i = 0; i < 3; i++) CHECK(kl_redis_acquire_windows(r, key, wa, la, 2, &wait) == KL_LIMIT_GO, "A %d", i);
    sleep_us(60000); /* A's sends are now older than B's only window */
    CHECK(kl_redis_acquire_windows(r, key, wb, lb, 1, &wait) == KL_LIMIT_GO, "B sends");
    CHECK(kl_redis_acquire_windows(r, key, wa, la, 2, &wait) == KL_LIMIT_WAIT,
          "A still counts its 3 sends (plus B's) in its 2 s window");
    CHECK(kl_redis_acquire_windows(r, key, wb, lc, 1, &wait) == KL_LIMIT_WAIT,
          "C, limit 1 in 50 ms, waits for B's send");
    CHECK(kl_redis_acquire_windows(r, key, wa, la, 2, &wait) == KL_LIMIT_WAIT, "A still waits after C asked");

    /* D, limit 2 in 50 ms, sends (trimming nothing A needs); A, 5 in 2 s, then waits */
    {
        kl_usec wd[1] = {50000}, wl[1] = {2000000};
        uint32_t ld[1] = {2}, ll[1] = {5};
        key = fresh_key("mixed-trim");
        for (i = 0; i < 5; i++) CHECK(kl_redis_acquire_windows(r, key, wl, ll, 1, &wait) == KL_LIMIT_GO, "A %d", i);
        sleep_us(60000);
        CHECK(kl_redis_acquire_windows(r, key, wd, ld, 1, &wait) == KL_LIMIT_GO, "D sends");
        CHECK(kl_redis_acquire_windows(r, key, wl, ll, 1, &wait) == KL_LIMIT_WAIT, "A counts its 5 and D's send");
    }
    kl_redis_free(r);
}

static void test_safety_factor(void) {
    kl_limits lim = {10, 0, 0};
    kl_usec wait;
    int i, n;
    kl_redis *half = store(url_of(&shared, NULL, NULL), 0.5);
    kl_redis *tiny = store(url_of(&shared, NULL, NULL), 0.01);
    const char *k1, *k2;
    CHECK(half && tiny && half->err == 0 && tiny->err == 0, "setup");
    if (!half || !tiny) goto out;
    k1 = fresh_key("half");
    for (n = 0, i = 0; i < 8; i++) n += kl_redis_acquire(half, k1, &lim, &wait) == KL_LIMIT_GO;
    CHECK(n == 5, "floor(10 * 0.5) = 5 sends, got %d", n);
    k2 = fresh_key("tiny");
    for (n = 0, i = 0; i < 3; i++) n += kl_redis_acquire(tiny, k2, &lim, &wait) == KL_LIMIT_GO;
    CHECK(n == 1, "max(1, floor(10 * 0.01)) = 1 send, got %d", n);
    { /* 90 * 0.7 is 62.999... in binary: still 63, as limiter.c rounds */
        kl_redis *s7 = store(url_of(&shared, NULL, NULL), 0.7);
        kl_limits l90 = {90, 0, 0};
        const char *k3 = fresh_key("seven");
        CHECK(s7 && s7->err == 0, "setup");
        for (n = 0, i = 0; s7 && i < 70; i++) n += kl_redis_acquire(s7, k3, &l90, &wait) == KL_LIMIT_GO;
        CHECK(n == 63, "floor(90 * 0.7) = 63 sends, got %d", n);
        kl_redis_free(s7);
    }
out:
    kl_redis_free(half);
    kl_redis_free(tiny);
}

/* A 429's Retry-After, seen by one process, holds every process back. */
static void test_block_shared(void) {
    kl_limits lim = {100, 0, 0};
    kl_usec wait = -1, tb;
    const char *key = fresh_key("block");
    kl_redis *r1 = store(url_of(&shared, NULL, NULL), 0);
    kl_redis *r2 = store(url_of(&shared, NULL, NULL), 0);
    CHECK(r1 && r2 && r1->err == 0 && r2->err == 0, "setup");
    if (!r1 || !r2) goto out;
    CHECK(kl_redis_acquire(r2, key, &lim, &wait) == KL_LIMIT_GO, "before the block");
    CHECK(kl_redis_block_for(r1, key, 2500000) == 0, "block: '%s'", r1->errstr);
    tb = r1->now;
    CHECK(kl_redis_acquire(r2, key, &lim, &wait) == KL_LIMIT_WAIT && wait == tb + 2500000 - r2->now,
          "other store waits exactly: %lld", (long long)wait);
    /* a shorter block does not shorten it */
    CHECK(kl_redis_block_for(r2, key, 1000000) == 0, "short block");
    CHECK(kl_redis_acquire(r1, key, &lim, &wait) == KL_LIMIT_WAIT && wait == tb + 2500000 - r1->now,
          "still the long block: %lld", (long long)wait);
    /* a longer one extends it */
    CHECK(kl_redis_block_for(r2, key, 5000000) == 0, "long block");
    tb = r2->now;
    CHECK(kl_redis_acquire(r1, key, &lim, &wait) == KL_LIMIT_WAIT && wait == tb + 5000000 - r1->now, "extended: %lld",
          (long long)wait);
    CHECK(kl_redis_block_for(r2, key, -1) == KL_LIMIT_ERROR && r2->err == KL_REDIS_ERR_USAGE, "negative block");
    CHECK(kl_redis_block_for(r2, "", 5) == KL_LIMIT_ERROR && r2->err == KL_REDIS_ERR_USAGE, "empty key");
out:
    kl_redis_free(r1);
    kl_redis_free(r2);
}

/* Damaged data in Redis (a block a thousand years away, written by anyone): the store says
 * so instead of answering a wait nobody should sleep. */
static void test_impossible_wait(void) {
    kl_limits lim = {100, 0, 0};
    kl_usec wait = -1;
    const char *key = fresh_key("damaged");
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    redisContext *a = admin(&shared);
    CHECK(r && a && r->err == 0, "setup");
    if (!r || !a) goto out;
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "before");
    CHECK(admin_int(a, "HSET %s{%s}:meta blocked %lld", KL_REDIS_DEFAULT_PREFIX, key,
                    (long long)r->now + 31557600000000000LL) >= 0,
          "damage");
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_ERROR && r->err == KL_REDIS_ERR_REPLY &&
              strstr(r->errstr, "impossible wait") != NULL && wait == 0,
          "refused: '%s', wait %lld", r->errstr, (long long)wait);
    /* a day's block is possible: a wait, however long */
    CHECK(admin_int(a, "HSET %s{%s}:meta blocked %lld", KL_REDIS_DEFAULT_PREFIX, key,
                    (long long)r->now + 86400000000LL - 1000000) >= 0,
          "a day");
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_WAIT && wait > 86000000000LL && wait <= 86400000000LL,
          "a day's wait: %lld ('%s')", (long long)wait, r->errstr);
out:
    if (a) redisFree(a);
    kl_redis_free(r);
}

/* ---- a peer that answers the limiter script with what a test gives ----------------------- */

typedef struct peer {
    pid_t pid;
    int port;
} peer;

static kl_usec mono_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (kl_usec)ts.tv_sec * KL_USEC_PER_SEC + ts.tv_nsec / 1000;
}

static int fread_all(int fd, char *buf, size_t n) {
    while (n > 0) {
        ssize_t got = read(fd, buf, n);
        if (got <= 0) return -1;
        buf += got;
        n -= (size_t)got;
    }
    return 0;
}

/* One line of at most cap-1 bytes from fd, without its CRLF; -1 at EOF or error. */
static int peer_line(int fd, char *line, size_t cap) {
    size_t n = 0;
    char ch;
    while (read(fd, &ch, 1) == 1) {
        if (ch == '\n') {
            if (n > 0 && line[n - 1] == '\r') n--;
            line[n] = '\0';
            return 0;
        }
        if (n + 1 < cap) line[n++] = ch;
    }
    return -1;
}

/* One RESP command; *is_eval says whether it was EVALSHA/EVAL. -1 at EOF. */
static int peer_command(int fd, int *is_eval) {
    char line[64], *buf;
    long i, n, len;
    if (peer_line(fd, line, sizeof line) != 0 || line[0] != '*') return -1;
    n = strtol(line + 1, NULL, 10);
    *is_eval = 0;
    for (i = 0; i < n; i++) {
        if (peer_line(fd, line, sizeof line) != 0 || line[0] != '$') return -1;
        len = strtol(line + 1, NULL, 10);
        if (len < 0 || !(buf = malloc((size_t)len + 2))) return -1;
        if (fread_all(fd, buf, (size_t)len + 2) != 0) {
            free(buf);
            return -1;
        }
        if (i == 0 && len >= 4 && strncmp(buf, "EVAL", 4) == 0) *is_eval = 1;
        free(buf);
    }
    return 0;
}

/* Serve one connection on a free port: SCRIPT LOAD answers a SHA1, the first EVALSHA `answer`
 * (len bytes; one byte every ms when `trickle`), then the peer waits for the client to close
 * and exits 0 when it did within 2 s (else 2). */
static int peer_start(peer *p, const char *answer, size_t len, int trickle) {
    struct sockaddr_in addr;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    p->pid = -1;
    p->port = pick_port(shared.port);
    if (fd < 0 || p->port < 0) return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)p->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(fd, 1) != 0) {
        close(fd);
        return -1;
    }
    fflush(stdout);
    p->pid = fork();
    if (p->pid == 0) {
        int c = accept(fd, NULL, NULL), is_eval = 0;
        struct timeval tv = {2, 0};
        char ch;
        size_t i;
        if (c < 0) _exit(3);
        while (peer_command(c, &is_eval) == 0 && !is_eval)
            if (write(c, "$40\r\nabababababababababababababababababababab\r\n", 47) != 47) _exit(3);
        if (!is_eval) _exit(3);
        for (i = 0; i < len; i += trickle ? 1 : len - i) {
            if (write(c, answer + i, trickle ? 1 : len - i) < 0) _exit(3);
            if (trickle) sleep_us(1000);
        }
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        while (read(c, &ch, 1) == 1) {}
        _exit(errno == EAGAIN || errno == EWOULDBLOCK ? 2 : 0);
    }
    close(fd);
    return p->pid > 0 ? 0 : -1;
}

/* The peer's exit: 0 when the client closed the connection after the answer. */
static int peer_end(peer *p) {
    int st = -1;
    if (p->pid > 0 && waitpid(p->pid, &st, 0) == p->pid && WIFEXITED(st)) return WEXITSTATUS(st);
    return -1;
}

/* A store on the peer; acquire's answer, its errstr in *why and the time it took. */
static int peer_acquire(const peer *p, char *why, size_t cap, kl_usec *took) {
    kl_redis_options o;
    kl_limits lim = {100, 0, 0};
    kl_usec wait, t0;
    kl_redis *r;
    char url[64];
    int rc = -1;
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", p->port);
    memset(&o, 0, sizeof o);
    o.url = url;
    o.timeout_ms = 2000;
    r = kl_redis_new(&o);
    if (!r || r->err) {
        snprintf(why, cap, "new: %s", r ? r->errstr : "NULL");
        kl_redis_free(r);
        return -1;
    }
    t0 = mono_us();
    rc = kl_redis_acquire(r, "k", &lim, &wait);
    *took = mono_us() - t0;
    snprintf(why, cap, "%s", r->errstr);
    kl_redis_free(r);
    return rc;
}

/* Answers larger than any of the limiter's (the nginx store's bounds: 16 items an array, 4 KB
 * a string, 64 items a reply) are refused as soon as they are seen, whatever they announce,
 * and the connection is dropped; the largest the bounds allow still get their usual answer. */
static void test_oversized_answers(void) {
    static const struct {
        const char *name, *head;
        char fill;       /* then `repeat` bytes of fill */
        size_t repeat;   /* ... */
        const char *why; /* in errstr */
    } cases[] = {
        {"an array of a thousand million items", "*1000000000\r\n", 0, 0, "more than 16 items"},
        {"an array of 17 items", "*17\r\n", 0, 0, "more than 16 items"},
        {"a string of a thousand million bytes", "$1000000000\r\n", 0, 0, "a string over 4096 bytes"},
        {"a string of 4097 bytes", "$4097\r\n", 'x', 4099, "a string over 4096 bytes"},
        {"a line that never ends", "+", 'x', 100000, "an item over 4096 bytes"},
        {"an error line over 4 KB", "-ERR ", 'x', 5000, "an item over 4096 bytes"},
        {"sixteen arrays of sixteen items", NULL, 0, 0, "more than 64 items"},
        {"arrays nested nine deep", "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", 0, 0, ""},
    };
    /* static, not malloc'd: the forked peer exits holding it (valgrind counts what a process
     * still holds at its exit) */
    static char answer[110000];
    size_t i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t hl = cases[i].head ? strlen(cases[i].head) : 0, len = hl + cases[i].repeat;
        char why[300];
        kl_usec took = 0;
        peer p;
        int rc;
        if (cases[i].head) {
            memcpy(answer, cases[i].head, hl);
            memset(answer + hl, cases[i].fill, cases[i].repeat);
        } else { /* *16 of (*16 of :1) */
            int a, b;
            len = (size_t)sprintf(answer, "*16\r\n");
            for (a = 0; a < 16; a++) {
                len += (size_t)sprintf(answer + len, "*16\r\n");
                for (b = 0; b < 16; b++) len += (size_t)sprintf(answer + len, ":1\r\n");
            }
        }
        CHECK(peer_start(&p, answer, len, 0) == 0, "%s: peer", cases[i].name);
        rc = peer_acquire(&p, why, sizeof why, &took);
        CHECK(rc == KL_LIMIT_ERROR && strstr(why, "redis limiter store at 127.0.0.1:") && strstr(why, cases[i].why),
              "%s: '%s'", cases[i].name, why);
        CHECK(took < 300000, "%s: refused after %lld us", cases[i].name, (long long)took);
        CHECK(peer_end(&p) == 0, "%s: the connection was not dropped", cases[i].name);
    }
}

/* At the bounds, and arriving a byte at a time: the usual answers. */
static void test_answers_within_bounds(void) {
    char big[4200], why[300];
    kl_usec took;
    peer p;
    int n;
    static const char go[] = "*3\r\n:1\r\n:0\r\n:1700000000000000\r\n";
    CHECK(peer_start(&p, go, sizeof go - 1, 1) == 0, "peer");
    CHECK(peer_acquire(&p, why, sizeof why, &took) == KL_LIMIT_GO, "a go a byte at a time: '%s'", why);
    CHECK(peer_end(&p) == 0, "closed");
    n = snprintf(big, sizeof big, "-ERR ");
    memset(big + n, 'x', 4096 - 5);
    memcpy(big + 4096, "\r\n", 2);
    CHECK(peer_start(&p, big, 4098, 0) == 0, "peer");
    CHECK(peer_acquire(&p, why, sizeof why, &took) == KL_LIMIT_ERROR && strstr(why, ": ERR xxxx"),
          "an error line of 4096 bytes is Redis's error: '%s'", why);
    CHECK(peer_end(&p) == 0, "closed");
}

/* RateLimit-Remaining below what the store believes caps the sends until the reset, for
 * every process using the store; never raises what is allowed. */
static void test_observe(void) {
    kl_limits lim = {1000, 100, 0}, burst_only = {10, 0, 0};
    kl_usec wait = -1, to;
    long left = -2;
    int i, n;
    const char *key = fresh_key("observe");
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    kl_redis *r2 = store(url_of(&shared, NULL, NULL), 0);
    kl_redis *h = store(url_of(&shared, NULL, NULL), 0.5);
    CHECK(r && r2 && h && r->err == 0 && r2->err == 0 && h->err == 0, "setup");
    if (!r || !r2 || !h) goto out;

    CHECK(kl_redis_observe(r, key, &lim, 3, 30 * KL_USEC_PER_SEC, &left) == 0 && left == 3, "cap of 3: left %ld '%s'",
          left, r->errstr);
    to = r->now;
    for (n = 0, i = 0; i < 5; i++) { /* another store sees the cap */
        int rc = kl_redis_acquire(r2, key, &lim, &wait);
        n += rc == KL_LIMIT_GO;
        if (rc == KL_LIMIT_WAIT)
            CHECK(wait == to + 30 * KL_USEC_PER_SEC - r2->now, "free when the server's window ends: %lld",
                  (long long)wait);
    }
    CHECK(n == 3, "exactly the 3 remaining: %d", n);
    CHECK(kl_redis_observe(r, key, &lim, 50, 30 * KL_USEC_PER_SEC, &left) == 0 && left == 0, "never raises: left %ld",
          left);
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_WAIT, "still capped");

    /* our own sends in the window count: 95 left after our 5 is nothing new, 90 is */
    key = fresh_key("observe-own");
    for (i = 0; i < 5; i++) kl_redis_acquire(r, key, &lim, &wait);
    CHECK(kl_redis_observe(r, key, &lim, 95, 20 * KL_USEC_PER_SEC, &left) == 0 && left == 95, "95: left %ld", left);
    CHECK(kl_redis_observe(r, key, &lim, 90, 20 * KL_USEC_PER_SEC, &left) == 0 && left == 90, "90: left %ld", left);

    /* with a safety factor, "remaining" still caps what is left */
    key = fresh_key("observe-safety");
    CHECK(kl_redis_observe(h, key, &lim, 60, 10 * KL_USEC_PER_SEC, &left) == 0 && left == 50,
          "60 left is more than the effective 50: left %ld", left);
    CHECK(kl_redis_observe(h, key, &lim, 3, 10 * KL_USEC_PER_SEC, &left) == 0 && left == 3, "3 left: %ld", left);
    for (n = 0, i = 0; i < 5; i++) n += kl_redis_acquire(h, key, &lim, &wait) == KL_LIMIT_GO;
    CHECK(n == 3, "3 sends: %d", n);

    /* a window already over teaches nothing; negative remaining counts as 0 */
    key = fresh_key("observe-reset0");
    CHECK(kl_redis_observe(r, key, &lim, 0, 0, &left) == 0 && left == 100, "reset 0: %ld", left);
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "still go");
    key = fresh_key("observe-neg");
    CHECK(kl_redis_observe(r, key, &lim, -1, 10 * KL_USEC_PER_SEC, &left) == 0 && left == 0, "negative remaining: %ld",
          left);
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_WAIT, "nothing left");

    /* no steady limit known: the cap alone applies */
    key = fresh_key("observe-burst-only");
    CHECK(kl_redis_observe(r, key, &burst_only, 2, 10 * KL_USEC_PER_SEC, &left) == 0 && left == 2,
          "cap without a steady window: %ld", left);
    for (n = 0, i = 0; i < 4; i++) n += kl_redis_acquire(r, key, &burst_only, &wait) == KL_LIMIT_GO;
    CHECK(n == 2, "2 sends: %d", n);
out:
    kl_redis_free(r);
    kl_redis_free(r2);
    kl_redis_free(h);
}

/* After SCRIPT FLUSH (or a restart) EVALSHA says NOSCRIPT: the store sends the text. */
static void test_noscript_fallback(void) {
    kl_limits lim = {2, 0, 0};
    kl_usec wait;
    const char *key = fresh_key("noscript");
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    redisContext *a = admin(&shared);
    redisReply *rep;
    CHECK(r && a && r->err == 0, "setup");
    if (!r || !a) goto out;
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "1");
    rep = redisCommand(a, "SCRIPT FLUSH");
    if (rep) freeReplyObject(rep);
    rep = redisCommand(a, "SCRIPT EXISTS %s", kl_redis_script_sha(r));
    CHECK(rep && rep->type == REDIS_REPLY_ARRAY && rep->element[0]->integer == 0, "flushed");
    if (rep) freeReplyObject(rep);
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "2 after flush: '%s'", r->errstr);
    CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_WAIT, "3: the count survived");
    rep = redisCommand(a, "SCRIPT EXISTS %s", kl_redis_script_sha(r));
    CHECK(rep && rep->type == REDIS_REPLY_ARRAY && rep->element[0]->integer == 1, "EVAL cached it again");
    if (rep) freeReplyObject(rep);
out:
    kl_redis_free(r);
    if (a) redisFree(a);
}

/* The script text can come from the caller (the Lua binding passes the module's string);
 * a text Redis refuses is an error that says so. */
static void test_script_option(void) {
    kl_redis_options o;
    kl_limits lim = {1, 0, 0};
    kl_usec wait;
    kl_redis *r;
    memset(&o, 0, sizeof o);
    o.url = url_of(&shared, NULL, NULL);
    o.script = "return {0, 7, 42}"; /* a stand-in that answers WAIT 7 us at time 42 */
    r = kl_redis_new(&o);
    CHECK(r && r->err == 0, "new: '%s'", r ? r->errstr : "NULL");
    if (r) {
        CHECK(kl_redis_acquire(r, "k", &lim, &wait) == KL_LIMIT_WAIT && wait == 7 && r->now == 42,
              "the given script ran: wait %lld now %lld", (long long)wait, (long long)r->now);
        kl_redis_free(r);
    }
    o.script = "this is not lua (";
    r = kl_redis_new(&o);
    CHECK(r && r->err == KL_REDIS_ERR_REPLY && strstr(r->errstr, "refused the script"), "'%s'", r ? r->errstr : "NULL");
    kl_redis_free(r);
    o.script = "";
    r = kl_redis_new(&o);
    CHECK(r && r->err == KL_REDIS_ERR_USAGE && strstr(r->errstr, "no script"), "'%s'", r ? r->errstr : "NULL");
    kl_redis_free(r);
}

/* The script checks its own arguments (other callers, e.g. nginx, run it directly). */
static void test_script_checks_arguments(void) {
    static const char *cases[][3] = {
        {"acquire 1 0 5", "window must be an integer >= 1", ""},
        {"acquire 1 1000 0", "limit must be an integer >= 1", ""},
        {"acquire 2 1000 5", "0 to 8 window/limit pairs", ""},
        {"acquire 1 1.5 5", "window must be an integer", ""},
        {"block -5", "block duration must be an integer >= 0", ""},
        {"observe 1 2 3", "observe takes window", ""},
        {"bogus", "unknown command bogus", ""},
    };
    redisContext *a = admin(&shared);
    size_t i;
    CHECK(a != NULL, "admin");
    if (!a) return;
    for (i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *argv[16];
        size_t lens[16];
        char buf[64], *tok, *save = NULL;
        int argc = 0;
        redisReply *rep;
        argv[argc++] = "EVAL";
        argv[argc++] = kl_redis_script;
        argv[argc++] = "2";
        argv[argc++] = "t{x}:log";
        argv[argc++] = "t{x}:meta";
        snprintf(buf, sizeof buf, "%s", cases[i][0]);
        for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) argv[argc++] = tok;
        for (int j = 0; j < argc; j++) lens[j] = strlen(argv[j]);
        rep = redisCommandArgv(a, argc, argv, lens);
        CHECK(rep && rep->type == REDIS_REPLY_ERROR && strstr(rep->str, cases[i][1]), "%s -> %s", cases[i][0],
              rep && rep->str ? rep->str : "(no error)");
        if (rep) freeReplyObject(rep);
    }
    redisFree(a);
}

static void test_auth_and_db(void) {
    server s = {0, 0, "s3cr@t"};
    kl_limits lim = {10, 0, 0};
    kl_usec wait;
    kl_redis *r;
    redisContext *a;
    const char *key = fresh_key("db");

    s.port = pick_port(shared.port);
    CHECK(server_start(&s) == 0, "start redis with a password");
    if (!s.pid) return;
    r = store(url_of(&s, ":s3cr%40t@", NULL), 0);
    CHECK(r && r->err == 0 && kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "password: '%s'",
          r ? r->errstr : "NULL");
    kl_redis_free(r);
    r = store(url_of(&s, "default:s3cr%40t@", "/5"), 0);
    CHECK(r && r->err == 0 && kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_GO, "user:password and db 5: '%s'",
          r ? r->errstr : "NULL");
    kl_redis_free(r);
    r = store(url_of(&s, ":wrongpass@", NULL), 0);
    CHECK(r && r->err == KL_REDIS_ERR_REPLY && strstr(r->errstr, "AUTH") && !strstr(r->errstr, "wrongpass"),
          "wrong password: '%s'", r ? r->errstr : "NULL");
    if (r)
        CHECK(kl_redis_acquire(r, key, &lim, &wait) == KL_LIMIT_ERROR && r->err == KL_REDIS_ERR_REPLY,
              "acquire with a wrong password: '%s'", r->errstr);
    kl_redis_free(r);
    r = store(url_of(&s, NULL, NULL), 0);
    CHECK(r && r->err == KL_REDIS_ERR_REPLY, "no password: '%s'", r ? r->errstr : "NULL");
    kl_redis_free(r);
    r = store(url_of(&s, ":s3cr%40t@", "/99999"), 0);
    CHECK(r && r->err == KL_REDIS_ERR_REPLY && strstr(r->errstr, "SELECT"), "bad db: '%s'", r ? r->errstr : "NULL");
    kl_redis_free(r);

    /* the key went to db 5 only, and to db 0 from the first store */
    a = admin(&s);
    CHECK(a != NULL, "admin");
    if (a) {
        redisReply *rep = redisCommand(a, "SELECT 5");
        if (rep) freeReplyObject(rep);
        CHECK(admin_int(a, "LLEN klaviyo:limit:{%s}:log", key) == 1, "one send in db 5");
        rep = redisCommand(a, "SELECT 0");
        if (rep) freeReplyObject(rep);
        CHECK(admin_int(a, "LLEN klaviyo:limit:{%s}:log", key) == 1, "one send in db 0");
        redisFree(a);
    }
    server_stop(&s, SIGTERM);
}

/* ---- many processes, one key ------------------------------------------------------------ */

typedef struct rec {
    int go;
    long long now, wait;
} rec;

#define WORKERS 4
#define MAXREC 4096

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static void worker(int fd, const char *key, const kl_usec *win, const uint32_t *lim, size_t n, long long deadline) {
    kl_redis *r = store(url_of(&shared, NULL, NULL), 0);
    int rc = 0;
    if (!r || r->err) rc = 1;
    while (!rc) {
        kl_usec wait;
        rec x;
        int k = kl_redis_acquire_windows(r, key, win, lim, n, &wait);
        if (k == KL_LIMIT_ERROR) {
            rc = 2;
            break;
        }
        memset(&x, 0, sizeof x); /* padding too: it goes through a pipe */
        x.go = k == KL_LIMIT_GO;
        x.now = r->now;
        x.wait = x.go ? 0 : wait;
        if (write(fd, &x, sizeof x) != (ssize_t)sizeof x) rc = 3;
        if (x.go ? x.now >= deadline : x.now + x.wait > deadline) break;
        if (!x.go) sleep_us(wait);
    }
    kl_redis_free(r);
    close(fd);
    _exit(rc);
}

static void test_processes_share_one_key(void) {
    /* Short windows so the run sees many refills; the production windows are the same code
     * with other numbers (test_steady_and_daily_windows checks that they reach the script). */
    static const kl_usec win[2] = {1000000, 3000000};
    static const uint32_t lim[2] = {7, 12};
    const char *key = fresh_key("shared");
    static rec recs[MAXREC];
    static long long sends[MAXREC];
    int fds[WORKERS][2], i, j, nrec = 0, nsend = 0, nwait = 0;
    pid_t pids[WORKERS];
    long long deadline, t0;
    redisContext *a = admin(&shared);
    redisReply *rep;

    CHECK(a != NULL, "admin");
    if (!a) return;
    rep = redisCommand(a, "TIME");
    CHECK(rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2, "TIME");
    if (!rep || rep->type != REDIS_REPLY_ARRAY) {
        if (rep) freeReplyObject(rep);
        redisFree(a);
        return;
    }
    t0 = atoll(rep->element[0]->str) * 1000000LL + atoll(rep->element[1]->str);
    freeReplyObject(rep);
    deadline = t0 + 4500000; /* spans one full 3 s window and then some */

    fflush(stdout);
    for (i = 0; i < WORKERS; i++) {
        if (pipe(fds[i]) != 0) {
            CHECK(0, "pipe");
            return;
        }
        pids[i] = fork();
        if (pids[i] == 0) {
            for (j = 0; j <= i; j++) close(fds[j][0]);
            redisFree(a);
            worker(fds[i][1], key, win, lim, 2, deadline);
        }
        close(fds[i][1]);
    }
    for (i = 0; i < WORKERS; i++) {
        ssize_t got;
        rec x;
        while ((got = read(fds[i][0], &x, sizeof x)) == (ssize_t)sizeof x)
            if (nrec < MAXREC) recs[nrec++] = x;
        close(fds[i][0]);
    }
    for (i = 0; i < WORKERS; i++) {
        int st = -1;
        waitpid(pids[i], &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %d status %d", i, st);
    }
    for (i = 0; i < nrec; i++) {
        if (recs[i].go) sends[nsend++] = recs[i].now;
        else nwait++;
    }
    qsort(sends, (size_t)nsend, sizeof *sends, cmp_ll);
    printf("    %d processes: %d sends, %d waits over %.1f s\n", WORKERS, nsend, nwait,
           nsend ? (sends[nsend - 1] - sends[0]) / 1e6 : 0.0);

    /* every GO was logged by Redis: the log holds exactly the newest 12 (largest limit) */
    rep = redisCommand(a, "LRANGE klaviyo:limit:{%s}:log 0 -1", key);
    CHECK(rep && rep->type == REDIS_REPLY_ARRAY && (int)rep->elements == 12 && nsend >= 12, "log of %d",
          rep ? (int)rep->elements : -1);
    if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 12 && nsend >= 12)
        for (i = 0; i < 12; i++)
            CHECK(atoll(rep->element[i]->str) == sends[nsend - 1 - i], "log[%d] %s vs %lld", i, rep->element[i]->str,
                  sends[nsend - 1 - i]);
    if (rep) freeReplyObject(rep);

    /* the guarantee: any interval [x, x + W) holds at most L sends */
    for (j = 0; j < 2; j++)
        for (i = 0; i + (int)lim[j] < nsend; i++)
            CHECK(sends[i + lim[j]] - sends[i] >= win[j], "window %lld: sends %d and %d only %lld us apart",
                  (long long)win[j], i, i + (int)lim[j], sends[i + lim[j]] - sends[i]);

    /* the whole allowance is used: every WAIT was exact. At now + wait some window still had
     * room for nothing 1 us earlier, and every window had room at now + wait (counting the
     * sends made up to that answer). */
    for (i = 0; i < nrec; i++) {
        long long T, w;
        int ok_at = 1, full_before = 0;
        if (recs[i].go) continue;
        T = recs[i].now;
        w = recs[i].wait;
        for (j = 0; j < 2; j++) {
            int at = 0, before = 0, k;
            for (k = 0; k < nsend && sends[k] <= T; k++) {
                if (sends[k] > T + w - win[j]) at++;
                if (sends[k] > T + w - 1 - win[j]) before++;
            }
            if (at > (int)lim[j] - 1) ok_at = 0;
            if (before >= (int)lim[j]) full_before = 1;
        }
        CHECK(w > 0 && ok_at && full_before, "wait %lld at %lld is not exact", w, T);
    }
    CHECK(nwait > 0 && nsend >= (int)lim[1], "the limits were reached (%d sends, %d waits)", nsend, nwait);
    redisFree(a);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    if (server_start(&shared) != 0) {
        printf("could not start redis-server on a port in 18700-18799\n0 passed, 1 failed\n");
        return 1;
    }
    printf("# redis-server on 127.0.0.1:%d\n", shared.port);
    run_case("bad urls and options are refused with a reason", test_url_refusals);
    run_case("unreachable redis is an error, never a go; recovers", test_unreachable_then_recovers);
    run_case("a dropped connection is replaced once", test_dropped_connection_reconnects);
    run_case("a silent redis times out with a clear error", test_silent_redis_times_out);
    run_case("burst window: limit, exact wait, expiring keys", test_burst_exact_wait);
    run_case("steady and daily windows", test_steady_and_daily_windows);
    run_case("log memory bounded by the largest limit", test_memory_bounded);
    run_case("a clock stepping back keeps the log ordered", test_clock_step_back);
    run_case("mixed callers never make the store forget a send", test_mixed_callers_never_forget);
    run_case("safety factor", test_safety_factor);
    run_case("Retry-After block shared by every store", test_block_shared);
    run_case("RateLimit-Remaining feedback", test_observe);
    run_case("damaged data: an impossible wait is an error, never a sleep", test_impossible_wait);
    run_case("NOSCRIPT falls back to EVAL", test_noscript_fallback);
    run_case("the script checks its arguments", test_script_checks_arguments);
    run_case("the script text can be passed in", test_script_option);
    run_case("AUTH, user:password, SELECT", test_auth_and_db);
    run_case("answers larger than any of the limiter's: refused at once", test_oversized_answers);
    run_case("answers within the bounds, a byte at a time", test_answers_within_bounds);
    run_case("4 processes share one key: limit held, allowance used", test_processes_share_one_key);
    server_stop(&shared, SIGTERM);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
