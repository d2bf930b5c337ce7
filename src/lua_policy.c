/*
 * lua_policy.c - the core's pure rules for Lua: core.retry_decide, core.duration,
 * core.account_key, core.uuid; and core.monotonic, the clock waits are measured with.
 */
#include "duration.h"
#include "kl_internal.h"
#include "retry.h"
#include "lua_klaviyo.h"

#include <stdlib.h>
#include <string.h>

/* core.retry_decide{safe=, status= | failure="not_sent"|"maybe_sent", attempt=, elapsed=,
 * retry_after=, random=, attempts=, max_time=, base=, cap=} -> delay | false, reason
 * (the libcurl transport's rule, for transports that sleep their own way) */
static double tfield(lua_State *L, const char *k, double dflt) {
    double v;
    if (!lk_opt_field(L, 1, "klaviyo.core.retry_decide: ", k, LUA_TNUMBER)) return dflt;
    v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

/* core.duration(v) -> v checked as every duration from outside is (duration.h): a number
 * of seconds in 0..one day (larger ones capped), or nil for NaN, negatives and non-numbers */
int kl_lua_duration(lua_State *L) {
    double v;
    if (lua_type(L, 1) != LUA_TNUMBER || kl_duration_check(lua_tonumber(L, 1), &v) == KL_DURATION_BAD) return 0;
    lua_pushnumber(L, v);
    return 1;
}

/* core.monotonic() -> seconds on the core's monotonic clock (from an arbitrary start): waits
 * and deadlines measured with it are neither stretched nor cut when the wall clock is set */
int kl_lua_monotonic(lua_State *L) {
    lua_pushnumber(L, (lua_Number)kl_now() / KL_USEC_PER_SEC);
    return 1;
}

/* core.account_key(credential) -> the default account part of limiter keys (never the secret) */
int kl_lua_account_key(lua_State *L) {
    char out[18];
    luaL_checkstring(L, 1);
    kl_account_key(lk_c_string(L, 1, "credential"), out);
    lua_pushstring(L, out);
    return 1;
}

/* core.uuid() -> a random version 4 UUID (an event's unique_id), from a pool of /dev/urandom
 * bytes kept by the module (its upvalue), one string made per id; raises when no random
 * bytes can be read. */
int kl_lua_uuid(lua_State *L) {
    char id[37];
    if (kl_uuid4(lua_touserdata(L, lua_upvalueindex(1)), id) != 0)
        return luaL_error(L, "klaviyo: no random bytes for a unique_id (/dev/urandom unreadable)");
    lua_pushlstring(L, id, 36);
    return 1;
}

int kl_lua_retry_decide(lua_State *L) {
    kl_retry_policy pol;
    kl_retry_input in;
    kl_retry_decision d;
    const char *f;
    int rc;
    luaL_checktype(L, 1, LUA_TTABLE);
    kl_retry_policy_default(&pol);
    memset(&in, 0, sizeof in);
    pol.max_attempts = (int)tfield(L, "attempts", pol.max_attempts);
    pol.max_elapsed = tfield(L, "max_time", pol.max_elapsed);
    pol.base_delay = tfield(L, "base", pol.base_delay);
    pol.max_delay = tfield(L, "cap", pol.max_delay);
    lua_getfield(L, 1, "safe");
    in.safe = lua_toboolean(L, -1);
    lua_pop(L, 1);
    in.status = (long)tfield(L, "status", 0);
    lua_getfield(L, 1, "failure");
    f = lua_tostring(L, -1);
    in.failure = !f                             ? KL_FAIL_NONE
                 : strcmp(f, "not_sent") == 0   ? KL_FAIL_NOT_SENT
                 : strcmp(f, "maybe_sent") == 0 ? KL_FAIL_MAYBE_SENT
                                                : -1;
    lua_pop(L, 1);
    if (in.failure < 0)
        return luaL_error(L, "klaviyo.core.retry_decide: failure must be \"not_sent\" or \"maybe_sent\"");
    in.attempt = (int)tfield(L, "attempt", 1);
    in.elapsed = tfield(L, "elapsed", 0);
    in.retry_after = tfield(L, "retry_after", -1);
    in.random = tfield(L, "random", 0);
    rc = kl_retry_decide(&pol, &in, &d);
    if (rc == KL_RETRY_ERROR) return luaL_error(L, "klaviyo.core.retry_decide: %s", d.reason);
    if (rc == KL_RETRY_AGAIN) {
        lua_pushnumber(L, d.delay);
        lua_pushstring(L, d.reason);
    } else {
        lua_pushboolean(L, 0);
        lua_pushstring(L, d.reason);
    }
    return 2;
}
