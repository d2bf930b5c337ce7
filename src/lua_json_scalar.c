/*
 * lua_json_scalar.c - the JSON encoder's numbers and strings: exact integers, the shortest
 * float text that reads back equal, and RFC 8259 string escaping of valid UTF-8 only.
 */
#include "lua_json_enc.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>


static void put_int(enc *e, long long v) {
    char tmp[24];
    char *p = tmp + sizeof tmp;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0) *--p = '-';
    put(e, p, (size_t)(tmp + sizeof tmp - p));
}

/* Prices and quantities (9.99, 0.5, 1234.56): the fewest decimals, up to 6, whose value
 * m / 10^k is exactly d. m and 10^k are exact doubles and the division is correctly rounded,
 * so reading the decimal back gives d; no printf/strtod round trip. 0 when d is not one. */
static int put_short_decimal(enc *e, double d) {
    static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6};
    static const long long ip10[] = {1, 10, 100, 1000, 10000, 100000, 1000000};
    double a = d < 0 ? -d : d;
    int k, i;
    if (!(a < 1e9)) return 0;
    for (k = 1; k <= 6; k++) {
        double m = floor(a * p10[k] + 0.5);
        if (m / p10[k] == a) {
            long long mm = (long long)m, ip = mm / ip10[k], fp = mm % ip10[k];
            char frac[8];
            if (d < 0) putc_(e, '-');
            put_int(e, ip);
            for (i = k - 1; i >= 0; i--) {
                frac[i] = (char)('0' + fp % 10);
                fp /= 10;
            }
            putc_(e, '.');
            put(e, frac, (size_t)k);
            return 1;
        }
    }
    return 0;
}

size_t kl_json_double_text(double d, char buf[KL_JSON_DOUBLE_TEXT]) {
    int prec, n, i, dot = 0;
    size_t len = 0;
    /* Shortest of 15, 16, 17 significant digits that reads back to the same double. */
    for (prec = 15;; prec++) {
        n = snprintf(buf, KL_JSON_DOUBLE_TEXT, "%.*g", prec, d);
        if (prec == 17 || strtod(buf, NULL) == d) break;
    }
    /* The C locale may be changed by the host program: force '.' as decimal point. */
    for (i = 0; i < n; i++) {
        char c = buf[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e' || c == 'E') {
            buf[len++] = c;
        } else if (!dot) {
            buf[len++] = '.';
            dot = 1;
        }
    }
    buf[len] = '\0';
    return len;
}

int kl_json_put_number(enc *e, int idx) {
    double d;
    char tmp[KL_JSON_DOUBLE_TEXT];
#if LUA_VERSION_NUM >= 503
    if (lua_isinteger(e->L, idx)) {
        put_int(e, (long long)lua_tointeger(e->L, idx));
        return 0;
    }
#endif
    d = (double)lua_tonumber(e->L, idx);
    if (isnan(d)) return kl_json_refuse(e, e->depth, "nan", 0, "NaN cannot be encoded as JSON");
    if (isinf(d))
        return kl_json_refuse(e, e->depth, "inf", 0,
                              d > 0 ? "inf cannot be encoded as JSON" : "-inf cannot be encoded as JSON");
    /* Integral values print as exact digits (Lua 5.1 has no integer type, and
     * "5" reads better than "5.0" to Klaviyo's validators). */
    if (d > -9223372036854775808.0 && d < 9223372036854775808.0 && (double)(long long)d == d) {
        put_int(e, (long long)d);
        return 0;
    }
    if (put_short_decimal(e, d)) return 0;
    put(e, tmp, kl_json_double_text(d, tmp));
    return 0;
}

/* Byte classes: 0 copied as is, 1 escaped, 2 starts a multi-byte UTF-8 sequence. */
static const unsigned char byte_class[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
};

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF), or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    unsigned char lo = 0x80, hi = 0xBF;
    size_t len, i;
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        if (c == 0xE0) lo = 0xA0;
        else if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        if (c == 0xF0) lo = 0x90;
        else if (c == 0xF4) hi = 0x8F;
    } else return 0;
    if (n < len) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    return len;
}

