/*
 * transport_curl.c - move the built request over libcurl and store the answer; kl_send, the
 * blocking driver of a request's steps (call.c).
 * One easy handle per client, kept between requests, and one multi handle that runs its
 * transfers and keeps the connection cache, so one connection serves many requests.  TLS
 * peers are always verified (no switch exists).
 */
#include "kl_internal.h"

#include <curl/curl.h>
#include <string.h>
#include <strings.h>

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud) {
    kl_client *c = ud;
    size_t n = size * nmemb;
    if (c->priv->ans.body.len + n > KL_MAX_BODY) {
        c->priv->net.body_too_large = 1;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    if (kl_buf_add(&c->priv->ans.body, ptr, n)) return 0;
    return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *ud) {
    kl_client *c = ud;
    size_t n = size * nmemb;
    const char *colon;
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        /* a new status line (after 100 Continue or a proxy's CONNECT answer): headers of
         * earlier responses do not belong to the final one */
        c->priv->ans.n_rh = 0;
        kl_buf_reset(&c->priv->ans.rhstore);
        c->priv->net.headers_ended = 0;
        return n;
    }
    if ((n == 2 && ptr[0] == '\r' && ptr[1] == '\n') || (n == 1 && ptr[0] == '\n')) {
        c->priv->net.headers_ended = 1;
        return n;
    }
    colon = memchr(ptr, ':', n);
    if (!colon || colon == ptr) return n; /* junk */
    if (kl_resp_add_header(c, ptr, (size_t)(colon - ptr), colon + 1, n - (size_t)(colon - ptr) - 1)) return 0;
    return n;
}

/* Options that never change for a client are set once: the hot path only sets the URL,
 * the headers and the method/body. */
int kl_transport_init(kl_client *c) {
    kl_client_priv *p = c->priv;
    CURL *h;
    CURLcode e = CURLE_OK;
    /* balanced by curl_global_cleanup in kl_transport_free: libcurl counts the calls */
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return -1;
    h = curl_easy_init();
    if (!h) {
        curl_global_cleanup();
        return -1;
    }
#define SET(opt, val)                                                                                                  \
    if (e == CURLE_OK) e = curl_easy_setopt(h, opt, val)
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L); /* the defaults, said out loud: no switch turns them off */
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* gzip is what Klaviyo compresses with; naming it (not "" = every decoder libcurl has)
     * also spares libcurl listing its decoders on every request */
    SET(CURLOPT_ACCEPT_ENCODING, "gzip");
    SET(CURLOPT_TIMEOUT_MS, p->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, p->connect_timeout_ms);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, c);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, c);
    SET(CURLOPT_ERRORBUFFER, p->net.curl_err);
    /* libcurl takes a proxy from the environment (http_proxy, https_proxy, ALL_PROXY) by
     * itself.  A plain-http or loopback target never goes through one: the proxy would read
     * the Authorization header in clear, and the caller never named it.  An https target
     * still may (proxies are how many networks reach the Internet): libcurl tunnels it with
     * CONNECT, the proxy sees the host name, and the key travels inside TLS to the verified
     * peer.  Every URL a client sends to has its base URL's scheme, host and port
     * (request.c), so deciding once here covers them all.  A proxy the caller named is
     * another matter: it is used for every URL. */
    if (p->proxy) {
        SET(CURLOPT_PROXY, p->proxy);
        SET(CURLOPT_NOPROXY, "");
    } else if (!p->base.https || kl_host_is_loopback(p->base.host)) {
        SET(CURLOPT_NOPROXY, "*");
    }
    if (p->ca_file) SET(CURLOPT_CAINFO, p->ca_file);
    if (p->ca_path) SET(CURLOPT_CAPATH, p->ca_path);
    if (p->client_cert) SET(CURLOPT_SSLCERT, p->client_cert);
    if (p->client_key) SET(CURLOPT_SSLKEY, p->client_key);
#undef SET
    if (e != CURLE_OK) {
        curl_easy_cleanup(h);
        curl_global_cleanup();
        return -1;
    }
    p->net.curl = h;
    return 0;
}

void kl_transport_free(kl_client *c) {
    kl_client_priv *p = c->priv;
    if (p->net.slist) {
        curl_slist_free_all(p->net.slist);
        p->net.slist = NULL;
    }
    if (p->net.slist_src.p) memset(p->net.slist_src.p, 0, p->net.slist_src.len); /* held the Authorization value */
    kl_buf_free(&p->net.slist_src);
    if (p->net.curl) {
        curl_easy_cleanup(p->net.curl); /* never in the multi here: perform removes it each time */
        p->net.curl = NULL;
        if (p->net.multi) {
            curl_multi_cleanup(p->net.multi);
            p->net.multi = NULL;
        } /* closes the connections */
        curl_global_cleanup();
    }
    if (p->net.curlu) {
        curl_url_cleanup(p->net.curlu);
        p->net.curlu = NULL;
    } /* after the handle using it */
    kl_buf_free(&p->net.curlu_src);
}

