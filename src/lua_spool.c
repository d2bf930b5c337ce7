/*
 * lua_spool.c: the tracker spool's writer as Lua sees it (see lua_spool.h for the interface
 * and why): a record encoded from a template into the writer's C buffer, appended to the
 * file (src/spool_file.c) as a record line (src/spool_record.c), and batches of records read
 * back as a bulk body (src/spool_read.c).
 *
 * Memory: the writer's buffers are malloc'd blocks owned by its userdata (freed by close and
 * __gc), so an out-of-memory raise in the middle of an encode leaves nothing leaked.
 */
#define _POSIX_C_SOURCE 200809L

#include "lua_spool.h"
#include "lua_json.h"
#include "lua_meta.h"
#include "spool_file.h"
#include "spool_read.h"
#include "spool_record.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRITER_MT "klaviyo.core.spool_writer"

typedef struct {
    kl_spool_file file;       /* file.fd -1 once closed */
    int encoded;              /* rec holds a record not yet committed */
    kl_json_out rec;          /* the record being made (room for its trailer after it) */
    kl_spool_buf raw;         /* read_body's buffer */
    kl_spool_crc_tables *crc; /* for the records' CRC-32, eight bytes at a time */
} spool_writer;

static spool_writer *check_writer(lua_State *L) {
    return (spool_writer *)luaL_checkudata(L, 1, WRITER_MT);
}

static void writer_free(spool_writer *w) {
    kl_spool_file_close(&w->file);
    w->encoded = 0;
    free(w->rec.p);
    w->rec.p = NULL;
    w->rec.len = w->rec.cap = 0;
    free(w->raw.p);
    w->raw.p = NULL;
    w->raw.cap = 0;
    free(w->crc);
    w->crc = NULL;
}

/* nil, message (no byte of what was to be written reached the file) */
static int push_write_error(lua_State *L) {
    return lk_push_errno(L, errno, "cannot write to the spool", NULL);
}

static int closed_error(lua_State *L) {
    lua_pushnil(L);
    lua_pushliteral(L, "the spool writer is closed");
    return 2;
}

/* rec += n bytes at p (room for the trailer commit puts after the record is kept) */
static void rec_put(lua_State *L, kl_json_out *rec, const char *p, size_t n) {
    kl_json_out_reserve(L, rec, rec->len + n + KL_SPOOL_TRAILER, "a spool record");
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
    if (w->file.fd < 0) return closed_error(L);
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
    if (w->file.fd < 0) return closed_error(L);
    w->encoded = 0; /* a record goes once, whatever happens */
    kl_spool_trailer(w->crc, w->rec.p + w->rec.len, w->rec.p, w->rec.len);
    if (kl_spool_file_append(&w->file, w->rec.p, w->rec.len + KL_SPOOL_TRAILER) < 0) return push_write_error(L);
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
    if (w->file.fd < 0) return closed_error(L);
    kl_spool_trailer(w->crc, trailer, json, len);
    if (kl_spool_file_reserve(&w->file, len + KL_SPOOL_TRAILER) < 0) return push_write_error(L);
    kl_spool_file_append(&w->file, json, len); /* cannot fail: room made */
    kl_spool_file_append(&w->file, trailer, KL_SPOOL_TRAILER);
    lua_pushboolean(L, 1);
    return 1;
}

/* w:truncate(len [, s]) -> true | nil, message: the file is cut to len bytes in place (no
 * new space needed), then s (a few bytes: a header) is written there, not into a window, so
 * the file is exactly that; the next append goes after it */
