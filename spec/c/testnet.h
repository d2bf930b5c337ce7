/* Loopback helpers for the C tests that run a raw-TCP server of their own (test_transport,
 * test_sendloop): a listening socket on a free port, and a write that sends everything. */
#ifndef KL_TESTNET_H
#define KL_TESTNET_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A socket listening on 127.0.0.1 at a free port (stored in *port); exits on failure. */
static int listen_any(int *port) {
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1, s = socket(AF_INET, SOCK_STREAM, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 64) ||
        getsockname(s, (struct sockaddr *)&a, &len)) {
        perror("listen");
        exit(2);
    }
    *port = ntohs(a.sin_port);
    return s;
}

/* Writes all n bytes unless the peer is gone. */
static void send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w <= 0) return;
        p += w;
        n -= (size_t)w;
    }
}

#endif