/* The URL as a libcurl URL handle (CURLOPT_CURLU), parsed only when it differs from the last
 * request's: a plain CURLOPT_URL string is parsed again by every transfer, about a seventh
 * of libcurl's work for a small request on a reused connection. */
static CURLcode url(kl_client_priv *p, const char *u) {
    CURLUcode uc;
    if (p->net.curlu && p->net.curlu_src.p && strcmp(p->net.curlu_src.p, u) == 0) return CURLE_OK;
    if (!p->net.curlu && !(p->net.curlu = curl_url())) return CURLE_OUT_OF_MEMORY;
    kl_buf_reset(&p->net.curlu_src);
    uc = curl_url_set(p->net.curlu, CURLUPART_URL, u, 0);
    if (uc == CURLUE_OUT_OF_MEMORY) return CURLE_OUT_OF_MEMORY;
    if (uc != CURLUE_OK) return CURLE_URL_MALFORMAT;
    if (kl_buf_adds(&p->net.curlu_src, u)) return CURLE_OUT_OF_MEMORY;
    return curl_easy_setopt(p->net.curl, CURLOPT_CURLU, p->net.curlu);
}

/* The header list for libcurl; rebuilt only when the headers differ from the last request's. */
static CURLcode headers(kl_client_priv *p) {
    struct curl_slist *sl = NULL, *t;
    size_t i;
    if (p->net.slist && p->net.slist_src.len == p->req.hstore.len &&
        memcmp(p->net.slist_src.p, p->req.hstore.p, p->req.hstore.len) == 0)
        return CURLE_OK;
    for (i = 0; i < p->req.n_bh; i++) {
        t = curl_slist_append(sl, p->req.bline[i]);
        if (!t) {
            curl_slist_free_all(sl);
            return CURLE_OUT_OF_MEMORY;
        }
        sl = t;
    }
    /* no "Expect: 100-continue" round trip for bodies over 1 KB */
    t = curl_slist_append(sl, "Expect:");
    if (!t) {
        curl_slist_free_all(sl);
        return CURLE_OUT_OF_MEMORY;
    }
    sl = t;
    if (p->net.slist_src.p) memset(p->net.slist_src.p, 0, p->net.slist_src.len);
    kl_buf_reset(&p->net.slist_src);
    if (kl_buf_add(&p->net.slist_src, p->req.hstore.p, p->req.hstore.len)) {
        curl_slist_free_all(sl);
        return CURLE_OUT_OF_MEMORY;
    }
    if (p->net.slist) curl_slist_free_all(p->net.slist);
    p->net.slist = sl;
    return curl_easy_setopt(p->net.curl, CURLOPT_HTTPHEADER, sl);
}

static CURLcode setup(kl_client *c) {
    kl_client_priv *p = c->priv;
    CURL *h = p->net.curl;
    const kl_built *b = &p->req.built;
    CURLcode e = headers(p);
    if (e == CURLE_OK) e = url(p, b->url);
#define SET(opt, val)                                                                                                  \
    if (e == CURLE_OK) e = curl_easy_setopt(h, opt, val)
    /* libcurl silently sends a request again on a new connection when a reused one dies
     * before any answer; the server may have acted on the first copy. A request that is not
     * safe to repeat (create_profile, create_list, ...) therefore gets a connection of its own. */
    SET(CURLOPT_FRESH_CONNECT, p->call.safe ? 0L : 1L);
    if (strcmp(b->method, "GET") == 0) {
        SET(CURLOPT_HTTPGET, 1L);
        SET(CURLOPT_CUSTOMREQUEST, (char *)NULL);
    } else {
        /* POSTFIELDS (not READFUNCTION) so a body is sent in one piece with Content-Length */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->body_len);
        SET(CURLOPT_POSTFIELDS, b->body ? b->body : "");
        SET(CURLOPT_CUSTOMREQUEST, strcmp(b->method, "POST") == 0 ? (char *)NULL : b->method);
    }
#undef SET
    return e;
}

