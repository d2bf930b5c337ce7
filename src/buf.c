/*
 * buf.c - growable byte buffer and percent-encoding, the two string tools the core needs.
 */
#include "kl_internal.h"

#include <stdlib.h>
#include <string.h>

int kl_buf_reserve(kl_buf *b, size_t extra) {
    size_t need = b->len + extra + 1, cap;
    char *p;
    if (need < b->len) return -1; /* overflow */
    if (need <= b->cap) return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > ((size_t)-1) / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int kl_buf_add(kl_buf *b, const char *s, size_t n) {
    if (kl_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int kl_buf_adds(kl_buf *b, const char *s) {
    return kl_buf_add(b, s, strlen(s));
}

int kl_buf_addc(kl_buf *b, char ch) {
    return kl_buf_add(b, &ch, 1);
}

void kl_buf_reset(kl_buf *b) {
    b->len = 0;
    if (b->p) b->p[0] = '\0';
}

/* Gives the block back when it is over keep bytes (a large answer's, once it is used): a client
 * would otherwise hold the largest answer it ever had until it is freed. */
void kl_buf_trim(kl_buf *b, size_t keep) {
    if (b->cap > keep) kl_buf_free(b);
}

void kl_buf_free(kl_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

char *kl_strndup(const char *s, size_t n) {
    char *d;
    if (!s) return NULL;
    d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *kl_strdup(const char *s) {
    return s ? kl_strndup(s, strlen(s)) : NULL;
}

/* RFC 3986 section 2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".  Everything else,
 * including the brackets of page[cursor] and the space (never '+', which a strict
 * decoder reads as a plus sign), is %XX: that is what Klaviyo's own links.next and
 * axios (the official Node SDK) send for bracketed names. */
static const unsigned char unreserved[256] = {
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1,
    ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1, ['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
};

int kl_pct_encode(kl_buf *b, const char *s, size_t n) {
    static const char hex[] = "0123456789ABCDEF";
    size_t i;
    char *o;
    if (kl_buf_reserve(b, n * 3)) return -1;
    o = b->p + b->len;
    for (i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (unreserved[ch]) {
            *o++ = (char)ch;
        } else {
            *o++ = '%';
            *o++ = hex[ch >> 4];
            *o++ = hex[ch & 15];
        }
    }
    b->len = (size_t)(o - b->p);
    b->p[b->len] = '\0';
    return 0;
}
