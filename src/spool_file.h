/*
 * spool_file.h: the tracker spool's file as the writer sees it (src/spool_file.c), plain C.
 *
 * Appends go into a shared mapping of the file (a window allocated on disk with
 * posix_fallocate before it is mapped), not through write(2): bytes copied there are in the
 * kernel's page cache, where a killed process cannot take them back, and a copy into memory
 * costs less than a write(2) system call per record.  While open, the file is longer than
 * what was appended (the window's allocated tail reads as zero bytes); closing cuts it to
 * the appended bytes.  After a crash the zero tail is a torn last line to the spool's
 * reader, dropped as any torn tail is.  Allocating before mapping means a full disk is an
 * error returned by an append, never a SIGBUS on a page of a hole.  The window never
 * reaches past the file size limit (RLIMIT_FSIZE): an append that would cross it fails with
 * EFBIG.  An append that fails writes none of its bytes.
 */
#ifndef KL_SPOOL_FILE_H
#define KL_SPOOL_FILE_H

#include <stddef.h>
#include <sys/types.h>

typedef struct kl_spool_file {
    int fd;        /* -1 when not open */
    char *map;     /* the mapped window, or NULL */
    off_t map_off; /* file offset of map[0] (a multiple of the page size) */
    size_t map_len;
    off_t end;   /* where the next byte goes: the end of what was appended */
    off_t alloc; /* the file's length (the appended bytes, then allocated zero bytes) */
} kl_spool_file;

/* Opens path read-write (created 0666 & umask); appends go after what the file holds.
 * 0; -1 with errno when open failed; -2 with errno when fstat failed (f is closed then). */
int kl_spool_file_open(kl_spool_file *f, const char *path);

/* Makes room for n bytes at the end (allocated and mapped): 0, or -1 with errno. */
int kl_spool_file_reserve(kl_spool_file *f, size_t n);

/* Appends n bytes: 0, or -1 with errno when none was written (never part of them). */
int kl_spool_file_append(kl_spool_file *f, const char *p, size_t n);

/* Cuts the file to n bytes (at most its end) in place, then writes s[0..slen) there with
 * pwrite, not into a window, so the file is exactly that; the next append goes after it.
 * 0; -1 with errno when the cut failed; -2 with errno when the write failed (the file is
 * cut to n bytes again then). */
int kl_spool_file_rewrite(kl_spool_file *f, off_t n, const char *s, size_t slen);

/* The mapped bytes reach the disk (msync), and the file's metadata with them (fsync).
 * 0; -1 with errno when msync failed; -2 with errno when fsync failed. */
int kl_spool_file_sync(kl_spool_file *f);

/* Unmaps the window, cuts the file to the appended bytes and closes it; safe twice.
 * 0, or -1 with errno when the cut failed (the file is closed all the same). */
int kl_spool_file_close(kl_spool_file *f);

/* SIGXFSZ ignored if its disposition is the default: writing past the file size limit then
 * fails with EFBIG instead of killing the process. */
void kl_spool_ignore_sigxfsz(void);

#endif
