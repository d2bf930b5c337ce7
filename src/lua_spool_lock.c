/*
 * lua_spool_lock.c: the tracker spool's owner lock (see lua_spool.h for the interface).
 *
 * The lock is flock(LOCK_EX | LOCK_NB) on PATH.lock, a file beside the spool (not on the spool
 * itself: compaction renames a new file over the spool, and a lock on the old one would
 * guard nothing).  flock belongs to the open file description, so two opens of one spool
 * conflict in one process as in two; fcntl locks would not (they are per process).  The
 * kernel drops the lock when its holder dies, so a crashed owner never blocks the next one.
 *
 * Release unlinks PATH.lock while still holding it, then closes.  A taker that opened the
 * file before the unlink may get the lock on the unlinked file after the close: it compares
 * the file it locked with the one now at PATH.lock (device and inode) and starts again when
 * they differ, so the lock it keeps is always the one at the path.
 *
 * Taking the lock is the first thing opening a spool does, so it is also where a spool path
 * that names something other than a regular file (through a symlink or not) is refused,
 * before anything is created or read: reading a FIFO blocks until a writer comes, and a
 * directory or a device is no spool.  core.spool_file_kind makes the same check for the
 * spool's other files (PATH.damaged) before the spool opens them with io.open.
 */
#define _DEFAULT_SOURCE /* flock */
#define _POSIX_C_SOURCE 200809L

#include "lua_meta.h"
#include "lua_spool.h"
#include "spool_file.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_MT "klaviyo.core.spool_lock"
#define TRIES 100 /* a holder releasing as often as we retry: give up, "in use" */

typedef struct {
    int fd;     /* -1 once released */
    char *path; /* PATH.lock (malloc'd) */
} spool_lock;

static void lock_free(spool_lock *k, int unlink_it) {
    if (k->fd >= 0) {
        if (unlink_it) unlink(k->path); /* before close: see the top */
        close(k->fd);
        k->fd = -1;
    }
    free(k->path);
    k->path = NULL;
}

static int lock_release(lua_State *L) {
    lock_free((spool_lock *)luaL_checkudata(L, 1, LOCK_MT), 1);
    lua_pushboolean(L, 1);
    return 1;
}

static int lock_gc(lua_State *L) {
    lock_free((spool_lock *)luaL_checkudata(L, 1, LOCK_MT), 1);
    return 0;
}

/* nil, "spool PATH is in use by process N": the pid the holder wrote, when it is there */
static int push_in_use(lua_State *L, int fd, const char *spool) {
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    long pid = 0;
    if (n > 0) {
        buf[n] = '\0';
        pid = strtol(buf, NULL, 10);
    }
    lua_pushnil(L);
    if (pid > 0 && pid == (long)getpid())
        lua_pushfstring(L, "spool %s is in use by process %d (this one: another tracker holds it)", spool, (int)pid);
    else if (pid > 0) lua_pushfstring(L, "spool %s is in use by process %d", spool, (int)pid);
    else lua_pushfstring(L, "spool %s is in use by another process", spool);
    return 2;
}

/* NULL when path names a regular file (through symlinks) or nothing, else what it is */
static const char *not_regular(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0 || S_ISREG(st.st_mode)) return NULL;
    if (S_ISFIFO(st.st_mode)) return "a FIFO";
    if (S_ISDIR(st.st_mode)) return "a directory";
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device";
    if (S_ISSOCK(st.st_mode)) return "a socket";
    return "of an unknown kind";
}

/* nil, message when the spool path names something that exists and is not a regular file;
 * 0 when it is one or does not exist (opening creates it) */
static int refuse_not_regular(lua_State *L, const char *spool) {
    const char *what = not_regular(spool);
    if (!what) return 0;
    lua_pushnil(L);
    lua_pushfstring(L, "cannot open the spool %s: not a regular file (%s)", spool, what);
    return 2;
}

int kl_lua_spool_file_kind(lua_State *L) {
    const char *what = not_regular(luaL_checkstring(L, 1));
    if (what) lua_pushstring(L, what);
    else lua_pushnil(L);
    return 1;
}

static const luaL_Reg lock_methods[] = {{"release", lock_release}, {NULL, NULL}};

int kl_lua_spool_lock(lua_State *L) {
    size_t plen;
    const char *spool = luaL_checklstring(L, 1, &plen);
    spool_lock *k = (spool_lock *)lua_newuserdata(L, sizeof *k);
    int tries;
    k->fd = -1;
    k->path = NULL;
    lk_metatable(L, LOCK_MT, lock_methods, lock_gc);
    lua_setmetatable(L, -2);
    kl_spool_ignore_sigxfsz(); /* before the spool writes anything (opening compacts) */
    if (refuse_not_regular(L, spool)) return 2;
    k->path = (char *)malloc(plen + sizeof ".lock");
    if (!k->path) return luaL_error(L, "klaviyo: out of memory taking the spool lock");
    memcpy(k->path, spool, plen);
    memcpy(k->path + plen, ".lock", sizeof ".lock");
    for (tries = 0; tries < TRIES; tries++) {
        struct stat held, at_path;
        char pid[24];
        int fd, n;
        /* never through a symlink, and never anything but a regular file: the lock file is
         * truncated and written, which must not reach a file someone pointed it at (nor
         * block on a FIFO) */
        do {
            fd = open(k->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0666);
        } while (fd < 0 && errno == EINTR);
        if (fd < 0) return lk_push_errno(L, errno, "cannot create the spool lock", k->path);
        if (fstat(fd, &held) != 0) {
            int e = errno;
            close(fd);
            return lk_push_errno(L, e, "cannot stat the spool lock", k->path);
        }
        if (!S_ISREG(held.st_mode)) {
            close(fd);
            lua_pushnil(L);
            lua_pushfstring(L, "cannot create the spool lock %s: not a regular file", k->path);
            return 2;
        }
        while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            if (errno == EINTR) continue;
            if (errno == EWOULDBLOCK) {
                int r = push_in_use(L, fd, spool);
                close(fd);
                return r;
            }
            {
                int e = errno;
                close(fd);
                return lk_push_errno(L, e, "cannot take the spool lock", k->path);
            }
        }
        if (lstat(k->path, &at_path) != 0 || at_path.st_dev != held.st_dev || at_path.st_ino != held.st_ino) {
            close(fd); /* locked a file its holder unlinked on release: take the new one */
            continue;
        }
        /* the holder's pid, for the message of whoever is refused */
        n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != (ssize_t)n) {
            int e = errno;
            unlink(k->path);
            close(fd);
            return lk_push_errno(L, e, "cannot write the spool lock", k->path);
        }
        k->fd = fd;
        return 1;
    }
    lua_pushnil(L);
    lua_pushfstring(L, "spool %s is in use (its lock changed hands %d times)", spool, TRIES);
    return 2;
}
