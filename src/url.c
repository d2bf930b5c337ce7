/*
 * url.c - parse http(s) URLs with libcurl's parser (the base URL and full links.next URLs),
 * refusing what they must never hold (user information, an empty port); read a path as the most
 * lenient server would (which decides which credential may go to it), and tell loopback hosts
 * apart, which decides whether a secret may travel over plain http.
 */
#define _POSIX_C_SOURCE 200112L
#include "kl_internal.h"

#include <arpa/inet.h>
#include <curl/curl.h>
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

/* A copy of a part libcurl parsed: 0, -1 when absent (*out NULL), -2 out of memory. */
static int part(CURLU *h, CURLUPart what, char **out, unsigned flags) {
    char *v = NULL;
    CURLUcode rc = curl_url_get(h, what, &v, flags);
    *out = NULL;
    if (rc == CURLUE_OUT_OF_MEMORY) return -2;
    if (rc != CURLUE_OK) return -1;
    *out = kl_strdup(v);
    curl_free(v);
    return *out ? 0 : -2;
}

int kl_url_parse(const char *s, kl_url *u, const char **why) {
    const char *p, *auth;
    char *port = NULL, *user = NULL, *pass = NULL;
    CURLU *h;
    CURLUcode rc;
    int ret = -1;
    size_t i;
    memset(u, 0, sizeof *u);
    *why = NULL;
    for (p = s; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch <= 0x20 || ch == 0x7f) {
            *why = "URL holds a space or control character";
            return -1;
        }
    }
    if (strncasecmp(s, "https://", 8) == 0) {
        u->https = 1;
        auth = s + 8;
    } else if (strncasecmp(s, "http://", 7) == 0) {
        auth = s + 7;
    } else {
        *why = "URL scheme must be http:// or https://";
        return -1;
    }
    p = auth + strcspn(auth, "/?#"); /* the authority ends here; the path starts at a '/' */
    if (p > auth && p[-1] == ':') {
        *why = "URL has a malformed port";
        return -1;
    }
    if (!(h = curl_url())) return -2;
    /* as it is: dot segments are the key/path rule's to see (kl_path_check), not to resolve */
    rc = curl_url_set(h, CURLUPART_URL, s, CURLU_PATH_AS_IS);
    if (rc == CURLUE_OUT_OF_MEMORY) {
        ret = -2;
        goto out;
    }
    if (rc != CURLUE_OK) {
        *why = "URL is malformed";
        goto out;
    }
    if ((ret = part(h, CURLUPART_USER, &user, 0)) == -2 || (ret = part(h, CURLUPART_PASSWORD, &pass, 0)) == -2)
        goto out;
    if (user || pass) {
        ret = -1;
        *why = "URL must not hold user information";
        goto out;
    }
    if ((ret = part(h, CURLUPART_HOST, &u->host, 0)) != 0 ||
        (ret = part(h, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT)) != 0 ||
        (ret = *p == '/'                   ? part(h, CURLUPART_PATH, &u->path, 0)
               : (u->path = kl_strdup("")) ? 0
                                           : -2) != 0 ||
        (ret = part(h, CURLUPART_QUERY, &u->query, 0)) == -2) {
        if (ret == -1) *why = "URL has no host";
        goto out;
    }
    ret = 0;
    for (i = 0; u->host[i]; i++) u->host[i] = (char)tolower((unsigned char)u->host[i]);
    u->port = atoi(port);
out:
    free(port);
    free(user);
    free(pass);
    curl_url_cleanup(h);
    if (ret != 0) kl_url_free(u);
    return ret;
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
