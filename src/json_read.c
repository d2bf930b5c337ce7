/*
 * json_read.c - see json_read.h.  Strict: anything that is not one complete JSON value
 * (surrounded by blanks) is "not JSON", so an HTML page never half-parses.
 */
#include "json_read.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    kj_doc *d;
    size_t i;
    int depth;
} kj_p;

static int new_node(kj_doc *d, kj_type t, size_t start) {
    if (d->check) d->n = 0; /* kj_check keeps no tree: its one node is written over */
    else if (d->n == d->cap) {
        int cap = d->cap ? d->cap * 2 : 32;
        kj_node *nn = realloc(d->nodes, (size_t)cap * sizeof *nn);
        if (!nn) return -2;
        d->nodes = nn;
        d->cap = cap;
    }
    d->nodes[d->n].type = t;
    d->nodes[d->n].start = start;
    d->nodes[d->n].end = start;
    d->nodes[d->n].child = -1;
    d->nodes[d->n].next = -1;
    return d->n++;
}

static void ws(kj_p *p) {
    const char *s = p->d->src;
    while (p->i < p->d->len && (s[p->i] == ' ' || s[p->i] == '\t' || s[p->i] == '\n' || s[p->i] == '\r')) p->i++;
}

static int value(kj_p *p);

static int hexval(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* The length of the UTF-8 sequence at s[0..n) led by a byte >= 0x80, or 0 when it is not one
 * (overlong, a surrogate, past U+10FFFF, cut short). */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned char b = s[0], lo = 0x80, hi = 0xbf;
    size_t more, i;
    if (b >= 0xc2 && b <= 0xdf) more = 1;
    else if (b >= 0xe0 && b <= 0xef) {
        more = 2;
        if (b == 0xe0) lo = 0xa0;      /* overlong */
        else if (b == 0xed) hi = 0x9f; /* surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        more = 3;
        if (b == 0xf0) lo = 0x90;      /* overlong */
        else if (b == 0xf4) hi = 0x8f; /* past U+10FFFF */
    } else return 0;
    if (n <= more) return 0;
    for (i = 1; i <= more; i++)
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xbf)) return 0;
    return more + 1;
}

static int string(kj_p *p) {
    const char *s = p->d->src;
    size_t n = p->d->len;
    int id = new_node(p->d, KJ_STRING, p->i);
    if (id < 0) return id;
    p->i++; /* opening quote */
    while (p->i < n && s[p->i] != '"') {
        unsigned char ch = (unsigned char)s[p->i];
        if (ch < 0x20) return -1;
        if (ch == '\\') {
            p->i++;
            if (p->i >= n) return -1;
            if (s[p->i] == 'u') {
                int k;
                for (k = 1; k <= 4; k++)
                    if (p->i + (size_t)k >= n || hexval(s[p->i + (size_t)k]) < 0) return -1;
                p->i += 4;
            } else if (s[p->i] == '\0' || !strchr("\"\\/bfnrt", s[p->i])) { /* strchr finds the NUL */
                return -1;
            }
        } else if (ch >= 0x80 && p->d->check) {
            size_t k = utf8_len((const unsigned char *)s + p->i, n - p->i);
            if (k == 0) return -1;
            p->i += k;
            continue;
        }
        p->i++;
    }
    if (p->i >= n) return -1;
    p->i++;
    p->d->nodes[id].end = p->i;
    return id;
}

