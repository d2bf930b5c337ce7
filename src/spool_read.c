/*
 * spool_read.c: a batch of the tracker spool's records read back as one bulk request body,
 * assembled in C memory (see spool_read.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "spool_read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK (256 * 1024) /* read this much at a time (at least) */

/* buf holds at least need bytes (doubling): 0, or -1 (out of memory). */
static int reserve(kl_spool_buf *buf, size_t need) {
    size_t cap = buf->cap ? buf->cap : need;
    char *nb;
    if (buf->cap >= need) return 0;
    while (cap < need) cap *= 2;
    nb = (char *)realloc(buf->p, cap);
    if (!nb) return -1;
    buf->p = nb;
    buf->cap = cap;
    return 0;
}

int kl_spool_read_batch(const char *path, kl_spool_batch *b, const kl_spool_crc_tables *crc, kl_spool_buf *buf) {
    size_t plen = b->prefix_len, slen = b->suffix_len, len, scan, out, bytes = 0;
    off_t pos = b->from;
    int fd, stop = 0;
    char *p;
    b->count = b->damaged = 0;
    b->endpos = b->scanned = b->from;
    do { fd = open(path, O_RDONLY | O_CLOEXEC); } while (fd < 0 && errno == EINTR);
    if (fd < 0) return -1;
    /* buf (reused): the prefix, the records taken (each followed by ","), then the bytes
     * read but not scanned yet; `out` ends the first part, `scan` starts the last, `len`
     * ends it.  The suffix replaces the last ",". */
    if (reserve(buf, plen + slen + READ_CHUNK) < 0) {
        close(fd);
        return -2;
    }
    p = buf->p;
    memcpy(p, b->prefix, plen);
    len = scan = out = plen;
    while (!stop && b->count < b->max_count && pos < b->limit) {
        ssize_t r;
        size_t want;
        if (reserve(buf, len + slen + READ_CHUNK) < 0) {
            close(fd);
            return -2;
        }
        p = buf->p;
        want = buf->cap - len - slen;
        if ((off_t)want > b->limit - pos) want = (size_t)(b->limit - pos);
        r = pread(fd, p + len, want, pos);
        if (r < 0) {
            int e = errno;
            if (e == EINTR) continue;
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0) break; /* shorter than limit: what is there */
        pos += r;
        len += (size_t)r;
        while (b->count < b->max_count) {
            char *nl = (char *)memchr(p + scan, '\n', len - scan);
            size_t line;
            off_t at = pos - (off_t)(len - scan); /* the line's offset in the file */
            long json;
            if (!nl) break;
            line = (size_t)(nl - (p + scan));
            json = line > 0 && p[scan] != '#' ? kl_spool_record(crc, p + scan, line) : -1;
            if (json >= 0) {
                if (b->count > 0 && bytes + (size_t)json + 1 > b->max_bytes) {
                    stop = 1;
                    break;
                }
                if (out != scan) memmove(p + out, p + scan, (size_t)json);
                out += (size_t)json;
                p[out++] = ',';
                b->count++;
                bytes += (size_t)json + 1;
                b->endpos = at + (off_t)line + 1;
            } else if (line > 0 && p[scan] != '#' && (double)at >= b->count_from) {
                b->damaged++;
            }
            scan += line + 1;
            b->scanned = at + (off_t)line + 1;
        }
        /* keep only the unscanned part after the records taken */
        if (scan > out) {
            memmove(p + out, p + scan, len - scan);
            len = out + (len - scan);
            scan = out;
        }
    }
    close(fd);
    if (b->count > 0) out--; /* the last "," */
    memcpy(p + out, b->suffix, slen);
    b->body_len = out + slen;
    return 0;
}
