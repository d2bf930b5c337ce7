/*
 * lua_klaviyo.c - the Lua module klaviyo.core: binds the C core (klaviyo.h).
 *
 *   local core = require "klaviyo.core"
 *   local c, err = core.new{base_url=, api_key=, access_token=, public_key=, revision=,
 *                           timeout=, connect_timeout=, user_agent=}   -- timeouts in seconds
 *   c:request{operation=, method=, path=, path_params={...} | url=, query={{name, value|list}},
 *             headers={{name, value}}, body=, auth="private"|"public", revision=,
 *             unique_ids=true}
 *     body: JSON text, or a Lua table the core encodes (src/lua_json.c) straight into C memory;
 *     unique_ids: every event of the operation (at the places klaviyo.event_layout's STAMP
 *     names) without a unique_id gets one in the encoded bytes (the table is not changed).
 *     A table that cannot be encoded gives nil, {kind="encode", code="invalid_body",
 *     message="<path>: <what>"} and sends nothing.
 *     -> {status=, headers={lowercase=value}, body=, ratelimit={limit=,remaining=,reset=}|nil},
 *        nil, plain (true: sent once, nothing waited: c:info() has nothing to add)
 *      | nil, {kind="http"|"transport"|"refused"|"throttled"|"out_of_memory", status=, code=,
 *              title=, detail=, pointer=, parameter=, retry_after=, operation=, request_id=,
 *              meta=, body=, message=, sent=, headers=}
 *     Path and query values are strings or numbers: a number in a path must be an integer, in a
 *     query any finite number; either within the 64-bit range when integral.  A string holding
 *     a NUL byte is refused wherever it would reach C (C would cut it short there).
 *   c:build(req) -> {method=, url=, headers={{name, value}...}, body=} | nil, err
 *   c:batch(requests, concurrency) -> list of {res} | {false, err}   (lua_batch.c)
 *   c:info([t]) -> what the send loop did for the last request
 *   c:interpret(status, headers, body [, operation]) -> res | nil, err
 *   c:set_access_token(tok) -> true | nil, err;   c:close() (also __gc; idempotent)
 *   core.encode(value [, opts]) -> json | nil, msg   (src/lua_json.c)
 *   core.duration(seconds) -> seconds checked and capped at a day | nil (src/duration.h)
 *   core.monotonic() -> seconds on a clock nobody sets (waits, deadlines)   (lua_policy.c)
 *   core.sha256, core.hmac_sha256, core.random_bytes, core.equal   (src/lua_crypto.c)
 *   core.read_line(file, max) -> line | false, length | nil   (src/lua_readline.c)
 *   core.fsync_path(path) -> true | nil, err   open(O_RDONLY) + fsync, a file or a directory
 *   core.realpath(path) -> path | nil, err   symlinks followed as `readlink -f` does
 *   core.write_private(path, bytes) -> true | nil, err   a new file, mode 0600, written whole
 *     and fsynced, removed on any failure   (these three: src/lua_file.c, no shell, no fork)
 *
 * Manners as in LuaSocket: misuse (wrong types, unknown fields, NUL bytes, numbers out of
 * range) raises; runtime failures (out of memory and hostile answers included) return nil,
 * err.  Written against the 5.2+ C API with a small shim for 5.1/LuaJIT.
 *
 * This file only opens the module.  The client and its methods are in lua_client.c, the
 * reading of a request table in lua_request.c, answers and errors as Lua values in
 * lua_result.c, c:batch in lua_batch.c, a request's steps for the nginx driver in lua_call.c, the pure rules (retry_decide, duration, account_key,
 * uuid) and the monotonic clock in lua_policy.c, the JSON encoder in lua_json*.c and the tracker's spool in
 * lua_spool.c and lua_spool_lock.c (its file and batch reader: spool_file.c, spool_read.c).
 */
#include "lua_call.h"
#include "lua_file.h"
#include "lua_klaviyo.h"
#include "lua_meta.h"
#include "lua_spool.h"

static const luaL_Reg methods[] = {{"request", kl_lua_request},     {"build", kl_lua_build},
                                   {"interpret", kl_lua_interpret}, {"set_access_token", kl_lua_set_access_token},
                                   {"close", kl_lua_close},         {"info", kl_lua_info},
                                   {"batch", kl_lua_batch},         {NULL, NULL}};

static const luaL_Reg funcs[] = {{"new", kl_lua_new},
                                 {"retry_decide", kl_lua_retry_decide},
                                 {"account_key", kl_lua_account_key},
                                 {"duration", kl_lua_duration},
                                 {"monotonic", kl_lua_monotonic},
                                 {"encode", kl_lua_encode},
                                 {"measure", kl_lua_measure},
                                 {"sha256", kl_lua_sha256},
                                 {"hmac_sha256", kl_lua_hmac_sha256},
                                 {"random_bytes", kl_lua_random_bytes},
                                 {"equal", kl_lua_equal},
                                 {"spool_writer", kl_lua_spool_writer},
                                 {"fsync_path", kl_lua_fsync_path},
                                 {"realpath", kl_lua_realpath},
                                 {"write_private", kl_lua_write_private},
                                 {"spool_lock", kl_lua_spool_lock},
                                 {"spool_check", kl_lua_spool_check},
                                 {"spool_file_kind", kl_lua_spool_file_kind},
                                 {"spool_trailer", kl_lua_spool_trailer},
                                 {"read_line", kl_lua_read_line},
                                 {NULL, NULL}};

int luaopen_klaviyo_core(lua_State *L);

int luaopen_klaviyo_core(lua_State *L) {
    lk_metatable(L, MT, methods, kl_lua_close);
    lua_pushcfunction(L, kl_lua_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    kl_lua_call_register(L);
    lua_newtable(L);
    lk_setfuncs(L, funcs);
    kl_uuid_pool_init(lua_newuserdata(L, sizeof(kl_uuid_pool)));
    lua_pushcclosure(L, kl_lua_uuid, 1);
    lua_setfield(L, -2, "uuid");
    lk_set_string(L, "_VERSION", KL_VERSION);
    lk_set_string(L, "version", KL_VERSION);
    lk_set_string(L, "DEFAULT_REVISION", KL_DEFAULT_REVISION);
    lk_set_string(L, "DEFAULT_BASE_URL", KL_DEFAULT_BASE_URL);
    lk_set_integer(L, "MAX_BODY", (lua_Integer)KL_MAX_BODY);
    return 1;
}
