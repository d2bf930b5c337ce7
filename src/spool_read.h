/*
 * spool_read.h: a batch of the tracker spool's records read back as one bulk request body
 * (src/spool_read.c), plain C.
 */
#ifndef KL_SPOOL_READ_H
#define KL_SPOOL_READ_H

#include "spool_record.h"

#include <stddef.h>
#include <sys/types.h>

/* What to read, and what was read. */
typedef struct kl_spool_batch {
    off_t from, limit;  /* from offset `from`, never past `limit` (a line's end) */
    size_t max_count;   /* at most this many records (one always) */
    size_t max_bytes;   /* and this many bytes of their JSON texts and commas */
    const char *prefix; /* the body is prefix, the records joined by ",", suffix */
    size_t prefix_len;
    const char *suffix;
    size_t suffix_len;
    double count_from; /* damaged lines are counted from this offset on */
    size_t body_len;   /* out: the body is the buffer's first body_len bytes */
    size_t count;      /* out: records taken */
    size_t damaged;    /* out: damaged lines starting at or after count_from */
    off_t endpos;      /* out: just past the last record taken (`from` if none) */
    off_t scanned;     /* out: just past the last line looked at */
} kl_spool_batch;

/* A reusable read buffer (malloc'd; its owner frees p). */
typedef struct kl_spool_buf {
    char *p;
    size_t cap;
} kl_spool_buf;

/* Reads the records of the spool file at path that b describes into buf (grown as needed)
 * and fills b's results.  A record goes without its trailer, once the trailer's length and
 * CRC-32 match and its text is a JSON object (kl_spool_record, with crc's tables); lines that are not records (acks,
 * damaged records) are passed over.  0; -1 with errno when the file could not be opened or
 * read; -2 when memory ran out. */
int kl_spool_read_batch(const char *path, kl_spool_batch *b, const kl_spool_crc_tables *crc, kl_spool_buf *buf);

#endif
