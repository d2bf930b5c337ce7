/*
 * spool_record.h: the tracker spool's record line (src/spool_record.c).
 *
 * A record is one line: its JSON text, a tab, its length in bytes and the CRC-32 (IEEE, as
 * zlib computes it) of its JSON text, each as 8 lowercase hex digits, and "\n":
 *
 *     {"type":"event-bulk-create",...}\t000001a4cbf43926\n
 *
 * JSON never holds a raw tab or newline, so the trailer cannot be mistaken for a part of the
 * record.  A record cut short, grown, or with a byte changed fails the check, so a damaged
 * record is told from a good one whatever its first byte.
 */
#ifndef KL_SPOOL_RECORD_H
#define KL_SPOOL_RECORD_H

#include <stddef.h>
#include <stdint.h>

/* Bytes the trailer adds after the JSON text (the tab, 16 hex digits, the "\n"). */
#define KL_SPOOL_TRAILER 18

/* Tables for the CRC-32 eight bytes at a time (8 KiB; kl_spool_crc_init fills them). */
typedef struct kl_spool_crc_tables {
    uint32_t t[8][256];
} kl_spool_crc_tables;

void kl_spool_crc_init(kl_spool_crc_tables *t);

/* CRC-32 of n bytes at p, continuing from crc (0 to start).  With tables (t not NULL) eight
 * bytes at a time, several times faster; without, a byte at a time from a constant table. */
uint32_t kl_spool_crc32(const kl_spool_crc_tables *t, uint32_t crc, const char *p, size_t n);

/* Writes the KL_SPOOL_TRAILER bytes of the record whose JSON text is json[0..len) at out.
 * len must be below 2^32 (a record is at most a request body, 5 MB). */
void kl_spool_trailer(const kl_spool_crc_tables *t, char *out, const char *json, size_t len);

/* The length of the JSON text of the record line line[0..n) (without its "\n") when its
 * trailer matches, else -1 (a damaged record, or not a record). */
long kl_spool_check(const kl_spool_crc_tables *t, const char *line, size_t n);

/* Whether p[0..n) is one JSON object, as the core's JSON reader checks it (kj_check: RFC 8259
 * syntax, strings well-formed UTF-8, nested at most KL_SPOOL_JSON_DEPTH deep): the form of
 * every bulk entry the spool's writer makes.  Allocates nothing. */
#define KL_SPOOL_JSON_DEPTH 64 /* json_read.h's KJ_MAX_DEPTH */
int kl_spool_json_object(const char *p, size_t n);

/* kl_spool_check, and the JSON text a JSON object (kl_spool_json_object): the length of a
 * record that may be sent as a bulk entry, else -1.  A record whose trailer matches but whose
 * text is no JSON object (a file written by something else) is damaged like any other: sent
 * in a batch, it would make the whole request unreadable, and every batch after it. */
long kl_spool_record(const kl_spool_crc_tables *t, const char *line, size_t n);

#endif
