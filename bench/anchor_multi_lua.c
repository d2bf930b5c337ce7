/*
 * anchor_multi_lua.c - bench/batch's anchor as a Lua module (bench_anchor_multi): a plain C loop
 * on libcurl's multi interface sending anchor.h's create_event (the same bytes as the client, a
 * fresh unique_id in each) with a number of transfers in flight, run from inside the Lua process
 * that times client:batch, so that the two alternate in short blocks and the machine's load falls
 * on both alike.  Each run does the whole job a caller's batch does: a multi handle and one easy
 * handle per slot are made, the n requests sent, and all of it freed.  Bench-only; built by
 * bench/batch/run.
 *
 *   local anchor = require "bench_anchor_multi"
 *   anchor.open(url .. "/api/events", key)
 *   local failures = anchor.run(n, concurrency)
 */
#include "anchor.h"
#include "bench_module.h"

#include <stdlib.h>

typedef struct slot {
    CURL *h;
    struct curl_slist *headers;
    char body[sizeof anchor_body];
} slot;

/* kept for the life of the process, beside the module's code */
static char target_url[2048], api_key[256];

static int l_open(lua_State *L) {
    size_t url_len, key_len;
    const char *url = luaL_checklstring(L, 1, &url_len), *key = luaL_checklstring(L, 2, &key_len);
    if (target_url[0]) return luaL_error(L, "bench_anchor_multi: already open");
    if (url_len == 0 || url_len >= sizeof target_url || key_len >= sizeof api_key)
        return luaL_error(L, "bench_anchor_multi: url or key empty or too long");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return luaL_error(L, "bench_anchor_multi: curl_global_init failed");
    memcpy(target_url, url, url_len + 1);
    memcpy(api_key, key, key_len + 1);
    return 0;
}

/* The slot's handle with a fresh unique_id in its body; 0, or -1 without random bytes. */
static int restamp(slot *s) {
    if (anchor_stamp(s->body) != 0) return -1;
    curl_easy_setopt(s->h, CURLOPT_POSTFIELDS, s->body);
    return 0;
}

static void free_slots(CURLM *m, slot *slots, long k) {
    long i;
    for (i = 0; i < k; i++) {
        if (m) curl_multi_remove_handle(m, slots[i].h);
        curl_easy_cleanup(slots[i].h);
        curl_slist_free_all(slots[i].headers);
    }
    free(slots);
    if (m) curl_multi_cleanup(m);
}

/* n requests with up to conc in flight; the number that failed or were not 2xx.  Raises when
 * libcurl or malloc fails (nothing is left allocated). */
static int l_run(lua_State *L) {
    long n = (long)luaL_checknumber(L, 1), conc = (long)luaL_checknumber(L, 2);
    long nslots, k, started = 0, done = 0, bad = 0;
    const char *fail = NULL;
    CURLM *m;
    slot *slots;
    if (!target_url[0]) return luaL_error(L, "bench_anchor_multi: open it first");
    if (n < 1 || conc < 1) return luaL_error(L, "bench_anchor_multi: n and concurrency must be >= 1");
    nslots = conc < n ? conc : n;
    if (!(slots = calloc((size_t)nslots, sizeof *slots))) return luaL_error(L, "bench_anchor_multi: out of memory");
    if (!(m = curl_multi_init())) {
        free(slots);
        return luaL_error(L, "bench_anchor_multi: cannot create a multi handle");
    }
    for (k = 0; k < nslots; k++) {
        slot *s = &slots[k];
        if (!(s->h = anchor_handle(target_url, api_key, &s->headers))) {
            free_slots(m, slots, k);
            return luaL_error(L, "bench_anchor_multi: libcurl out of memory");
        }
        memcpy(s->body, anchor_body, sizeof anchor_body);
        curl_easy_setopt(s->h, CURLOPT_PRIVATE, (char *)s);
        if (restamp(s) != 0) fail = "no random bytes";
        else if (curl_multi_add_handle(m, s->h) != CURLM_OK) fail = "curl_multi_add_handle failed";
        if (fail) {
            free_slots(m, slots, k + 1);
            return luaL_error(L, "bench_anchor_multi: %s", fail);
        }
        started++;
    }
    while (done < n && !fail) {
        int running, left;
        CURLMsg *msg;
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            fail = "curl_multi_perform failed";
            break;
        }
        while ((msg = curl_multi_info_read(m, &left))) {
            char *priv;
            slot *s;
            long status = 0;
            if (msg->msg != CURLMSG_DONE) continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            s = (slot *)priv;
            curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &status);
            if (msg->data.result != CURLE_OK || status < 200 || status > 299) bad++;
            done++;
            curl_multi_remove_handle(m, s->h);
            if (started < n) { /* the slot's next request, over its connection */
                if (restamp(s) != 0) {
                    fail = "no random bytes";
                    break;
                }
                if (curl_multi_add_handle(m, s->h) != CURLM_OK) {
                    fail = "curl_multi_add_handle failed";
                    break;
                }
                started++;
            }
        }
        if (done < n && !fail && curl_multi_poll(m, NULL, 0, 1000, NULL) != CURLM_OK) fail = "curl_multi_poll failed";
    }
    free_slots(m, slots, nslots);
    if (fail) return luaL_error(L, "bench_anchor_multi: %s", fail);
    lua_pushnumber(L, (lua_Number)bad);
    return 1;
}

int luaopen_bench_anchor_multi(lua_State *L);
int luaopen_bench_anchor_multi(lua_State *L) {
    static const luaL_Reg fns[] = {{"open", l_open}, {"run", l_run}, {NULL, NULL}};
    return bench_module(L, fns);
}
