/*
 * lua_spool.c: the tracker spool's writer (see lua_spool.h for the interface and why).
 *
 * Memory: the writer's buffers are malloc'd blocks owned by its userdata (freed by close and
 * __gc), so an out-of-memory raise in the middle of an encode leaves nothing leaked.
 *
 * Appends go into a shared mapping of the file (a window of WINDOW bytes, allocated on disk
 * with posix_fallocate before it is mapped), not through write(2): a record copied there is
 * in the kernel's page cache, where a killed process cannot take it back (the promise `track`
 * makes), and a copy into memory costs less than a write(2) system call per record.  The file is longer than its records
 * while the writer is open (the window's allocated tail reads as zero bytes); close cuts it
 * to the records.  After a crash the zero tail is a torn last line to the spool's reader,
 * dropped as any torn tail is.  Allocating before mapping means a full disk is an error
 * returned by append, never a SIGBUS on a page of a hole.  The window never reaches past
 * the file size limit (RLIMIT_FSIZE): a record that would cross it fails with EFBIG.
 */
#define _POSIX_C_SOURCE 200809L

#include "lua_spool.h"
#include "lua_json.h"
#include "spool_record.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#define WRITER_MT "klaviyo.core.spool_writer"
#define READ_CHUNK (256 * 1024)  /* read_body reads this much at a time (at least) */
#define WINDOW (4 * 1024 * 1024) /* bytes mapped at a time (a multiple of any page size) */

typedef struct {
    int fd;          /* -1 once closed */
    int encoded;     /* rec holds a record not yet committed */
    kl_json_out rec; /* the record being made (room for its trailer after it) */
    char *raw;       /* read_body's buffer */
    size_t rawcap;
    char *map;     /* the mapped window, or NULL */
    off_t map_off; /* file offset of map[0] (a multiple of the page size) */
    size_t map_len;
    off_t end;                /* where the next byte goes: the end of the records */
    off_t alloc;              /* the file's length (records, then allocated zero bytes) */
    kl_spool_crc_tables *crc; /* for the records' CRC-32, eight bytes at a time */
} spool_writer;

static spool_writer *check_writer(lua_State *L) {
    return (spool_writer *)luaL_checkudata(L, 1, WRITER_MT);
}

/* Unmaps the window and cuts the file back to its records (the zero tail goes).  0 or -1. */
static int writer_unmap(spool_writer *w) {
    int rc = 0;
    if (w->map) {
        munmap(w->map, w->map_len);
        w->map = NULL;
        w->map_len = 0;
    }
    if (w->fd >= 0 && w->alloc > w->end) {
        if (ftruncate(w->fd, w->end) != 0) rc = -1;
        else w->alloc = w->end;
    }
    return rc;
}

static void writer_free(spool_writer *w) {
    if (w->fd >= 0) {
        writer_unmap(w);
        close(w->fd);
    }
    w->fd = -1;
    w->encoded = 0;
    free(w->rec.p);
    w->rec.p = NULL;
    w->rec.len = w->rec.cap = 0;
    free(w->raw);
    w->raw = NULL;
    w->rawcap = 0;
    free(w->crc);
    w->crc = NULL;
}

static int push_errno(lua_State *L, const char *what, const char *path) {
    int e = errno;
    lua_pushnil(L);
    if (path) lua_pushfstring(L, "%s %s: %s", what, path, strerror(e));
    else lua_pushfstring(L, "%s: %s", what, strerror(e));
    return 2;
}

/* Makes [end, end + n) part of the mapped window, allocating the file's blocks first.
 * 0, or -1 with errno (nothing written). */
