/*
 * batch.c - many requests at once over libcurl's multi interface (kl_batch in klaviyo.h).
 *
 * Each of the `concurrency` slots is a client of its own (kl_clone: same settings, its own
 * easy handle and answer buffers, the parent's limiter borrowed), so a slot's answer is read
 * with the ordinary kl_last_* calls.  The transfers run on the parent's multi handle, whose
 * connection cache outlives the batch (kl_transport_multi).  A slot is driven through a request's steps (call.c) as
 * kl_send drives them; its waits become deadlines that bound how long curl_multi_poll may
 * block, so no slot's wait holds up another's transfer.
 */
#include "kl_internal.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

enum { S_IDLE, S_WAIT, S_RUN };

typedef struct slot {
    kl_client *c;
    kl_request req;
    size_t index;
    int state;
    kl_usec until; /* S_WAIT: when to ask the limiter (again) */
} slot;

static void finish(slot *s, size_t k, kl_batch_done done, void *ud, int rc, size_t *ndone) {
    done(ud, s->index, k, s->c, rc);
    s->state = S_IDLE;
    (*ndone)++;
}

int kl_batch(kl_client *c, size_t n, int concurrency, kl_batch_get get, kl_batch_done done, void *ud) {
    slot *slots;
    CURLM *multi;
    size_t nslots, k, next = 0, ndone = 0;
    int rc = KL_OK;
    if (!get || !done || concurrency < 1)
        return kl_fail(c, KL_ERR_USAGE, "invalid_request", NULL, "kl_batch: needs get, done and concurrency >= 1");
    kl_error_clear(c);
    if (n == 0) return KL_OK;
    nslots = (size_t)concurrency < n ? (size_t)concurrency : n;
    if (!(slots = calloc(nslots, sizeof *slots))) return kl_oom(c, NULL);
    if (!(multi = kl_transport_multi(c, nslots))) {
        free(slots);
        return kl_fail(c, KL_ERR_OOM, "out_of_memory", NULL, "cannot create a libcurl multi handle");
    }
    for (k = 0; k < nslots; k++) {
        if (!(slots[k].c = kl_clone(c))) {
            rc = kl_fail(c, KL_ERR_OOM, "out_of_memory", NULL, "cannot create the batch's connections");
            goto out;
        }
        curl_easy_setopt(slots[k].c->priv->net.curl, CURLOPT_PRIVATE, (char *)&slots[k]);
    }

    while (ndone < n) {
        kl_usec now = kl_now(), soonest = -1;
        int running = 0, left, busy = 0;
        long timeout_ms;
        CURLMsg *m;
        /* every slot goes as far as it can now: a free slot takes the next request, a slot
         * whose wait is over its next step, until it has a transfer running, a wait ahead of
         * it, or nothing left to take */
        for (k = 0; k < nslots; k++) {
            slot *s = &slots[k];
            for (;;) {
                kl_usec wait;
                int step, prc;
                if (s->state == S_IDLE && next < n) {
                    memset(&s->req, 0, sizeof s->req);
                    s->index = next++;
                    if (get(ud, s->index, k, &s->req) != 0) {
                        memset(&s->c->priv->call.info, 0, sizeof s->c->priv->call.info); /* nothing tried */
                        finish(s, k, done, ud,
                               kl_fail(s->c, KL_ERR_USAGE, "invalid_request", NULL, "could not describe the request"),
                               &ndone);
                        continue;
                    }
                    if ((prc = kl_call_begin(s->c, &s->c->priv->call, &s->req, NULL)) != KL_OK) {
                        finish(s, k, done, ud, prc, &ndone);
                        continue;
                    }
                    s->state = S_WAIT;
                    s->until = now;
                }
                if (s->state != S_WAIT || s->until > now) break;
                step = kl_call_next(s->c, &s->c->priv->call, &wait);
                if (step == KL_STEP_WAIT) {
                    s->until = now + wait;
                } else if (step != KL_STEP_SEND) {
                    finish(s, k, done, ud, step == KL_STEP_DONE ? KL_OK : s->c->err, &ndone);
                } else {
                    kl_call_observe(s->c, &s->c->priv->call, KL_ATTEMPT_REQUEST);
                    if ((prc = kl_transport_prepare(s->c, s->req.operation)) != KL_OK) {
                        kl_call_received(s->c, &s->c->priv->call, prc);
                        kl_call_observe(s->c, &s->c->priv->call, KL_ATTEMPT_RESPONSE);
                    } else if (curl_multi_add_handle(multi, s->c->priv->net.curl) != CURLM_OK) {
                        rc = kl_fail(c, KL_ERR_OOM, "out_of_memory", NULL, "libcurl refused a transfer");
                        goto out;
                    } else {
                        s->state = S_RUN;
                    }
                }
            }
        }
        if (ndone >= n) break;

        /* sleep until a socket is ready or the soonest limiter/backoff deadline, at most 1 s.
         * The wait comes before libcurl's turn, as in a plain multi loop: a slot whose transfer
         * ended has had its next request started above, with no pass of libcurl's between. */
        timeout_ms = 1000;
        for (k = 0; k < nslots; k++) {
            if (slots[k].state == S_RUN) busy = 1;
            if (slots[k].state == S_WAIT && (soonest < 0 || slots[k].until < soonest)) soonest = slots[k].until;
        }
        if (soonest >= 0) {
            kl_usec d = soonest - kl_now();
            timeout_ms = d <= 0 ? 0 : (long)((d + 999) / 1000);
            if (timeout_ms > 1000) timeout_ms = 1000;
        }
        if (timeout_ms > 0) {
            if (busy) curl_multi_poll(multi, NULL, 0, (int)timeout_ms, NULL);
            else kl_sleep_us((kl_usec)timeout_ms * 1000);
        }
        if (curl_multi_perform(multi, &running) != CURLM_OK) {
            rc = kl_fail(c, KL_ERR_OOM, "out_of_memory", NULL, "libcurl's multi interface failed");
            goto out;
        }
        while ((m = curl_multi_info_read(multi, &left))) {
            slot *s;
            int trc;
            char *priv = NULL;
            if (m->msg != CURLMSG_DONE) continue;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
            s = (slot *)(void *)priv;
            trc = (int)m->data.result;
            curl_multi_remove_handle(multi, m->easy_handle); /* m is invalid from here */
            kl_call_received(s->c, &s->c->priv->call, kl_transport_finish(s->c, trc, s->req.operation));
            kl_call_observe(s->c, &s->c->priv->call, KL_ATTEMPT_RESPONSE);
            s->state = S_WAIT; /* its next step is asked for at once */
            s->until = 0;
        }
    }

out:
    for (k = 0; k < nslots; k++) {
        if (!slots[k].c) continue;
        if (slots[k].state == S_RUN) curl_multi_remove_handle(multi, slots[k].c->priv->net.curl);
        kl_free(slots[k].c); /* its connection stays in the client's cache */
    }
    free(slots);
    return rc;
}