static int transport_error(kl_client *c, CURLcode e, const char *op, const char *ebuf) {
    kl_client_priv *p = c->priv;
    const char *code, *what;
    long got = 0, written = 0, tunnel = 0;
    int sent, rc;
    curl_easy_getinfo(p->net.curl, CURLINFO_RESPONSE_CODE, &got);
    curl_easy_getinfo(p->net.curl, CURLINFO_REQUEST_SIZE, &written);
    curl_easy_getinfo(p->net.curl, CURLINFO_HTTP_CONNECTCODE, &tunnel);
    /* Bytes of the request were written (libcurl counts them for this transfer, a proxy's
     * CONNECT included): the server may have acted on it, whatever came back.  A proxy that
     * answered the CONNECT with a refusal passed nothing on. */
    sent = written > 0 && (tunnel == 0 || tunnel / 100 == 2);
    switch (e) {
    case CURLE_COULDNT_RESOLVE_HOST:
        code = "dns_failed";
        what = "could not resolve host";
        sent = 0;
        break;
    case CURLE_COULDNT_RESOLVE_PROXY:
        code = "dns_failed";
        what = "could not resolve proxy";
        sent = 0;
        break;
    case CURLE_COULDNT_CONNECT:
        code = "connect_failed";
        what = "could not connect";
        sent = 0;
        break;
    case CURLE_OPERATION_TIMEDOUT:
        if (!sent) {
            code = "connect_timeout";
            what = "timed out before the request was sent";
        } else {
            code = "timeout";
            what = got ? "timed out reading the response" : "timed out waiting for the response";
        }
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
        code = "tls_failed";
        what = "TLS handshake or certificate verification failed";
        sent = 0;
        break;
    case CURLE_GOT_NOTHING:
        code = "empty_reply";
        what = "the server closed the connection without answering";
        break;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
        /* libcurl before 8.6 reports its cap on an answer's header lines (interim answers
         * included) as a receive error; its message is the one thing that tells them apart */
        if (e == CURLE_RECV_ERROR && ebuf && strstr(ebuf, "Too large response headers")) {
            code = "response_too_large";
            what = "the response's header lines are over libcurl's size limit";
            break;
        }
        if (got) {
            code = "truncated";
            what = "connection lost while reading the response";
        } else {
            code = "connection_reset";
            what = "connection reset before a response";
        }
        break;
    case CURLE_PARTIAL_FILE:
        code = "truncated";
        what = "the response body was cut short";
        break;
    case CURLE_WRITE_ERROR: /* the write callback refused: a body over the limit, or no memory */
    case CURLE_OUT_OF_MEMORY:
#if LIBCURL_VERSION_NUM >= 0x080600
    case CURLE_TOO_LARGE:
#endif
        if (p->net.body_too_large) {
            code = "response_too_large";
            what = "the response body is over 64 MB";
            break;
        }
        /* once the request went out, libcurl's out of memory is an answer over its limits (a
         * status or header line over 100 KB), not this process running out: the server's
         * fault, nil, err */
        if (e == CURLE_WRITE_ERROR || (e == CURLE_OUT_OF_MEMORY && !got && !sent))
            return kl_fail(c, KL_ERR_OOM, "out_of_memory", op, "out of memory while receiving the response");
        code = "response_too_large";
        what = "a response header is over libcurl's size limit";
        break;
    case CURLE_UNSUPPORTED_PROTOCOL:
        code = "unsupported_protocol";
        what = "unsupported protocol";
        break;
    case CURLE_TOO_MANY_REDIRECTS:
    case CURLE_WEIRD_SERVER_REPLY:
        code = "bad_reply";
        what = "the server's reply is not valid HTTP";
        break;
    case CURLE_BAD_CONTENT_ENCODING:
        code = "bad_encoding";
        what = "the response's content encoding could not be decoded";
        break;
    default:
        code = "transport_failed";
        what = curl_easy_strerror(e);
        break;
    }
    rc = kl_fail(c, KL_ERR_TRANSPORT, code, op, "%s (%s)", what, ebuf && *ebuf ? ebuf : curl_easy_strerror(e));
    p->rec.error.sent = sent;
    p->rec.error.status = 0;
    return rc;
}

int kl_transport_prepare(kl_client *c, const char *op) {
    kl_client_priv *p = c->priv;
    CURLcode e;
    kl_resp_reset(c);
    p->net.body_too_large = 0;
    p->net.headers_ended = 0;
    e = setup(c);
    if (e != CURLE_OK) {
        if (e == CURLE_OUT_OF_MEMORY) return kl_oom(c, op);
        return kl_fail(c, KL_ERR_TRANSPORT, "transport_failed", op, "libcurl refused an option: %s",
                       curl_easy_strerror(e));
    }
    p->net.curl_err[0] = '\0';
    return KL_OK;
}