static int make_room(spool_writer *w, size_t n) {
    long page;
    off_t off, stop;
    size_t len;
    char *m;
    int e;
    if (w->map && w->end + (off_t)n <= w->map_off + (off_t)w->map_len && w->end + (off_t)n <= w->alloc)
        return 0; /* every append but one a window: nothing else on this path */
    page = sysconf(_SC_PAGESIZE);
    if (page <= 0) page = 4096;
    off = w->end - w->end % (off_t)page;
    len = WINDOW;
    while ((off_t)len < w->end - off + (off_t)n) len *= 2; /* a record longer than WINDOW */
    stop = off + (off_t)len;
    {
        /* the file size limit: allocating past it fails (or kills, see ignore_sigxfsz), so
         * the window's allocation stops there and a record that would cross it is EFBIG */
        struct rlimit rl;
        if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
            off_t lim = (off_t)rl.rlim_cur;
            if (lim < 0 || w->end + (off_t)n > lim) {
                errno = EFBIG;
                return -1;
            }
            if (stop > lim) stop = lim;
        }
    }
    if (stop > w->alloc) {
        e = posix_fallocate(w->fd, w->alloc, stop - w->alloc);
        if (e != 0) {
            /* no room for a whole window (a full disk, a file size limit): exactly the
             * record's bytes, so the spool still fills up to the limit.  The window may
             * then reach past the end of the file; no byte past it is ever touched. */
            off_t need = w->end + (off_t)n;
            if (need > w->alloc) {
                e = posix_fallocate(w->fd, w->alloc, need - w->alloc);
                if (e != 0) {
                    errno = e;
                    return -1;
                }
                w->alloc = need;
            }
        } else {
            w->alloc = stop;
        }
    }
    m = (char *)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, w->fd, off);
    if (m == MAP_FAILED) return -1;
    if (w->map) munmap(w->map, w->map_len);
    w->map = m;
    w->map_off = off;
    w->map_len = len;
    return 0;
}

/* Appends n bytes at the end of the records (into the page cache, see the top).  0, or -1
 * with errno when no byte was written (a failure never leaves part of a record). */
static int append_bytes(spool_writer *w, const char *p, size_t n) {
    if (n == 0) return 0;
    if (make_room(w, n) != 0) return -1;
    memcpy(w->map + (w->end - w->map_off), p, n);
    w->end += (off_t)n;
    return 0;
}

/* nil, message (no byte of what was to be written reached the file) */
static int push_write_error(lua_State *L) {
    int e = errno;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot write to the spool: %s", strerror(e));
    return 2;
}

static int closed_error(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "the spool writer is closed");
    return 2;
}

/* rec += n bytes at p (room for the trailer commit puts after the record is kept) */
static void rec_put(lua_State *L, kl_json_out *rec, const char *p, size_t n) {
    if (rec->cap - rec->len < n + KL_SPOOL_TRAILER) {
        size_t cap = rec->cap ? rec->cap : 1024;
        char *nb;
        while (cap - rec->len < n + KL_SPOOL_TRAILER) cap *= 2;
        nb = (char *)realloc(rec->p, cap);
        if (!nb) luaL_error(L, "klaviyo: out of memory encoding a spool record");
        rec->p = nb;
        rec->cap = cap;
    }
    memcpy(rec->p + rec->len, p, n);
    rec->len += n;
}

/* The name a failed value goes by in its message: the last key in the text before it (the
 * template's `,"properties":` names what follows), or "" when the text has none. */
static void last_key(const char *t, size_t n, const char **k, size_t *klen) {
    size_t end, start;
    *k = "";
    *klen = 0;
    while (n > 0 && (t[n - 1] == ':' || t[n - 1] == ' ')) n--;
    if (n == 0 || t[n - 1] != '"') return;
    end = n - 1;
    start = end;
    while (start > 0 && t[start - 1] != '"') start--;
    if (start == 0) return;
    *k = t + start;
    *klen = end - start;
}

