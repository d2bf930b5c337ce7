/*
 * uuid.h - random RFC 4122 version 4 UUIDs for events' unique_id (Klaviyo records an event
 * once per unique_id, so a repeated send after a lost answer fires no flow twice).
 *
 * A pool belongs to one client (one thread at a time).  It holds random bytes read from
 * /dev/urandom a block at a time; a pool copied into a forked child (nginx workers) notices
 * the fork (a pthread_atfork counter: no system call per id) and refills before use, so no
 * two processes hand out the same ids.
 */
#ifndef KL_UUID_H
#define KL_UUID_H

#include <stddef.h>
#include <sys/types.h>

#define KL_UUID_POOL_BYTES 4096

typedef struct kl_uuid_pool {
    unsigned char bytes[KL_UUID_POOL_BYTES];
    size_t pos;          /* next unused byte; KL_UUID_POOL_BYTES when empty */
    unsigned long forks; /* forks seen when it was filled (see uuid.c); 0: never filled */
    pid_t pid;           /* the process that filled it (when fork counting is unavailable) */
} kl_uuid_pool;

/* An empty pool (filled on first use). */
void kl_uuid_pool_init(kl_uuid_pool *p);

/* Writes 36 characters and a NUL to out ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", lowercase).
 * 0, or -1 when no random bytes could be read (nothing written). */
int kl_uuid4(kl_uuid_pool *p, char out[37]);

#endif
