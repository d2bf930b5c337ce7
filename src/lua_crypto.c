/*
 * lua_crypto.c - core.sha256, core.hmac_sha256, core.random_bytes, core.equal (crypto.h).
 *
 *   core.sha256(data) -> 32 raw bytes
 *   core.hmac_sha256(key, data) -> 32 raw bytes
 *   core.random_bytes(n) -> n raw bytes (1 <= n <= 1024)
 *   core.equal(a, b) -> boolean; for strings of one length, in time that does not depend on
 *                       where they differ (a length is not a secret)
 * A failure of libcrypto raises: none of them has a runtime failure a caller could act on.
 */
#include "crypto.h"
#include "lua_klaviyo.h"

int kl_lua_sha256(lua_State *L) {
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    unsigned char out[KL_SHA256_LEN];
    if (kl_sha256(s, n, out) != 0) return luaL_error(L, "klaviyo.core.sha256: libcrypto failed");
    lua_pushlstring(L, (const char *)out, sizeof out);
    return 1;
}

int kl_lua_hmac_sha256(lua_State *L) {
    size_t kn, n;
    const char *k = luaL_checklstring(L, 1, &kn);
    const char *s = luaL_checklstring(L, 2, &n);
    unsigned char out[KL_SHA256_LEN];
    if (kl_hmac_sha256(k, kn, s, n, out) != 0) return luaL_error(L, "klaviyo.core.hmac_sha256: libcrypto failed");
    lua_pushlstring(L, (const char *)out, sizeof out);
    return 1;
}

int kl_lua_random_bytes(lua_State *L) {
    unsigned char buf[1024];
    lua_Number n = luaL_checknumber(L, 1);
    if (!(n >= 1 && n <= (lua_Number)sizeof buf) || n != (lua_Number)(size_t)n)
        return luaL_argerror(L, 1, "a whole number of bytes from 1 to 1024");
    if (kl_random_bytes(buf, (size_t)n) != 0) return luaL_error(L, "klaviyo.core.random_bytes: no random source");
    lua_pushlstring(L, (const char *)buf, (size_t)n);
    return 1;
}

int kl_lua_equal(lua_State *L) {
    size_t an, bn;
    const char *a = luaL_checklstring(L, 1, &an);
    const char *b = luaL_checklstring(L, 2, &bn);
    lua_pushboolean(L, an == bn && kl_equal_ct(a, b, an));
    return 1;
}