/* w:encode(template, value, ...) -> length of the record (without its "\n") | nil, message
 * A record from a template: `template` is JSON texts joined by "\0" bytes (a byte JSON text
 * never holds), one more text than there are values, and the record is the first text, the
 * first value encoded as JSON (src/lua_json.c: a string becomes a JSON string), the second
 * text, and so on; a nil value leaves out itself and the text before it (an optional member,
 * whose text is its `,"key":`).  So the tracker encodes the user's own tables in place and
 * makes no table of its own per event, and the fixed parts cross from Lua as one string.
 * The message of a value that cannot be encoded names it by the key before it
 * ("properties.name: string is not valid UTF-8"). */
static int l_encode(lua_State *L) {
    spool_writer *w = check_writer(L);
    size_t tlen;
    const char *t = luaL_checklstring(L, 2, &tlen), *end = t + tlen;
    int n = lua_gettop(L), i;
    w->encoded = 0;
    if (w->fd < 0) return closed_error(L);
    w->rec.len = 0;
    for (i = 3;; i++) {
        const char *z = (const char *)memchr(t, '\0', (size_t)(end - t));
        size_t seg = z ? (size_t)(z - t) : (size_t)(end - t);
        if (i > n) { /* the last text */
            if (z) return luaL_argerror(L, 2, "more texts in the template than values and one");
            rec_put(L, &w->rec, t, seg);
            break;
        }
        if (!z) return luaL_argerror(L, 2, "fewer texts in the template than values and one");
        if (lua_type(L, i) != LUA_TNIL) { /* nil: an absent member, and its text */
            rec_put(L, &w->rec, t, seg);
            if (kl_json_encode_to(L, i, &w->rec, NULL) < 0) {
                /* the encoder left only its message in rec: "path: what" */
                const char *k, *m = w->rec.p;
                size_t klen, mlen = w->rec.len;
                last_key(t, seg, &k, &klen);
                w->rec.len = 0;
                lua_pushnil(L);
                if (klen == 0) {
                    lua_pushlstring(L, m, mlen);
                } else if (mlen >= 6 && memcmp(m, "(root)", 6) == 0) {
                    lua_pushlstring(L, k, klen);
                    lua_pushlstring(L, m + 6, mlen - 6);
                    lua_concat(L, 2);
                } else {
                    lua_pushlstring(L, k, klen);
                    lua_pushstring(L, m[0] == '[' ? "" : ".");
                    lua_pushlstring(L, m, mlen);
                    lua_concat(L, 3);
                }
                return 2;
            }
        }
        t = z + 1;
    }
    rec_put(L, &w->rec, "", 0); /* room for the trailer commit puts after the record */
    w->encoded = 1;
    lua_pushnumber(L, (lua_Number)w->rec.len);
    return 1;
}

/* w:commit() -> true | nil, message: the record encode made, as a record line (its trailer,
 * see spool_record.h, and a "\n") */