static int number(kj_p *p) {
    const char *s = p->d->src;
    size_t n = p->d->len, st = p->i;
    int id = new_node(p->d, KJ_NUMBER, st), digits = 0;
    if (id < 0) return id;
    if (p->i < n && s[p->i] == '-') p->i++;
    if (p->i < n && s[p->i] == '0') {
        p->i++;
        digits = 1;
    } else
        while (p->i < n && s[p->i] >= '0' && s[p->i] <= '9') {
            p->i++;
            digits++;
        }
    if (!digits) return -1;
    if (p->i < n && s[p->i] == '.') {
        p->i++;
        digits = 0;
        while (p->i < n && s[p->i] >= '0' && s[p->i] <= '9') {
            p->i++;
            digits++;
        }
        if (!digits) return -1;
    }
    if (p->i < n && (s[p->i] == 'e' || s[p->i] == 'E')) {
        p->i++;
        if (p->i < n && (s[p->i] == '+' || s[p->i] == '-')) p->i++;
        digits = 0;
        while (p->i < n && s[p->i] >= '0' && s[p->i] <= '9') {
            p->i++;
            digits++;
        }
        if (!digits) return -1;
    }
    p->d->nodes[id].end = p->i;
    return id;
}

static int literal(kj_p *p, const char *word, kj_type t) {
    size_t k = strlen(word);
    int id;
    if (p->d->len - p->i < k || memcmp(p->d->src + p->i, word, k) != 0) return -1;
    id = new_node(p->d, t, p->i);
    if (id < 0) return id;
    p->i += k;
    p->d->nodes[id].end = p->i;
    return id;
}

/* append child to parent's list; `last` tracks the tail */
static void link_child(kj_doc *d, int parent, int *last, int child) {
    if (*last < 0) d->nodes[parent].child = child;
    else d->nodes[*last].next = child;
    *last = child;
}

static int container(kj_p *p, int object) {
    const char *s = p->d->src;
    int id = new_node(p->d, object ? KJ_OBJECT : KJ_ARRAY, p->i), last = -1, v;
    if (id < 0) return id;
    if (++p->depth > KJ_MAX_DEPTH) return -1;
    p->i++;
    ws(p);
    if (p->i < p->d->len && s[p->i] == (object ? '}' : ']')) {
        p->i++;
    } else {
        for (;;) {
            ws(p);
            if (object) {
                if (p->i >= p->d->len || s[p->i] != '"') return -1;
                if ((v = string(p)) < 0) return v;
                link_child(p->d, id, &last, v);
                ws(p);
                if (p->i >= p->d->len || s[p->i] != ':') return -1;
                p->i++;
                ws(p);
            }
            if ((v = value(p)) < 0) return v;
            link_child(p->d, id, &last, v);
            ws(p);
            if (p->i < p->d->len && s[p->i] == ',') {
                p->i++;
                continue;
            }
            if (p->i < p->d->len && s[p->i] == (object ? '}' : ']')) {
                p->i++;
                break;
            }
            return -1;
        }
    }
    p->depth--;
    p->d->nodes[id].end = p->i;
    return id;
}

static int value(kj_p *p) {
    char ch;
    if (p->i >= p->d->len) return -1;
    ch = p->d->src[p->i];
    switch (ch) {
    case '{': return container(p, 1);
    case '[': return container(p, 0);
    case '"': return string(p);
    case 't': return literal(p, "true", KJ_TRUE);
    case 'f': return literal(p, "false", KJ_FALSE);
    case 'n': return literal(p, "null", KJ_NULL);
    default:
        if (ch == '-' || (ch >= '0' && ch <= '9')) return number(p);
        return -1;
    }
}

int kj_parse(kj_doc *d, const char *src, size_t len) {
    kj_p p;
    int rc;
    d->src = src;
    d->len = len;
    d->n = 0;
    p.d = d;
    p.i = 0;
    p.depth = 0;
    ws(&p);
    rc = value(&p);
    if (rc >= 0) {
        ws(&p);
        rc = p.i == len ? 0 : -1;
    }
    if (rc < 0) d->n = 0; /* a partial tree is never looked at */
    return rc < 0 ? rc : 0;
}

int kj_check(const char *src, size_t len) {
    kj_node one;
    kj_doc d;
    memset(&d, 0, sizeof d);
    d.nodes = &one;
    d.cap = 1;
    d.check = 1;
    return kj_parse(&d, src, len) == 0 ? 0 : -1;
}

void kj_free(kj_doc *d) {
    free(d->nodes);
    d->nodes = NULL;
    d->n = d->cap = 0;
}

