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
    kl_client_priv *p = c->priv;
    free(p->rec.e_code);
    free(p->rec.e_title);
    free(p->rec.e_detail);
    free(p->rec.e_pointer);
    free(p->rec.e_parameter);
    free(p->rec.e_request_id);
    free(p->rec.e_operation);
    free(p->rec.e_meta);
    free(p->rec.e_body);
    p->rec.e_code = p->rec.e_title = p->rec.e_detail = p->rec.e_pointer = p->rec.e_parameter = NULL;
    p->rec.e_request_id = p->rec.e_operation = p->rec.e_meta = p->rec.e_body = NULL;
    memset(&p->rec.error, 0, sizeof p->rec.error);
    p->rec.error.retry_after = -1;
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
    p->rec.e_code = copy(code);
    p->rec.e_title = copy(kind_title(kind));
    p->rec.e_detail = copy(msg);
    p->rec.e_operation = copy(operation);
    p->rec.error.code = p->rec.e_code;
    p->rec.error.title = p->rec.e_title;
    p->rec.error.detail = p->rec.e_detail;
    p->rec.error.operation = p->rec.e_operation;
    return kind;
}

int kl_oom(kl_client *c, const char *operation) {
    return kl_fail(c, KL_ERR_OOM, "out_of_memory", operation, "out of memory");
}
