/*
 * error.c - the error record: what went wrong with a client's last call (c->err, c->errstr
 * and the fields of kl_last_error).  Every other file of the core reports through kl_fail;
 * this file calls none of them.
 */
#include "kl_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *copy(const char *s) {
    size_t n;
    char *d;
    if (!s) return NULL;
    n = strlen(s) + 1;
    if ((d = malloc(n))) memcpy(d, s, n);
    return d;
}

void kl_error_clear(kl_client *c) {
    kl_error *e = &c->priv->rec.error;
    free((char *)e->code);
    free((char *)e->title);
    free((char *)e->detail);
    free((char *)e->pointer);
    free((char *)e->parameter);
    free((char *)e->request_id);
    free((char *)e->operation);
    free((char *)e->meta_json);
    free((char *)e->body);
    memset(e, 0, sizeof *e);
    e->retry_after = -1;
    c->err = KL_OK;
    c->errstr[0] = '\0';
}

static const char *kind_title(int kind) {
    switch (kind) {
    case KL_ERR_REFUSED: return "Refused locally, nothing sent";
    case KL_ERR_TRANSPORT: return "Transport failure";
    case KL_ERR_USAGE: return "Invalid request description";
    case KL_ERR_OOM: return "Out of memory";
    case KL_ERR_THROTTLED: return "Throttled: the wait would outlast the call";
    default: return "Error";
    }
}

int kl_fail(kl_client *c, int kind, const char *code, const char *operation, const char *fmt, ...) {
    kl_client_priv *p = c->priv;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    kl_error_clear(c);
    c->err = kind;
    if (operation && *operation) snprintf(c->errstr, sizeof c->errstr, "%s: %s", operation, msg);
    else snprintf(c->errstr, sizeof c->errstr, "%s", msg);
    p->rec.error.kind = kind;
    /* On out of memory these copies may fail too: fields then stay NULL, errstr
     * (a fixed array) still says what happened. */
    p->rec.error.code = copy(code);
    p->rec.error.title = copy(kind_title(kind));
    p->rec.error.detail = copy(msg);
    p->rec.error.operation = copy(operation);
    return kind;
}

int kl_oom(kl_client *c, const char *operation) {
    return kl_fail(c, KL_ERR_OOM, "out_of_memory", operation, "out of memory");
}
