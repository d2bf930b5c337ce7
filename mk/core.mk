# The C core (src/) on libcurl: klaviyo.core for every interpreter, a static library for C
# users, the C example, and the C unit tests.
#   make core        build/<interp>/klaviyo/core.so for each of $(LUAS)
#   make build       core + build/libklaviyo.a + build/examples/track
#   make ctest       C tests (ASan/UBSan), other fragments' CTESTS, examples/track under
#                    valgrind against the emulator, the binding's spec under valgrind (the
#                    busted runs of `make test` run it on every TEST_LUAS already)
#   make spec-core   the binding's specs (BINDING_SPECS) on $(TEST_LUAS)
#   make bench-call  bench/call (client:call vs a plain C libcurl loop)
#   make fuzz        every libFuzzer target for FUZZ_SECONDS (20) each; fuzz-core and
#                    fuzz-binding run one
CC        ?= cc
CORE_CFLAGS := -std=c99 -Wall -Wextra -Werror -O2 -fPIC -g
CURL_CFLAGS := $(shell pkg-config --cflags libcurl 2>/dev/null)
# libcurl, and OpenSSL's libcrypto for src/crypto.c (libcurl is built on it already)
CURL_LIBS   := $(shell pkg-config --libs libcurl 2>/dev/null || echo -lcurl) \
               $(shell pkg-config --libs libcrypto 2>/dev/null || echo -lcrypto)

# Pure C parts (no Lua): the client, its rate limiter (in-process, or shared in Redis through
# hiredis with the script embedded from build/gen/redis_script.h, see mk/redis.mk), retry
# policy, a request's steps that join them (call.c) and the multi-interface batch.
CORE_SRCS := $(addprefix src/,buf.c url.c client.c request.c json_read.c response.c transport_curl.c uuid.c \
             limiter.c retry.c limiter_redis.c redis_reply.c error.c clock.c call.c batch.c duration.c crypto.c)
