/*
 * spool_file.c: the tracker spool's file, appended to through a mapped window (see
 * spool_file.h for why).
 */
#define _POSIX_C_SOURCE 200809L

#include "spool_file.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define WINDOW (4 * 1024 * 1024) /* bytes mapped at a time (a multiple of any page size) */

static void unmap(kl_spool_file *f) {
    if (f->map) {
        munmap(f->map, f->map_len);
        f->map = NULL;
        f->map_len = 0;
    }
}

int kl_spool_file_open(kl_spool_file *f, const char *path) {
    struct stat st;
    memset(f, 0, sizeof *f);
    do {
        f->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666); /* RDWR: mmap needs it */
    } while (f->fd < 0 && errno == EINTR);
    if (f->fd < 0) return -1;
    if (fstat(f->fd, &st) != 0) {
        int e = errno;
        close(f->fd);
        f->fd = -1;
        errno = e;
        return -2;
    }
    /* the spool opens a file whose every line is complete (a torn or zero tail was
     * compacted away first): appends go after what is there */
    f->end = f->alloc = st.st_size;
    return 0;
}

int kl_spool_file_reserve(kl_spool_file *f, size_t n) {
    long page;
    off_t off, stop;
    size_t len;
    char *m;
    int e;
    if (f->map && f->end + (off_t)n <= f->map_off + (off_t)f->map_len && f->end + (off_t)n <= f->alloc)
        return 0; /* every append but one a window: nothing else on this path */
    page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    off = f->end - f->end % (off_t)page;
    len = WINDOW;
    while ((off_t)len < f->end - off + (off_t)n) len *= 2; /* a record longer than WINDOW */
    stop = off + (off_t)len;
    {
        /* the file size limit: allocating past it fails (or kills, see ignore_sigxfsz), so
         * the window's allocation stops there and an append that would cross it is EFBIG */
        struct rlimit rl;
        if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
            off_t lim = (off_t)rl.rlim_cur;
            if (lim < 0 || f->end + (off_t)n > lim) {
                errno = EFBIG;
                return -1;
            }
            if (stop > lim) stop = lim;
        }
    }
    if (stop > f->alloc) {
        e = posix_fallocate(f->fd, f->alloc, stop - f->alloc);
        if (e != 0) {
            /* no room for a whole window (a full disk, a file size limit): exactly the
             * append's bytes, so the spool still fills up to the limit.  The window may
             * then reach past the end of the file; no byte past it is ever touched. */
            off_t need = f->end + (off_t)n;
            if (need > f->alloc) {
                e = posix_fallocate(f->fd, f->alloc, need - f->alloc);
                if (e != 0) {
                    errno = e;
                    return -1;
                }
                f->alloc = need;
            }
        } else {
            f->alloc = stop;
        }
    }
    m = (char *)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd, off);
    if (m == MAP_FAILED) return -1;
    if (f->map) munmap(f->map, f->map_len);
    f->map = m;
    f->map_off = off;
    f->map_len = len;
    return 0;
}

int kl_spool_file_append(kl_spool_file *f, const char *p, size_t n) {
    if (n == 0) return 0;
    if (kl_spool_file_reserve(f, n) != 0) return -1;
    memcpy(f->map + (f->end - f->map_off), p, n);
    f->end += (off_t)n;
    return 0;
}

int kl_spool_file_rewrite(kl_spool_file *f, off_t n, const char *s, size_t slen) {
    unmap(f);
    if (ftruncate(f->fd, n) != 0) return -1;
    f->end = f->alloc = n;
    while (slen > 0) {
        ssize_t r = pwrite(f->fd, s, slen, f->end);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            if (ftruncate(f->fd, n) == 0) f->end = f->alloc = n;
            errno = r < 0 ? e : ENOSPC;
            return -2;
        }
        s += r;
        slen -= (size_t)r;
        f->end = f->alloc = f->end + r;
    }
    return 0;
}

int kl_spool_file_sync(kl_spool_file *f) {
    if (f->map && msync(f->map, f->map_len, MS_SYNC) != 0) return -1;
    if (fsync(f->fd) != 0) return -2;
    return 0;
}

int kl_spool_file_close(kl_spool_file *f) {
    int rc = 0, e = 0;
    if (f->fd < 0) return 0;
    unmap(f);
    if (f->alloc > f->end) { /* the zero tail goes */
        if (ftruncate(f->fd, f->end) != 0) {
            rc = -1;
            e = errno;
        } else {
            f->alloc = f->end;
        }
    }
    close(f->fd);
    f->fd = -1;
    if (rc != 0) errno = e;
    return rc;
}

void kl_spool_ignore_sigxfsz(void) {
    /* A write, an allocation or a truncation past the file size limit (RLIMIT_FSIZE) sends
     * SIGXFSZ, whose default action kills the process: a tracker's caller would die where it
     * was promised nil, err.  Ignored, the call fails with EFBIG instead.  Only a default
     * disposition is changed: a handler (or an ignore) the application chose is its own. */
    struct sigaction cur;
    if (sigaction(SIGXFSZ, NULL, &cur) == 0 && cur.sa_handler == SIG_DFL && !(cur.sa_flags & SA_SIGINFO)) {
        struct sigaction ign;
        memset(&ign, 0, sizeof ign);
        ign.sa_handler = SIG_IGN;
        sigemptyset(&ign.sa_mask);
        sigaction(SIGXFSZ, &ign, NULL);
    }
}
