/*
 * lua_file.c: file operations for the Lua layer (the token file store, the tracker's spool),
 * done in the process. A shell command (io.popen, os.execute) would fork the whole process,
 * an nginx worker included, for each of them.
 *
 *   core.fsync_path(path) -> true | nil, err
 *       open(O_RDONLY) + fsync: a file or a directory
 *   core.realpath(path) -> absolute path | nil, err
 *       every symlink followed, as `readlink -f`: the last component (or the target of a
 *       last symlink) need not exist, the directory holding it must
 *   core.write_private(path, bytes) -> true | nil, err
 *       creates path (never an existing file, never through a symlink) with mode 0600
 *       whatever the umask, writes all of bytes, fsyncs and closes it; on any failure the
 *       file is removed
 *
 * err names the path and the system's reason. A path holding a NUL byte raises (C would cut
 * it short).
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include "lua_file.h"
#include "lua_meta.h"

#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_LINKS 40 /* as the kernel's limit on symlinks in one lookup */

static const char *check_path(lua_State *L, int i) {
    size_t n;
    const char *p = luaL_checklstring(L, i, &n);
    if (strlen(p) != n) luaL_argerror(L, i, "a path must not hold a NUL byte");
    return p;
}

int kl_lua_fsync_path(lua_State *L) {
    const char *path = check_path(L, 1);
    int fd, rc;
    do { fd = open(path, O_RDONLY | O_CLOEXEC); /* O_RDONLY: directories too */ } while (fd < 0 && errno == EINTR);
    if (fd < 0) return lk_push_errno(L, errno, "cannot open to fsync", path);
    rc = fsync(fd);
    if (rc != 0) {
        int e = errno;
        close(fd);
        return lk_push_errno(L, e, "fsync failed for", path);
    }
    close(fd);
    lua_pushboolean(L, 1);
    return 1;
}

/* The path being resolved is at index 2; each symlink whose target does not exist replaces it
 * with that target (relative to the link's directory). */
int kl_lua_realpath(lua_State *L) {
    const char *path = check_path(L, 1);
    char buf[PATH_MAX];
    int links = 0;
    lua_settop(L, 1);
    lua_pushvalue(L, 1);
    for (;;) {
        const char *cur = lua_tostring(L, 2), *slash = strrchr(cur, '/'), *name = slash ? slash + 1 : cur;
        ssize_t n;
        if (realpath(cur, buf)) {
            lua_pushstring(L, buf);
            return 1;
        }
        if (errno != ENOENT) return lk_push_errno(L, errno, "cannot resolve", path);
        n = readlink(cur, buf, sizeof buf);
        if (n < 0) { /* no such file: its directory resolved, its name kept */
            if (!*name) return lk_push_errno(L, ENOENT, "cannot resolve", path);
            lua_pushlstring(L, slash ? cur : ".", slash ? (size_t)(slash == cur ? 1 : slash - cur) : 1);
            if (!realpath(lua_tostring(L, -1), buf)) return lk_push_errno(L, errno, "cannot resolve", path);
            lua_pushfstring(L, "%s%s%s", buf, strcmp(buf, "/") == 0 ? "" : "/", name);
            return 1;
        }
        if ((size_t)n >= sizeof buf) return lk_push_errno(L, ENAMETOOLONG, "cannot resolve", path);
        if (++links > MAX_LINKS) return lk_push_errno(L, ELOOP, "cannot resolve", path);
        buf[n] = '\0';
        if (buf[0] != '/' && slash) { /* a dangling symlink: its target, from its directory */
            lua_pushlstring(L, cur, (size_t)(slash - cur) + 1);
            lua_pushstring(L, buf);
            lua_concat(L, 2);
        } else {
            lua_pushstring(L, buf);
        }
        lua_replace(L, 2);
    }
}

int kl_lua_write_private(lua_State *L) {
    const char *path = check_path(L, 1);
    size_t len, off = 0;
    const char *bytes = luaL_checklstring(L, 2, &len);
    int fd, e;
    do {
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0) return lk_push_errno(L, errno, "cannot create", path);
    if (fchmod(fd, 0600) != 0) goto failed; /* the umask may have taken bits off: not owner rw */
    while (off < len) {
        ssize_t n = write(fd, bytes + off, len - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = EIO;
            goto failed;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) goto failed;
    if (close(fd) != 0) { /* closed even so (Linux): the file may not hold what was written */
        fd = -1;
        goto failed;
    }
    lua_pushboolean(L, 1);
    return 1;
failed:
    e = errno;
    if (fd >= 0) close(fd);
    unlink(path);
    return lk_push_errno(L, e, "cannot write", path);
}