static int l_truncate(lua_State *L) {
    spool_writer *w = check_writer(L);
    lua_Number n = luaL_checknumber(L, 2);
    size_t slen = 0;
    const char *s = luaL_optlstring(L, 3, "", &slen);
    int rc;
    if (n < 0 || n > (lua_Number)w->file.end) return luaL_argerror(L, 2, "past the end of the records");
    if (w->file.fd < 0) return closed_error(L);
    w->encoded = 0;
    rc = kl_spool_file_rewrite(&w->file, (off_t)n, s, slen);
    if (rc == -1) return lk_push_errno(L, errno, "cannot cut the spool", NULL);
    if (rc < 0) return push_write_error(L);
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
    if (w->file.fd < 0) return closed_error(L);
    /* room for all of them first: the strings go whole or not at all */
    if (total > 0 && kl_spool_file_reserve(&w->file, total) < 0) return push_write_error(L);
    for (i = 2; i <= n; i++) {
        const char *s = lua_tolstring(L, i, &len);
        if (kl_spool_file_append(&w->file, s, len) < 0) return push_write_error(L); /* cannot: room made */
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* w:fsync() -> true | nil, message: the mapped records reach the disk (msync), and the
 * file's metadata with them (fsync) */
static int l_fsync(lua_State *L) {
    spool_writer *w = check_writer(L);
    if (w->file.fd < 0) return closed_error(L);
    switch (kl_spool_file_sync(&w->file)) {
    case -1: return lk_push_errno(L, errno, "msync of the spool failed", NULL);
    case -2: return lk_push_errno(L, errno, "fsync of the spool failed", NULL);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* w:close() -> true | nil, message: the file is cut to its records and closed; safe twice */
static int l_close(lua_State *L) {
    spool_writer *w = check_writer(L);
    int rc = kl_spool_file_close(&w->file), e = errno;
    writer_free(w);
    if (rc != 0) return lk_push_errno(L, e, "cannot cut the spool to its records", NULL);
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
 * the trailer's length and CRC-32 match and its text is a JSON object (spool_record.h).  Lines that are not records (acks,
 * damaged records) are passed over, as the spool's `read` does; `damaged` counts the damaged
 * ones that start at or after `count_from` (so a line read again is counted once), and
 * `scanned` is the offset just past the last line looked at.  endpos is the offset just past
 * the last record taken (`from` when there is none). */
static int l_read_body(lua_State *L) {
    spool_writer *w = check_writer(L);
    const char *path = luaL_checkstring(L, 2);
    lua_Number from_n = luaL_checknumber(L, 3), limit_n = luaL_checknumber(L, 4);
    lua_Number count_n = luaL_checknumber(L, 5), bytes_n = luaL_checknumber(L, 6);
    kl_spool_batch b;
    int rc;
    b.prefix = luaL_checklstring(L, 7, &b.prefix_len);
    b.suffix = luaL_checklstring(L, 8, &b.suffix_len);
    b.count_from = (double)luaL_optnumber(L, 9, 0);
    if (from_n < 0 || limit_n < from_n || count_n < 1 || bytes_n < 1)
        return luaL_error(L, "spool writer: read_body: bad offsets or limits");
    b.from = (off_t)from_n;
    b.limit = (off_t)limit_n;
    b.max_count = count_n > 1e9 ? (size_t)1e9 : (size_t)count_n;
    b.max_bytes = bytes_n > 1e15 ? (size_t)1e15 : (size_t)bytes_n;
    rc = kl_spool_read_batch(path, &b, w->crc, &w->raw);
    if (rc == -2) return luaL_error(L, "klaviyo: out of memory reading the spool");
    if (rc < 0) return lk_push_errno(L, errno, "cannot read the spool", path);
    lua_pushlstring(L, w->raw.p, b.body_len);
    lua_pushnumber(L, (lua_Number)b.count);
    lua_pushnumber(L, (lua_Number)b.endpos);
    lua_pushnumber(L, (lua_Number)b.damaged);
    lua_pushnumber(L, (lua_Number)b.scanned);
    return 5;
}

static const luaL_Reg METHODS[] = {{"encode", l_encode},
                                   {"commit", l_commit},
                                   {"write", l_write},
                                   {"write_record", l_write_record},
                                   {"truncate", l_truncate},
                                   {"fsync", l_fsync},
                                   {"read_body", l_read_body},
                                   {"close", l_close},
                                   {NULL, NULL}};

int kl_lua_spool_check(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    lua_Integer i = luaL_checkinteger(L, 2), j = luaL_checkinteger(L, 3);
    long json;
    if (i < 1 || j < i - 1 || (size_t)j > n) return luaL_argerror(L, 2, "not a range of the string");
    json = kl_spool_record(NULL, s + (i - 1), (size_t)(j - i + 1));
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
    int rc;
    memset(w, 0, sizeof *w);
    w->file.fd = -1;
    lk_metatable(L, WRITER_MT, METHODS, l_gc);
    lua_setmetatable(L, -2);
    kl_spool_ignore_sigxfsz();
    w->crc = (kl_spool_crc_tables *)malloc(sizeof *w->crc);
    if (!w->crc) {
        lua_pushnil(L);
        lua_pushliteral(L, "cannot open the spool: out of memory");
        return 2;
    }
    kl_spool_crc_init(w->crc);
    if ((rc = kl_spool_file_open(&w->file, path)) != 0) {
        int e = errno;
        writer_free(w);
        return lk_push_errno(L, e, rc == -2 ? "cannot stat the spool" : "cannot open the spool", path);
    }
    return 1;
}
