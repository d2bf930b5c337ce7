/*
 * json_read.h - a tiny JSON reader (RFC 8259) for error documents: parses into a flat
 * node array; values keep their raw span so a sub-document (meta) can be handed on.
 */
#ifndef KL_JSON_READ_H
#define KL_JSON_READ_H

#include <stddef.h>

typedef enum { KJ_NULL, KJ_FALSE, KJ_TRUE, KJ_NUMBER, KJ_STRING, KJ_ARRAY, KJ_OBJECT } kj_type;

typedef struct kj_node {
    kj_type type;
    size_t start, end; /* raw span in the source; strings include their quotes */
    int child;         /* first child (objects: key, value, key, value...), -1 none */
    int next;          /* next sibling, -1 none */
} kj_node;

typedef struct kj_doc {
    const char *src;
    size_t len;
    kj_node *nodes;
    int n, cap;
    int check; /* kj_check: no tree kept (one node, reused), strings checked as UTF-8 */
} kj_doc;

#define KJ_MAX_DEPTH 64

/* 0 ok, -1 not JSON, -2 out of memory.  Node 0 is the root. */
int kj_parse(kj_doc *d, const char *src, size_t len);
void kj_free(kj_doc *d);
/* 0 when src[0..len) is one JSON value whose strings are well-formed UTF-8, else -1; keeps no
 * tree and allocates nothing. */
int kj_check(const char *src, size_t len);
int kj_get(const kj_doc *d, int obj, const char *key); /* member value or -1 */
int kj_at(const kj_doc *d, int arr, int i);            /* array item or -1 */
/* decoded string (escapes, \u incl. surrogate pairs -> UTF-8); NULL if not a string or OOM */
char *kj_string(const kj_doc *d, int node, size_t *len);
double kj_number(const kj_doc *d, int node);

#endif
