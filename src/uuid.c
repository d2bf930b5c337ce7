/*
 * uuid.c - version 4 UUIDs from a per-client pool of /dev/urandom bytes (see uuid.h).
 * One read of 4 KiB serves 256 ids.  A forked child must not hand out its parent's bytes:
 * a pthread_atfork handler counts forks in the child, and a pool filled under another count
 * is refilled (cheaper than asking getpid() for every id).
 */
#define _POSIX_C_SOURCE 200809L
#include "uuid.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

/* 1 + the forks this process descends from since the handler was installed; written only
 * in a just-forked child (one thread), read by the thread using a pool. */
static volatile unsigned long forks = 1;
static int counting; /* the handler is installed; without it every id asks getpid() */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void in_child(void) {
    forks++;
}
static void install(void) {
    counting = pthread_atfork(NULL, NULL, in_child) == 0;
}

void kl_uuid_pool_init(kl_uuid_pool *p) {
    pthread_once(&once, install);
    p->pos = KL_UUID_POOL_BYTES;
    p->forks = 0;
}

static int refill(kl_uuid_pool *p) {
    size_t got = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0) return -1;
    while (got < sizeof p->bytes) {
        ssize_t n = read(fd, p->bytes + got, sizeof p->bytes - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (got < sizeof p->bytes) return -1;
    p->pos = 0;
    p->forks = forks;
    p->pid = getpid();
    return 0;
}

int kl_uuid4(kl_uuid_pool *p, char out[37]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char b[16];
    int i, o = 0;
    if (p->forks != forks || (!counting && p->pid != getpid()) || p->pos + 16 > KL_UUID_POOL_BYTES) {
        if (refill(p) != 0) return -1;
    }
    memcpy(b, p->bytes + p->pos, 16);
    p->pos += 16;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10xx */
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 15];
    }
    out[o] = '\0';
    return 0;
}
