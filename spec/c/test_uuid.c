/*
 * test_uuid.c - event unique_ids (src/uuid.c): the version 4 layout, no repeats, and a
 * forked child (an nginx worker) never hands out the ids its parent will.
 */
#define _POSIX_C_SOURCE 200809L
#include "ctest.h"
#include "uuid.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int layout_ok(const char *u) {
    int i;
    if (strlen(u) != 36) return 0;
    for (i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (u[i] != '-') return 0;
        } else if (!((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'))) {
            return 0;
        }
    }
    return u[14] == '4' && (u[19] == '8' || u[19] == '9' || u[19] == 'a' || u[19] == 'b');
}

int main(void) {
    static kl_uuid_pool pool;
    static char ids[600][37];
    char mine[37], childs[37];
    int i, j, fd[2], status, all_ok = 1, dup = 0;
    pid_t pid;

    kl_uuid_pool_init(&pool);
    /* more ids than one pool fill holds (256), so a refill is crossed */
    for (i = 0; i < 600; i++) {
        CHECK(kl_uuid4(&pool, ids[i]) == 0);
        if (!layout_ok(ids[i])) all_ok = 0;
    }
    CHECK(all_ok);
    for (i = 0; i < 600; i++)
        for (j = i + 1; j < 600; j++)
            if (strcmp(ids[i], ids[j]) == 0) dup = 1;
    CHECK(!dup);

    /* a child forked with the pool half used must not produce the parent's next id */
    CHECK(pipe(fd) == 0);
    pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char id[37];
        close(fd[0]);
        if (kl_uuid4(&pool, id) != 0) _exit(2);
        if (write(fd[1], id, 37) != 37) _exit(3);
        _exit(0);
    }
    close(fd[1]);
    CHECK(kl_uuid4(&pool, mine) == 0);
    CHECK(read(fd[0], childs, 37) == 37);
    close(fd[0]);
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK(layout_ok(childs));
    CHECK(strcmp(mine, childs) != 0);
    CTEST_END();
}
