/*
 * fuzz_binding.c - libFuzzer target with a Lua state: an answer (status, headers, body) goes
 * through the binding's c:interpret, the code every transport's answers go through, which
 * turns it into Lua values (the response table with its headers, or the error table with
 * its headers and the decoded errors[0].meta); then every value is read back and the meta
 * walked to its bottom.
 *
 * Input: byte 0 picks the status, byte 1 the shape (bit 0: the body is put in an error
 * document as errors[0].meta, so the fuzzer reaches the meta's conversion at once; bit 1: the
 * body is first nested in byte 1 >> 2 levels of {"a":...} or, with bit 0 of byte 0, [...], so
 * depth up to the reader's limit is reached without the fuzzer spelling it out), then
 * "name\0value\0...name\0value\0body" (as spec/c/fuzz_core.c).
 *
 * A finding is: a sanitizer report, c:interpret raising (an answer must give res or nil, err),
 * or a Lua block whose guard bytes were overwritten (the Lua library is not instrumented, so
 * its writes past a block, such as a stack pushed beyond the room checked for, are caught by
 * the allocator below when the block is resized or freed; a full collection runs after every
 * input).  Built by `make fuzz-binding` against liblua5.4 with
 * clang -fsanitize=fuzzer,address,undefined.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int luaopen_klaviyo_core(lua_State *L);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- an allocator with guard bytes after every block ------------------------------------- */

#define GUARD 32
#define HEAD 16 /* the block's size, kept in front of it (16: the alignment malloc gives) */

static void check_guard(const unsigned char *base) {
    size_t n, i;
    memcpy(&n, base, sizeof n);
    for (i = 0; i < GUARD; i++)
        if (base[HEAD + n + i] != 0xA5) {
            fprintf(stderr, "fuzz_binding: a write past a Lua block of %zu bytes\n", n);
            abort();
        }
}

static void *guarded_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    unsigned char *base = ptr ? (unsigned char *)ptr - HEAD : NULL;
    (void)ud;
    (void)osize;
    if (base) check_guard(base);
    if (nsize == 0) {
        free(base);
        return NULL;
    }
    base = realloc(base, HEAD + nsize + GUARD);
    if (!base) return NULL;
    memcpy(base, &nsize, sizeof nsize);
    memset(base + HEAD + nsize, 0xA5, GUARD);
    return base + HEAD;
}

/* ---- the Lua side ------------------------------------------------------------------------ */

/* run(status, headers, body) with the client as an upvalue: c:interpret, then every value it
 * gave is read back (res.headers, err's fields and meta walked). */
static const char RUN[] =
    "local c = ...\n"
    "local function walk(v, depth)\n"
    "  if type(v) ~= 'table' then return tostring(v) end\n"
    "  assert(depth < 200, 'a Lua value nested deeper than any JSON the reader takes')\n"
    "  for k, x in pairs(v) do walk(k, depth + 1); walk(x, depth + 1) end\n"
    "end\n"
    "return function(status, headers, body)\n"
    "  local res, err = c:interpret(status, headers, body, 'fuzz')\n"
    "  if res then\n"
    "    assert(res.status == status and type(res.body) == 'string')\n"
    "    walk(res.headers, 0); walk(res.ratelimit, 0)\n"
    "  else\n"
    "    assert(type(err) == 'table' and type(err.kind) == 'string', 'no error table')\n"
    "    walk(err, 0)\n"
    "  end\n"
    "end\n";

static lua_State *L;
static int run_ref;

static void setup(void) {
    L = lua_newstate(guarded_alloc, NULL);
    if (!L) abort();
    luaL_openlibs(L);
    luaL_requiref(L, "klaviyo.core", luaopen_klaviyo_core, 0);
    lua_getfield(L, -1, "new");
    lua_createtable(L, 0, 2);
    lua_pushliteral(L, "http://127.0.0.1:9");
    lua_setfield(L, -2, "base_url");
    lua_pushliteral(L, "pk_fuzz");
    lua_setfield(L, -2, "api_key");
    if (lua_pcall(L, 1, 1, 0) != 0 || !lua_isuserdata(L, -1)) abort();
    if (luaL_loadbuffer(L, RUN, sizeof RUN - 1, "=fuzz_binding") != 0) abort();
    lua_insert(L, -2);
    if (lua_pcall(L, 1, 1, 0) != 0) abort();
    run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
}

static const char META_HEAD[] = "{\"errors\":[{\"code\":\"invalid\",\"detail\":\"fuzz\",\"meta\":";
static const char META_TAIL[] = "}]}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *p, *end;
    long status;
    int wrap;
    if (!L) setup();
    if (size < 2) return 0;
    status = 100 + (long)(data[0] % 500);
    wrap = data[1] & 1;
    if (wrap) status = 400 + (long)(data[0] % 100);
    p = (const char *)data + 2;
    end = (const char *)data + size;
    lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
    lua_pushinteger(L, status);
    lua_newtable(L);
    /* name\0value\0 pairs while both are NUL-terminated; the rest is the body */
    for (;;) {
        const char *n0 = memchr(p, '\0', (size_t)(end - p)), *v0;
        if (!n0) break;
        v0 = memchr(n0 + 1, '\0', (size_t)(end - n0 - 1));
        if (!v0) break;
        if (n0 > p) { /* a repeated name keeps its last value */
            lua_pushlstring(L, p, (size_t)(n0 - p));
            lua_pushlstring(L, n0 + 1, (size_t)(v0 - n0 - 1));
            lua_rawset(L, -3);
        }
        p = v0 + 1;
    }
    {
        int levels = data[1] & 2 ? data[1] >> 2 : 0, i, arrays = data[0] & 1;
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        if (wrap) luaL_addlstring(&b, META_HEAD, sizeof META_HEAD - 1);
        for (i = 0; i < levels; i++) luaL_addstring(&b, arrays ? "[" : "{\"a\":");
        luaL_addlstring(&b, p, (size_t)(end - p));
        for (i = 0; i < levels; i++) luaL_addchar(&b, arrays ? ']' : '}');
        if (wrap) luaL_addlstring(&b, META_TAIL, sizeof META_TAIL - 1);
        luaL_pushresult(&b);
    }
    if (lua_pcall(L, 3, 0, 0) != 0) {
        fprintf(stderr, "fuzz_binding: c:interpret raised: %s\n", lua_tostring(L, -1));
        abort();
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
