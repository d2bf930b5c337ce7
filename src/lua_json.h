/*
 * lua_json.h: encode a Lua value as JSON bytes, in C, for request bodies.
 *
 * Registered by src/lua_klaviyo.c as `klaviyo.core.encode`:
 *
 *   local json, err = core.encode(value [, {max_depth = 100}])
 *
 * Mapping (chosen so Klaviyo gets exactly the JSON:API shapes it expects):
 *   - nil, cjson.null (lightuserdata NULL), a table whose metatable has
 *     __jsontype = "null" (klaviyo.null)                     -> null
 *   - booleans                                               -> true / false
 *   - integers (and floats with an integral value below 2^63) -> exact digits
 *   - other floats -> shortest of %.15g/%.16g/%.17g that reads back equal;
 *     NaN and infinities are errors
 *   - strings: RFC 8259 escaping; valid UTF-8 passes through; invalid UTF-8
 *     is an error
 *   - a table with keys exactly 1..n                         -> array
 *   - a table with string keys only                          -> object
 *   - metatable __jsontype = "array" / "object" forces the kind (so an empty
 *     table can be [] or {}); an empty unmarked table        -> {}
 *   - mixed keys, sparse arrays, non-string/non-integer keys, cycles, nesting
 *     deeper than max_depth, functions/userdata/threads     -> error
 *
 * Runtime failures return nil, msg where msg names the path of the offending
 * value, e.g. "data.attributes.properties.items[3].price: NaN cannot be encoded
 * as JSON" (array indexes are Lua's, 1-based). A bad options table (a programmer
 * error) raises.
 */
#ifndef KL_LUA_JSON_H
#define KL_LUA_JSON_H

#include <lua.h>
#include <stddef.h>

#include "uuid.h"

/* Default and largest accepted `max_depth` (containers nested in containers). */
#define KL_JSON_DEFAULT_MAX_DEPTH 100
#define KL_JSON_MAX_DEPTH_LIMIT 1000

/* lua_CFunction: (value [, options]) -> string | nil, msg */
int kl_lua_encode(lua_State *L);

/* lua_CFunction core.measure(value [, max_string, max_items, max_depth]) -> the size of its
 * JSON | nil, code, pointer, num, what: the encoder's refusal as data, for a caller to word
 * (code "nan", "inf", "utf8", "key_utf8", "cycle", "depth" (num: the limit), "sparse" (num:
 * the largest index), "mixed", "key_number", "key_type" (what: the type), "type" (what: the
 * type), "jsontype", "string" (num: its bytes), "items" (num: the count), "stack"); pointer:
 * the JSON pointer of the refused value (of the table, for its keys' shape). */
int kl_lua_measure(lua_State *L);

/* Bytes encoded straight into C memory (for the core's requests: no Lua string is made, so
 * LuaJIT never hashes or interns the body).  p is malloc'd and reused by the next encode;
 * the owner frees it. */
typedef struct kl_json_out {
    char *p;
    size_t len, cap;
} kl_json_out;

/* The finite d as the shortest of 15, 16 or 17 significant digits that reads back to it, with
 * '.' as its decimal point whatever the C locale, NUL-terminated in buf: its length. */
#define KL_JSON_DOUBLE_TEXT 40
size_t kl_json_double_text(double d, char buf[KL_JSON_DOUBLE_TEXT]);

/* out->p holds at least need bytes (its block doubled as needed); raises "klaviyo: out of memory
 * encoding <what>" when memory runs out (out keeps its block). */
void kl_json_out_reserve(lua_State *L, kl_json_out *out, size_t need, const char *what);

/* Ids stamped into the bytes: every object at this path (keys; "*" is any array index) that
 * has no member named key gets one, a UUID from the pool, in the bytes only (the table is not
 * touched).  The client hands klaviyo.event_layout's STAMP and STAMP_KEY (where an event's
 * unique_id goes); the encoder knows no layout of its own. */
typedef struct kl_json_stamp {
    const char *const *path;
    int n;
    const char *key; /* a plain JSON string: no byte that needs escaping */
    size_t keylen;
    kl_uuid_pool *pool;
} kl_json_stamp;

/* Appends the JSON of the value at stack index idx to out (from out->len; stamp may be NULL);
 * the stack is left as it was.  0, or -1 with only the message (path: what) left in
 * out->p[0..len).  Raises only when memory runs out (out still owns a valid block then). */
int kl_json_encode_to(lua_State *L, int idx, kl_json_out *out, const kl_json_stamp *stamp);

#endif