static int l_commit(lua_State *L) {
    spool_writer *w = check_writer(L);
    if (!w->encoded) return luaL_error(L, "spool writer: commit without a successful encode");
    if (w->fd < 0) return closed_error(L);
    w->encoded = 0; /* a record goes once, whatever happens */
    kl_spool_trailer(w->crc, w->rec.p + w->rec.len, w->rec.p, w->rec.len);
    if (append_bytes(w, w->rec.p, w->rec.len + KL_SPOOL_TRAILER) < 0) return push_write_error(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* w:write_record(json) -> true | nil, message: json as a record line (whole or not at all) */
static int l_write_record(lua_State *L) {
    spool_writer *w = check_writer(L);
    size_t len;
    const char *json = luaL_checklstring(L, 2, &len);
    char trailer[KL_SPOOL_TRAILER];
    if (len > 0xffffffffu) return luaL_argerror(L, 2, "a record of 4 GiB or more");
    if (w->fd < 0) return closed_error(L);
    kl_spool_trailer(w->crc, trailer, json, len);
    if (make_room(w, len + KL_SPOOL_TRAILER) < 0) return push_write_error(L);
    append_bytes(w, json, len); /* cannot fail: room made */
    append_bytes(w, trailer, KL_SPOOL_TRAILER);
    lua_pushboolean(L, 1);
    return 1;
}

/* w:truncate(len [, s]) -> true | nil, message: the file is cut to len bytes in place (no
 * new space needed), then s (a few bytes: a header) is written there with pwrite, not into
 * a window, so the file is exactly that; the next append goes after it */
static int l_truncate(lua_State *L) {
    spool_writer *w = check_writer(L);
    lua_Number n = luaL_checknumber(L, 2);
    size_t slen = 0;
    const char *s = luaL_optlstring(L, 3, "", &slen);
    if (n < 0 || n > (lua_Number)w->end) return luaL_argerror(L, 2, "past the end of the records");
    if (w->fd < 0) return closed_error(L);
    w->encoded = 0;
    if (w->map) {
        munmap(w->map, w->map_len);
        w->map = NULL;
        w->map_len = 0;
    }
    if (ftruncate(w->fd, (off_t)n) != 0) return push_errno(L, "cannot cut the spool", NULL);
    w->end = w->alloc = (off_t)n;
    while (slen > 0) {
        ssize_t r = pwrite(w->fd, s, slen, w->end);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = errno;
            if (ftruncate(w->fd, (off_t)n) == 0) w->end = w->alloc = (off_t)n;
            errno = r < 0 ? e : ENOSPC;
            return push_write_error(L);
        }
        s += r;
        slen -= (size_t)r;
        w->end = w->alloc = w->end + r;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* w:write(s, ...) -> true | nil, message: the strings, one after another */
static int l_write(lua_State *L) {
    spool_writer *w = check_writer(L);
    int n = lua_gettop(L), i;
    size_t total = 0, len;
    for (i = 2; i <= n; i++) {
        luaL_checklstring(L, i, &len);
        total += len;
    }
    if (w->fd < 0) return closed_error(L);
    /* room for all of them first: the strings go whole or not at all */
    if (total > 0 && make_room(w, total) < 0) return push_write_error(L);
    for (i = 2; i <= n; i++) {
        const char *s = lua_tolstring(L, i, &len);
        if (append_bytes(w, s, len) < 0) return push_write_error(L); /* cannot: room made */
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* w:fsync() -> true | nil, message: the mapped records reach the disk (msync), and the
 * file's metadata with them (fsync) */
static int l_fsync(lua_State *L) {
    spool_writer *w = check_writer(L);
    if (w->fd < 0) return closed_error(L);
    if (w->map && msync(w->map, w->map_len, MS_SYNC) != 0) return push_errno(L, "msync of the spool failed", NULL);
    if (fsync(w->fd) != 0) return push_errno(L, "fsync of the spool failed", NULL);
    lua_pushboolean(L, 1);
    return 1;
}

/* w:close() -> true | nil, message: the file is cut to its records and closed; safe twice */
static int l_close(lua_State *L) {
    spool_writer *w = check_writer(L);
    int rc = 0, e = 0;
    if (w->fd >= 0) {
        rc = writer_unmap(w);
        e = errno;
    }
    writer_free(w);
    if (rc != 0) {
        errno = e;
        return push_errno(L, "cannot cut the spool to its records", NULL);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int l_gc(lua_State *L) {
    writer_free(check_writer(L));
    return 0;
}

/* w:read_body(path, from, limit, max_count, max_bytes, prefix, suffix, count_from)
 *   -> body, count, endpos, damaged, scanned | nil, message
 * The records of the spool file at path from offset `from` (at most max_count records and
 * max_bytes bytes of their JSON texts, one record always; never past `limit`, the end of the
 * last complete line) joined by "," between prefix and suffix: a bulk request body, read and
 * assembled in C memory, one Lua string in the end.  A record goes without its trailer, once
 * the trailer's length and CRC-32 match (spool_record.h).  Lines that are not records (acks,
 * damaged records) are passed over, as the spool's `read` does; `damaged` counts the damaged
 * ones that start at or after `count_from` (so a line read again is counted once), and
 * `scanned` is the offset just past the last line looked at.  endpos is the offset just past
 * the last record taken (`from` when there is none). */
static int l_read_body(lua_State *L) {
    spool_writer *w = check_writer(L);
    const char *path = luaL_checkstring(L, 2);
    lua_Number from_n = luaL_checknumber(L, 3), limit_n = luaL_checknumber(L, 4);
    lua_Number count_n = luaL_checknumber(L, 5), bytes_n = luaL_checknumber(L, 6);
    lua_Number count_from_n = luaL_optnumber(L, 9, 0);
    size_t plen, slen, len, scan, out, bytes = 0, max_count, max_bytes;
    const char *prefix = luaL_checklstring(L, 7, &plen), *suffix = luaL_checklstring(L, 8, &slen);
    off_t pos, limit, endpos, scanned;
    size_t count = 0, damaged = 0;
    int fd, stop = 0;
    char *buf;
    if (from_n < 0 || limit_n < from_n || count_n < 1 || bytes_n < 1)
        return luaL_error(L, "spool writer: read_body: bad offsets or limits");
    pos = endpos = scanned = (off_t)from_n;
    limit = (off_t)limit_n;
    max_count = count_n > 1e9 ? (size_t)1e9 : (size_t)count_n;
    max_bytes = bytes_n > 1e15 ? (size_t)1e15 : (size_t)bytes_n;
    do { fd = open(path, O_RDONLY | O_CLOEXEC); } while (fd < 0 && errno == EINTR);
    if (fd < 0) return push_errno(L, "cannot read the spool", path);
    /* w->raw (reused): the prefix, the records taken (each followed by ","), then the bytes
     * read but not scanned yet; `out` ends the first part, `scan` starts the last, `len`
     * ends it.  The suffix replaces the last ",". */
    if (w->rawcap < plen + slen + READ_CHUNK) {
        char *nb = (char *)realloc(w->raw, plen + slen + READ_CHUNK);
        if (!nb) {
            close(fd);
            return luaL_error(L, "klaviyo: out of memory reading the spool");
        }
        w->raw = nb;
        w->rawcap = plen + slen + READ_CHUNK;
    }
    buf = w->raw;
    memcpy(buf, prefix, plen);
    len = scan = out = plen;
    while (!stop && count < max_count && pos < limit) {
        ssize_t r;
        size_t want;
        if (w->rawcap - len < slen + READ_CHUNK) {
            char *nb = (char *)realloc(w->raw, w->rawcap * 2);
            if (!nb) {
                close(fd);
                return luaL_error(L, "klaviyo: out of memory reading the spool");
            }
            w->raw = buf = nb;
            w->rawcap *= 2;
        }
        want = w->rawcap - len - slen;
        if ((off_t)want > limit - pos) want = (size_t)(limit - pos);
        r = pread(fd, buf + len, want, pos);
        if (r < 0) {
            int e = errno;
            if (e == EINTR) continue;
            close(fd);
            errno = e;
            return push_errno(L, "cannot read the spool", path);
        }
        if (r == 0) break; /* shorter than limit: what is there */
        pos += r;
        len += (size_t)r;
        while (count < max_count) {
            char *nl = (char *)memchr(buf + scan, '\n', len - scan);
            size_t line;
            off_t at = pos - (off_t)(len - scan); /* the line's offset in the file */
            long json;
            if (!nl) break;
            line = (size_t)(nl - (buf + scan));
            json = line > 0 && buf[scan] != '#' ? kl_spool_check(w->crc, buf + scan, line) : -1;
            if (json >= 0) {
                if (count > 0 && bytes + (size_t)json + 1 > max_bytes) {
                    stop = 1;
                    break;
                }
                if (out != scan) memmove(buf + out, buf + scan, (size_t)json);
                out += (size_t)json;
                buf[out++] = ',';
                count++;
                bytes += (size_t)json + 1;
                endpos = at + (off_t)line + 1;
            } else if (line > 0 && buf[scan] != '#' && (lua_Number)at >= count_from_n) {
                damaged++;
            }
            scan += line + 1;
            scanned = at + (off_t)line + 1;
        }
        /* keep only the unscanned part after the records taken */
        if (scan > out) {
            memmove(buf + out, buf + scan, len - scan);
            len = out + (len - scan);
            scan = out;
        }
    }
    close(fd);
    if (count > 0) out--; /* the last "," */
    memcpy(buf + out, suffix, slen);
    lua_pushlstring(L, buf, out + slen);
    lua_pushnumber(L, (lua_Number)count);
    lua_pushnumber(L, (lua_Number)endpos);
    lua_pushnumber(L, (lua_Number)damaged);
    lua_pushnumber(L, (lua_Number)scanned);
    return 5;
}

static const struct {
    const char *name;
    lua_CFunction f;
} METHODS[] = {{"encode", l_encode},
               {"commit", l_commit},
               {"write", l_write},
               {"write_record", l_write_record},
               {"truncate", l_truncate},
               {"fsync", l_fsync},
               {"read_body", l_read_body},
               {"close", l_close},
               {NULL, NULL}};

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

int kl_lua_spool_check(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer i = luaL_checkinteger(L, 2), j = luaL_checkinteger(L, 3);
    long json;
    if (i < 1 || j < i - 1 || (size_t)j > n) return luaL_argerror(L, 2, "not a range of the string");
    json = kl_spool_check(NULL, s + (i - 1), (size_t)(j - i + 1));
    if (json < 0) lua_pushnil(L);
    else lua_pushinteger(L, (lua_Integer)json);
    return 1;
}

int kl_lua_spool_trailer(lua_State *L) {
    size_t n;
    const char *json = luaL_checklstring(L, 1, &n);
    char trailer[KL_SPOOL_TRAILER];
    if (n > 0xffffffffu) return luaL_argerror(L, 1, "a record of 4 GiB or more");
    kl_spool_trailer(NULL, trailer, json, n);
    lua_pushlstring(L, trailer, KL_SPOOL_TRAILER);
    return 1;
}

int kl_lua_spool_writer(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    spool_writer *w = (spool_writer *)lua_newuserdata(L, sizeof *w);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    if (luaL_newmetatable(L, WRITER_MT)) {
        int i;
        lua_newtable(L);
        for (i = 0; METHODS[i].name; i++) {
            lua_pushcfunction(L, METHODS[i].f);
            lua_setfield(L, -2, METHODS[i].name);
        }
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushliteral(L, WRITER_MT);
        lua_setfield(L, -2, "__name");
    }
    lua_setmetatable(L, -2);
    kl_spool_ignore_sigxfsz();
    w->crc = (kl_spool_crc_tables *)malloc(sizeof *w->crc);
    if (!w->crc) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot open the spool: out of memory");
        return 2;
    }
    kl_spool_crc_init(w->crc);
    {
        struct stat st;
        do {
            w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666); /* RDWR: mmap needs it */
        } while (w->fd < 0 && errno == EINTR);
        if (w->fd < 0) return push_errno(L, "cannot open the spool", path);
        if (fstat(w->fd, &st) != 0) {
            int e = errno;
            writer_free(w);
            errno = e;
            return push_errno(L, "cannot stat the spool", path);
        }
        /* the spool opens a file whose every line is complete (a torn or zero tail was
         * compacted away first): records go after what is there */
        w->end = w->alloc = st.st_size;
    }
    return 1;
}

int kl_lua_fsync_path(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int fd, rc;
    do { fd = open(path, O_RDONLY | O_CLOEXEC); /* O_RDONLY: directories too */ } while (fd < 0 && errno == EINTR);
    if (fd < 0) return push_errno(L, "cannot open to fsync", path);
    rc = fsync(fd);
    if (rc != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return push_errno(L, "fsync failed for", path);
    }
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
}
