/*
 * url.c - parse http(s) URLs (the base URL and full links.next URLs), read a path as the most
 * lenient server would (which decides which credential may go to it), and tell loopback hosts
 * apart, which decides whether a secret may travel over plain http.
 */
#define _POSIX_C_SOURCE 200112L
#include "kl_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void kl_url_free(kl_url *u) {
    free(u->host);
    free(u->path);
    free(u->query);
    memset(u, 0, sizeof *u);
}

static int host_char(unsigned char ch) {
    return isalnum(ch) || ch == '.' || ch == '-' || ch == '_' || ch == '~' || ch == '%';
}

int kl_url_parse(const char *s, kl_url *u, const char **why) {
    const char *p, *hs, *he, *ps, *pe, *q;
    size_t i;
    memset(u, 0, sizeof *u);
    *why = NULL;
    for (p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f) { *why = "URL holds a space or control character"; return -1; }
    }
    if (strncasecmp(s, "https://", 8) == 0) { u->https = 1; p = s + 8; }
    else if (strncasecmp(s, "http://", 7) == 0) { u->https = 0; p = s + 7; }
    else { *why = "URL scheme must be http:// or https://"; return -1; }

    /* authority ends at '/', '?', '#' or the end */
    hs = p;
    while (*p && *p != '/' && *p != '?' && *p != '#') {
        if (*p == '@') { *why = "URL must not hold user information"; return -1; }
        p++;
    }
    he = p;
    ps = hs; /* reuse as scan pointer over the authority */
    if (hs < he && *hs == '[') {
        const char *rb = memchr(hs, ']', (size_t)(he - hs));
        if (!rb) { *why = "URL has an unterminated IPv6 address"; return -1; }
        for (q = hs + 1; q < rb; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') {
                *why = "URL has a malformed IPv6 address"; return -1;
            }
        ps = rb + 1;
    } else {
        while (ps < he && *ps != ':') {
            if (!host_char((unsigned char)*ps)) { *why = "URL host holds a character not allowed in a host"; return -1; }
            ps++;
        }
    }
    if (ps == hs || (ps == hs + 2 && *hs == '[')) { *why = "URL has no host"; return -1; }
    u->host = kl_strndup(hs, (size_t)(ps - hs));
    if (!u->host) return -2;
    for (i = 0; u->host[i]; i++) u->host[i] = (char)tolower((unsigned char)u->host[i]);
    if (ps < he) {
        long port = 0;
        if (*ps != ':' || ps + 1 == he) { *why = "URL has a malformed port"; kl_url_free(u); return -1; }
        for (q = ps + 1; q < he; q++) {
            if (!isdigit((unsigned char)*q) || port > 65535) { *why = "URL has a malformed port"; kl_url_free(u); return -1; }
            port = port * 10 + (*q - '0');
        }
        if (port < 1 || port > 65535) { *why = "URL port out of range"; kl_url_free(u); return -1; }
        u->port = (int)port;
    } else {
        u->port = u->https ? 443 : 80;
    }
    /* path, query; a fragment is dropped (it never goes on the wire) */
    ps = he;
    pe = ps;
    while (*pe && *pe != '?' && *pe != '#') pe++;
    u->path = kl_strndup(ps, (size_t)(pe - ps));
    if (!u->path) { kl_url_free(u); return -2; }
    if (*pe == '?') {
        q = pe + 1;
        while (*q && *q != '#') q++;
        u->query = kl_strndup(pe + 1, (size_t)(q - pe - 1));
        if (!u->query) { kl_url_free(u); return -2; }
    }
    return 0;
}

static int hex_value(unsigned char ch) {
    return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

int kl_path_check(const char *path, char first[KL_SEG_MAX], const char **why) {
    char seg[KL_SEG_MAX];
    size_t n = 0, i;
    int params = 0, long_seg = 0, have_first = 0;
    const char *s;
    first[0] = '\0';
    for (s = path;; s++) {
        unsigned char ch = (unsigned char)*s;
        int end = ch == '\0' || ch == '?' || ch == '#';
        if (ch == '%') {
            if (!isxdigit((unsigned char)s[1]) || !isxdigit((unsigned char)s[2])) {
                *why = "path holds a '%' not followed by two hex digits";
                return -1;
            }
            ch = (unsigned char)(hex_value((unsigned char)s[1]) * 16 + hex_value((unsigned char)s[2]));
            s += 2;
        }
        if (end || ch == '/' || ch == '\\') {
            /* a segment ends; one whose name is empty is a repeated '/', which servers merge */
            if (n || long_seg) {
                if (!long_seg && seg[0] == '.' && (n == 1 || (n == 2 && seg[1] == '.'))) {
                    *why = "path holds a dot segment";
                    return -1;
                }
                if (!have_first && !long_seg) {
                    for (i = 0; i < n; i++) /* ASCII only: a locale's tolower may map 'I' elsewhere */
                        first[i] = (char)(seg[i] >= 'A' && seg[i] <= 'Z' ? seg[i] + ('a' - 'A') : seg[i]);
                    first[n] = '\0';
                }
                have_first = 1;
            }
            n = 0;
            params = long_seg = 0;
            if (end) return 0;
        } else if (!params) {
            if (ch == ';') params = 1; /* ";name=value" path parameters: some servers drop them */
            else if (n < KL_SEG_MAX - 1) seg[n++] = (char)ch;
            else long_seg = 1;
        }
    }
}

int kl_host_is_loopback(const char *host) {
    char tmp[64];
    size_t n;
    unsigned char a4[4], a6[16];
    static const unsigned char lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!host) return 0;
    if (strcasecmp(host, "localhost") == 0 || strcasecmp(host, "localhost.") == 0) return 1;
    n = strlen(host);
    if (n >= sizeof tmp) return 0;
    if (host[0] == '[') {
        if (n < 2 || host[n - 1] != ']') return 0;
        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
    } else {
        memcpy(tmp, host, n + 1);
    }
    if (inet_pton(AF_INET, tmp, a4) == 1) return a4[0] == 127;
    if (inet_pton(AF_INET6, tmp, a6) == 1) {
        if (memcmp(a6, lo6, 16) == 0) return 1;
        return memcmp(a6, mapped, 12) == 0 && a6[12] == 127;
    }
    return 0;
}