int kl_transport_finish(kl_client *c, int curl_code, const char *op) {
    kl_client_priv *p = c->priv;
    CURLcode e = (CURLcode)curl_code;
    long status = 0;
    /* the request's body belongs to the caller: drop libcurl's pointer to it */
    curl_easy_setopt(p->net.curl, CURLOPT_POSTFIELDS, (char *)NULL);
    if (e != CURLE_OK) return transport_error(c, e, op, p->net.curl_err);
    if (!p->net.headers_ended) {
        /* libcurl ends an answer's header block where the connection closed: without its blank
         * line the answer is cut short, whatever status it began with */
        int rc = kl_fail(c, KL_ERR_TRANSPORT, "truncated", op,
                         "connection lost while reading the response (it closed before the headers ended)");
        p->rec.error.sent = 1;
        p->rec.error.status = 0;
        return rc;
    }
    curl_easy_getinfo(p->net.curl, CURLINFO_RESPONSE_CODE, &status);
    p->ans.res.status = status;
    if (kl_resp_finish_headers(c)) return kl_oom(c, op);
    return KL_OK;
}

/* The client's multi handle, made on first use (NULL without memory).  Its single calls and
 * its batches all run on it, so the connections it caches serve whatever the client sends
 * next: a batch after a batch, or a call after one, reuses them instead of connecting (and
 * over TLS, shaking hands) again.  It keeps as many idle connections as the widest batch
 * had in flight (width); 0 leaves that as it is. */
void *kl_transport_multi(kl_client *c, size_t width) {
    kl_net *n = &c->priv->net;
    if (!n->multi && !(n->multi = curl_multi_init())) return NULL;
    if (width > (size_t)n->keep && width <= 1024) {
        n->keep = (long)width;
        curl_multi_setopt(n->multi, CURLMOPT_MAXCONNECTS, n->keep);
    }
    return n->multi;
}

/* One transfer on the client's own multi handle, as curl_easy_perform runs it on the multi
 * handle it keeps inside the easy one, less one syscall a request: easy_perform starts every
 * transfer with a curl_multi_poll, whose zero-timeout poll of the multi's wakeup socket finds
 * nothing, and waits with the wakeup socket in the set; this loop starts with
 * curl_multi_perform and waits with curl_multi_wait (the easy handle's socket only, libcurl's
 * own timers bounding the wait).  Errors map as easy_perform maps them. */
static CURLcode perform(kl_client *c) {
    kl_client_priv *p = c->priv;
    CURLM *m = kl_transport_multi(c, 0);
    CURLMcode mc;
    CURLcode rc = CURLE_OK;
    int running = 0, left;
    if (!m) return CURLE_OUT_OF_MEMORY;
    mc = curl_multi_add_handle(m, p->net.curl);
    while (mc == CURLM_OK) {
        mc = curl_multi_perform(m, &running);
        if (mc != CURLM_OK) break;
        if (!running) { /* a transfer that stopped running has left its result */
            CURLMsg *msg = curl_multi_info_read(m, &left);
            rc = msg && msg->msg == CURLMSG_DONE ? msg->data.result : CURLE_BAD_FUNCTION_ARGUMENT;
            break;
        }
        mc = curl_multi_wait(m, NULL, 0, 1000, NULL);
    }
    curl_multi_remove_handle(m, p->net.curl);
    if (mc != CURLM_OK) rc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_BAD_FUNCTION_ARGUMENT;
    return rc;
}

/* One transfer, start to end (kl_send's; kl_batch runs the two halves on its multi handle). */
static int transport_perform(kl_client *c, const char *op) {
    int rc = kl_transport_prepare(c, op);
    if (rc != KL_OK) return rc;
    return kl_transport_finish(c, (int)perform(c), op);
}

/* One attempt, its timeout cut to what is left of the call's retry_max_time: that bounds
 * the whole call (limiter waits, retries and the attempts themselves). */
static int attempt(kl_client *c, const char *op) {
    kl_client_priv *p = c->priv;
    double left = kl_call_time_left(&p->call) * 1000.0;
    long ms;
    int rc;
    if (!(left < (double)p->timeout_ms)) return transport_perform(c, op);
    ms = left < 1 ? 1 : (long)left;
    curl_easy_setopt(p->net.curl, CURLOPT_TIMEOUT_MS, ms);
    rc = transport_perform(c, op);
    curl_easy_setopt(p->net.curl, CURLOPT_TIMEOUT_MS, p->timeout_ms);
    return rc;
}

int kl_send(kl_client *c, const kl_request *req) {
    kl_call *k = &c->priv->call;
    kl_usec wait;
    int rc = kl_call_begin(c, k, req, NULL);
    if (rc != KL_OK) return rc;
    for (;;) {
        switch (kl_call_next(c, k, &wait)) {
        case KL_STEP_WAIT: kl_sleep_us(wait); break;
        case KL_STEP_SEND:
            kl_call_observe(c, k, KL_ATTEMPT_REQUEST);
            kl_call_received(c, k, attempt(c, req->operation));
            kl_call_observe(c, k, KL_ATTEMPT_RESPONSE);
            break;
        case KL_STEP_DONE: return KL_OK;
        default: return c->err; /* FAIL; LIMIT and FEED come only with a driver-held store */
        }
    }
}