/* SWAR: does any byte of the 8-byte word w need more than a copy (a control character, '"',
 * '\\' or a byte >= 0x80)? Exact, with no carries across bytes: x is a byte below 0x20 iff
 * (x | 0x80) - 0x20 clears bit 7 of (that byte), and the same for x ^ '"' and x ^ '\\' below 1. */
#define SWAR_ONES 0x0101010101010101ULL
#define SWAR_HIGH 0x8080808080808080ULL
static inline int word_needs_care(uint64_t w) {
    uint64_t hi = w | SWAR_HIGH;
    uint64_t ctl = ~(hi - SWAR_ONES * 0x20);
    uint64_t quo = ~(((w ^ (SWAR_ONES * '"')) | SWAR_HIGH) - SWAR_ONES);
    uint64_t bsl = ~(((w ^ (SWAR_ONES * '\\')) | SWAR_HIGH) - SWAR_ONES);
    return ((ctl | quo | bsl | w) & SWAR_HIGH) != 0;
}

/* Writes s as a JSON string; returns -1 (without a message) on invalid UTF-8. Plain runs are
 * copied 8 bytes at a time once checked (most keys and values are plain ASCII); the rest byte
 * by byte. Room for the common case is reserved once. */
int kl_json_put_string(enc *e, const char *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    char *o;
    reserve(e, n + 2);
    o = e->buf + e->len;
    *o++ = '"';
    if (n >= 4 && n <= 16) {
        /* Most keys and values: two overlapping loads cover the string; if neither holds a
         * special byte it is copied with two overlapping stores. */
        uint64_t a, b;
        if (n >= 8) {
            memcpy(&a, s, 8);
            memcpy(&b, s + n - 8, 8);
            if (!word_needs_care(a) && !word_needs_care(b)) {
                memcpy(o, &a, 8);
                memcpy(o + n - 8, &b, 8);
                goto plain;
            }
        } else {
            uint32_t x, y;
            memcpy(&x, s, 4);
            memcpy(&y, s + n - 4, 4);
            a = (uint64_t)x << 32 | y; /* both halves checked at once */
            if (!word_needs_care(a)) {
                memcpy(o, &x, 4);
                memcpy(o + n - 4, &y, 4);
                goto plain;
            }
        }
    }
    while (i < n) {
        unsigned char c, cls;
        if (n - i >= 8) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!word_needs_care(w)) {
                memcpy(o, &w, 8);
                o += 8;
                i += 8;
                continue;
            }
        }
        c = s[i];
        cls = byte_class[c];
        if (cls == 0) { /* fewer than 8 bytes left, or a word with a special byte in it */
            size_t end = n - i > 8 ? i + 8 : n;
            do {
                *o++ = (char)c;
                i++;
            } while (i < end && (cls = byte_class[c = s[i]]) == 0);
            if (cls == 0) continue; /* the run ended: back to whole words */
        }
        if (cls == 2) {
            size_t l = utf8_len(s + i, n - i);
            if (l == 0) return -1;
            memcpy(o, s + i, l);
            o += l;
            i += l;
            continue;
        }
        /* an escape takes up to 6 bytes for 1: make room for it and the rest */
        e->len = (size_t)(o - e->buf);
        reserve(e, 6 + (n - i) + 1);
        o = e->buf + e->len;
        *o++ = '\\';
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\b': *o++ = 'b'; break;
        case '\f': *o++ = 'f'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
        i++;
    }
    *o++ = '"';
    e->len = (size_t)(o - e->buf);
    return 0;
plain:
    o[n] = '"';
    e->len = (size_t)(o + n + 1 - e->buf);
    return 0;
}