HIREDIS_LIBS := -lhiredis
CORE_HDRS := $(wildcard src/*.h)
CORE_OBJS := $(patsubst src/%.c,$(BUILD)/obj/core/%.o,$(CORE_SRCS))
# The Lua binding (lua_klaviyo.c opens it; one file a job), its JSON encoder (core.encode, and
# table bodies of c:request) and a request's steps for drivers in Lua (lua_call.c).
LUA_SRCS  := src/lua_klaviyo.c src/lua_client.c src/lua_request.c src/lua_result.c src/lua_batch.c \
             src/lua_policy.c src/lua_json.c src/lua_json_scalar.c src/lua_call.c src/lua_crypto.c
LUA_SRCS  += src/lua_readline.c src/lua_json_out.c src/lua_file.c
# Every source of the binding as core.so links it: LUA_SRCS and the tracker's spool files
# (mk/tracker.mk), i.e. every file of src/ that is not the core's.
BINDING_SRCS := $(filter-out $(CORE_SRCS),$(wildcard src/*.c))

# Lua headers per interpreter: pkg-config first, Debian's include dirs as the fallback.
lua_inc_lua5.1 := $(or $(shell pkg-config --cflags lua5.1 2>/dev/null),-I/usr/include/lua5.1)
lua_inc_lua5.3 := $(or $(shell pkg-config --cflags lua5.3 2>/dev/null),-I/usr/include/lua5.3)
lua_inc_lua5.4 := $(or $(shell pkg-config --cflags lua5.4 2>/dev/null),-I/usr/include/lua5.4)
lua_inc_luajit := $(or $(shell pkg-config --cflags luajit 2>/dev/null),-I/usr/include/luajit-2.1)

CORE_SOS  := $(foreach l,$(LUAS),$(BUILD)/$(l)/klaviyo/core.so)

build: core $(BUILD)/libklaviyo.a $(BUILD)/examples/track
core: $(CORE_SOS)

$(BUILD)/obj/core/%.o: src/%.c $(CORE_HDRS) mk/core.mk | $(REDIS_GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) $(CURL_CFLAGS) -I$(BUILD)/gen -c $< -o $@
$(BUILD)/obj/core/limiter_redis.o: $(REDIS_GEN_H)

$(BUILD)/libklaviyo.a: $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

# One rule per interpreter: the binding's objects are compiled against its headers.
define lua_so_rule
$(BUILD)/obj/$(1)/%.o: src/%.c $(CORE_HDRS) mk/core.mk
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CORE_CFLAGS) $$(lua_inc_$(1)) -c $$< -o $$@

$(BUILD)/$(1)/klaviyo/core.so: $(CORE_OBJS) $(patsubst src/%.c,$(BUILD)/obj/$(1)/%.o,$(LUA_SRCS))
	@mkdir -p $$(dir $$@)
	$$(CC) -shared -o $$@ $$^ $$(CURL_LIBS) $$(HIREDIS_LIBS)
endef
$(foreach l,$(LUAS),$(eval $(call lua_so_rule,$(l))))

$(BUILD)/examples/track: examples/track.c $(BUILD)/libklaviyo.a src/klaviyo.h
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -Isrc $< -o $@ $(BUILD)/libklaviyo.a $(CURL_LIBS) $(HIREDIS_LIBS)

# ---- C unit tests: every core source compiled with ASan/UBSan into each test ------------
SAN_CFLAGS := -std=c99 -Wall -Wextra -Werror -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer
CORE_TESTS := $(addprefix spec/c/,test_request.c test_response.c test_revision.c test_transport.c test_sendloop.c \
              test_uuid.c test_path.c test_duration.c test_redact.c)
CORE_TEST_BINS := $(patsubst spec/c/%.c,$(BUILD)/ctest/%,$(CORE_TESTS))
SAN_SRCS := $(CORE_SRCS)

$(BUILD)/ctest/%: spec/c/%.c $(SAN_SRCS) $(CORE_HDRS) $(wildcard spec/c/*.h) mk/core.mk $(REDIS_GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) $(CURL_CFLAGS) -Isrc -I$(BUILD)/gen -Ispec/c $< $(SAN_SRCS) -o $@ $(CURL_LIBS) $(HIREDIS_LIBS)

# The binding's contract and its hostile cases (BINDING_SPECS) against the emulator, on
# TEST_LUAS, and once more on lua5.4 under valgrind (leaks or memory errors in src/lua_klaviyo.c
# fail it).
BINDING_SPECS := spec/core/binding_spec.lua spec/core/hostile_binding_spec.lua
CORE_VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite
spec-core: core
	@fail=0; for l in $(TEST_LUAS); do echo "== binding_spec ($$l)"; \
	  LUA_PATH='$(call lua_path)' LUA_CPATH='$(BUILD)/'"$$l"'/?.so;;' \
	  $$l /usr/bin/busted --helper=spec/helpers/emulator.lua -o utfTerminal $(BINDING_SPECS) || fail=1; done; \
	exit $$fail

spec-core-valgrind: core
	@echo "== binding_spec (lua5.4, valgrind)"; out=$$(mktemp); \
	LUA_PATH='$(call lua_path)' LUA_CPATH='$(call lua_cpath,lua5.4)' \
	  $(CORE_VALGRIND) lua5.4 /usr/bin/busted --helper=spec/helpers/emulator.lua -o TAP \
	  $(BINDING_SPECS) >$$out 2>&1; rc=$$?; \
	grep -E '^not ok|^==[0-9]+==' $$out; \
	echo "binding-valgrind: $$(grep -cE '^ok [0-9]+' $$out) passed, $$(grep -cE '^not ok [0-9]+' $$out) failed"; \
	rm -f $$out; exit $$rc

# No two objects of src/ call each other (a cycle in who uses whose symbols, read from nm: the
# core's objects and the binding's as built for lua5.4), and no file of src/ or Lua module of
# lua/klaviyo/ (but the generated operations.lua) is over 600 lines.
LAYER_OBJS := $(CORE_OBJS) $(patsubst src/%.c,$(BUILD)/obj/lua5.4/%.o,$(BINDING_SRCS))
check-layering: $(LAYER_OBJS)
	@tools/check-layering $(LAYER_OBJS)

# Runs the layering check and the core's C tests, then whatever other fragments add to CTESTS (a list of targets,
# e.g. LIMIT's ctest-limiter; expanded at run time so include order does not matter), then
# examples/track under valgrind against a throwaway emulator, then the binding's spec under
# valgrind.
ctest: $(CORE_TEST_BINS) $(BUILD)/examples/track
	@fail=0; $(MAKE) --no-print-directory check-layering || fail=1; for t in $(CORE_TEST_BINS); do echo "== $$t"; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $$t || fail=1; done; \
	for t in $(CTESTS); do echo "== make $$t"; $(MAKE) --no-print-directory $$t || fail=1; done; \
	echo "== valgrind examples/track"; spec/c/valgrind-track $(BUILD)/examples/track || fail=1; \
	$(MAKE) --no-print-directory spec-core-valgrind || fail=1; \
	exit $$fail

# libFuzzer (clang): fuzz_core over answers, JSON, URLs and request pieces; fuzz_binding over
# answers turned into Lua values by the binding (c:interpret) in a Lua 5.4 state.  `make fuzz`
# runs every target for FUZZ_SECONDS each and prints "fuzz-<target>: 1 passed, 0 failed" (or
# 0 passed, 1 failed with the finding's report) per target; the findings stay in
# $(BUILD)/fuzz/<target>.log and crash-* files beside it.
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := fuzz_core fuzz_binding
FUZZ_CFLAGS := -std=c99 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/fuzz_core: spec/c/fuzz_core.c $(SAN_SRCS) $(CORE_HDRS) mk/core.mk $(REDIS_GEN_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(CURL_CFLAGS) -Isrc -I$(BUILD)/gen $< $(SAN_SRCS) -o $@ $(CURL_LIBS) $(HIREDIS_LIBS)

# the whole binding, as core.so links it
FUZZ_LUA_SRCS = $(sort $(BINDING_SRCS))
$(BUILD)/fuzz/fuzz_binding: spec/c/fuzz_binding.c $(SAN_SRCS) $(FUZZ_LUA_SRCS) $(CORE_HDRS) mk/core.mk \
                            $(REDIS_GEN_H)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) $(CURL_CFLAGS) $(lua_inc_lua5.4) -Isrc -I$(BUILD)/gen $< $(SAN_SRCS) $(FUZZ_LUA_SRCS) \
	  -o $@ $(CURL_LIBS) $(HIREDIS_LIBS) -llua5.4 -lm

fuzz-core fuzz-binding: fuzz-%: $(BUILD)/fuzz/fuzz_%
	@mkdir -p $(BUILD)/fuzz/corpus-$*
	$(BUILD)/fuzz/fuzz_$* -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=20 \
	  -artifact_prefix=$(BUILD)/fuzz/ $(BUILD)/fuzz/corpus-$*

fuzz: $(addprefix $(BUILD)/fuzz/,$(FUZZ_TARGETS))
	@fail=0; for t in $(FUZZ_TARGETS); do n=$$(echo $$t | tr _ -); \
	  if $(MAKE) --no-print-directory -s $$n >$(BUILD)/fuzz/$$t.log 2>&1; then echo "$$n: 1 passed, 0 failed"; \
	  else fail=1; echo "$$n: 0 passed, 1 failed (FAIL: $(BUILD)/fuzz/$$t.log)"; \
	    grep -E 'ERROR|SUMMARY|fuzz_binding:|Test unit written' $(BUILD)/fuzz/$$t.log | head -20; fi; done; \
	exit $$fail

# bench/call: client:call("create_event") requests/s next to a plain C libcurl loop.
bench-call: core
	bench/call

.PHONY: build core ctest check-layering spec-core spec-core-valgrind bench-call fuzz fuzz-core fuzz-binding