static int key_is(const kj_doc *d, int node, const char *key) {
    const kj_node *k = &d->nodes[node];
    size_t n = strlen(key);
    /* keys with escapes never match a plain key; Klaviyo's keys are plain ASCII */
    return k->end - k->start == n + 2 && memcmp(d->src + k->start + 1, key, n) == 0;
}

int kj_get(const kj_doc *d, int obj, const char *key) {
    int k;
    if (obj < 0 || obj >= d->n || d->nodes[obj].type != KJ_OBJECT) return -1;
    for (k = d->nodes[obj].child; k >= 0 && d->nodes[k].next >= 0; k = d->nodes[d->nodes[k].next].next)
        if (key_is(d, k, key)) return d->nodes[k].next;
    return -1;
}

int kj_at(const kj_doc *d, int arr, int i) {
    int k;
    if (arr < 0 || arr >= d->n || d->nodes[arr].type != KJ_ARRAY) return -1;
    for (k = d->nodes[arr].child; k >= 0 && i > 0; k = d->nodes[k].next) i--;
    return k;
}

static void put_utf8(char **o, unsigned long cp) {
    char *w = *o;
    if (cp < 0x80) *w++ = (char)cp;
    else if (cp < 0x800) {
        *w++ = (char)(0xC0 | (cp >> 6));
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        *w++ = (char)(0xE0 | (cp >> 12));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    } else {
        *w++ = (char)(0xF0 | (cp >> 18));
        *w++ = (char)(0x80 | ((cp >> 12) & 0x3F));
        *w++ = (char)(0x80 | ((cp >> 6) & 0x3F));
        *w++ = (char)(0x80 | (cp & 0x3F));
    }
    *o = w;
}

static unsigned long hex4(const char *s) {
    return (unsigned long)(hexval(s[0]) << 12 | hexval(s[1]) << 8 | hexval(s[2]) << 4 | hexval(s[3]));
}

char *kj_string(const kj_doc *d, int node, size_t *len) {
    const kj_node *k;
    const char *s, *e;
    char *out, *o;
    if (node < 0 || node >= d->n || d->nodes[node].type != KJ_STRING) return NULL;
    k = &d->nodes[node];
    s = d->src + k->start + 1;
    e = d->src + k->end - 1;
    out = malloc((size_t)(e - s) + 1); /* decoding never grows: \uXXXX (6) -> at most 3, pairs 12 -> 4 */
    if (!out) return NULL;
    o = out;
    while (s < e) {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        s++;
        switch (*s) {
        case 'b':
            *o++ = '\b';
            s++;
            break;
        case 'f':
            *o++ = '\f';
            s++;
            break;
        case 'n':
            *o++ = '\n';
            s++;
            break;
        case 'r':
            *o++ = '\r';
            s++;
            break;
        case 't':
            *o++ = '\t';
            s++;
            break;
        case 'u': {
            unsigned long cp = hex4(s + 1);
            s += 5;
            if (cp >= 0xD800 && cp <= 0xDBFF && e - s >= 6 && s[0] == '\\' && s[1] == 'u') {
                unsigned long lo = hex4(s + 2);
                if (lo >= 0xDC00 && lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    s += 6;
                }
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD; /* lone surrogate */
            put_utf8(&o, cp);
            break;
        }
        default: *o++ = *s++; break; /* \" \\ \/ */
        }
    }
    *o = '\0';
    if (len) *len = (size_t)(o - out);
    return out;
}

double kj_number(const kj_doc *d, int node) {
    char tmp[64];
    size_t n;
    if (node < 0 || node >= d->n || d->nodes[node].type != KJ_NUMBER) return 0;
    n = d->nodes[node].end - d->nodes[node].start;
    if (n >= sizeof tmp) n = sizeof tmp - 1;
    memcpy(tmp, d->src + d->nodes[node].start, n);
    tmp[n] = '\0';
    return strtod(tmp, NULL);
}
