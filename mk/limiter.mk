# Rate limiter, retry policy and JSON encoder: pure functions of their inputs
# and a clock, so their tests need no network and no emulator.
#   make ctest-limiter   C tests under ASan/UBSan, then again under valgrind (a plain build:
#                        the two do not mix), then the encoder's busted spec on TEST_LUAS,
#                        then that spec on lua5.4 with the encoder under ASan/UBSan and
#                        under valgrind
#   make spec-encode     only the encoder spec (spec/unit/encode_spec.lua) on TEST_LUAS
# CORE's `ctest` runs every target listed in CTESTS.
CTESTS += ctest-limiter

LIMIT_SAN_CFLAGS := -std=c99 -Wall -Wextra -Werror -O1 -g -fno-omit-frame-pointer \
                    -fsanitize=address,undefined -fno-sanitize-recover=all
LIMIT_VG_CFLAGS  := -std=c99 -Wall -Wextra -Werror -O1 -g
LIMIT_OUT        := $(BUILD)/ctest-limit
LIMIT_TESTS      := test_limiter test_retry
LIMIT_COMMA      := ,
# The encoder spec talks to no emulator: a URL set here keeps the busted helper (.busted)
# from starting one under the preloaded sanitizers or valgrind (which hangs or crawls).
LIMIT_NO_EMULATOR := http://127.0.0.1:9
LIMIT_VALGRIND   := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=all

# test_limiter -> src/limiter.c (linked so that the test can make malloc/calloc fail),
# test_retry -> src/retry.c (allocates nothing)
define limit_test_rule
$(LIMIT_OUT)/asan/$(1): spec/c/$(1).c spec/c/ctest.h src/$(2).c src/$(2).h mk/limiter.mk
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LIMIT_SAN_CFLAGS) -Isrc $$< src/$(2).c -o $$@ $(3)
$(LIMIT_OUT)/plain/$(1): spec/c/$(1).c spec/c/ctest.h src/$(2).c src/$(2).h mk/limiter.mk
	@mkdir -p $$(dir $$@)
	$$(CC) $$(LIMIT_VG_CFLAGS) -Isrc $$< src/$(2).c -o $$@ $(3)
endef
$(eval $(call limit_test_rule,test_limiter,limiter,-Wl$(LIMIT_COMMA)--wrap=malloc$(LIMIT_COMMA)--wrap=calloc))
$(eval $(call limit_test_rule,test_retry,retry,))

# The encoder as a module of its own (klaviyo.json_shim), built here from the current
# source, so spec-encode never tests a stale core.so. In the full suite (make test) the
# same spec tests klaviyo.core's encode.
LIMIT_SHIMS := $(foreach l,$(TEST_LUAS),$(BUILD)/$(l)/klaviyo/json_shim.so)
limit_lua_inc = $(if $(filter luajit,$(1)),-I/usr/include/luajit-2.1,-I/usr/include/$(1))
$(BUILD)/%/klaviyo/json_shim.so: src/lua_json.c src/lua_json_scalar.c src/lua_json_out.c src/lua_json.h \
  src/lua_json_enc.h src/uuid.c src/uuid.h mk/limiter.mk
	@mkdir -p $(dir $@)
	$(CC) -std=c99 -Wall -Wextra -Werror -O2 -fPIC -shared -DKL_JSON_STANDALONE \
	  $(call limit_lua_inc,$*) src/lua_json.c src/lua_json_scalar.c src/lua_json_out.c src/uuid.c -o $@

# The same module with ASan/UBSan, loaded into the stock interpreter by preloading the
# runtimes (leak detection off: the interpreter itself is not instrumented; valgrind
# checks leaks below).
LIMIT_ASAN_SHIM := $(LIMIT_OUT)/asan-lua5.4/klaviyo/json_shim.so
$(LIMIT_ASAN_SHIM): src/lua_json.c src/lua_json_scalar.c src/lua_json_out.c src/lua_json.h \
  src/lua_json_enc.h src/uuid.c src/uuid.h mk/limiter.mk
	@mkdir -p $(dir $@)
	$(CC) $(LIMIT_SAN_CFLAGS) -fPIC -shared -DKL_JSON_STANDALONE -I/usr/include/lua5.4 src/lua_json.c src/lua_json_scalar.c \
	  src/lua_json_out.c src/uuid.c -o $@

ctest-limiter: $(addprefix $(LIMIT_OUT)/asan/,$(LIMIT_TESTS)) \
               $(addprefix $(LIMIT_OUT)/plain/,$(LIMIT_TESTS)) $(LIMIT_SHIMS) $(LIMIT_ASAN_SHIM) \
               $(BUILD)/lua5.4/klaviyo/json_shim.so
	@fail=0; for t in $(LIMIT_TESTS); do \
	  echo "== $$t (ASan/UBSan)"; \
	  ASAN_OPTIONS=detect_leaks=1 $(LIMIT_OUT)/asan/$$t lua/klaviyo/operations.lua | tail -n 1; \
	  [ $${PIPESTATUS[0]} = 0 ] || fail=1; \
	  echo "== $$t (valgrind)"; \
	  $(LIMIT_VALGRIND) $(LIMIT_OUT)/plain/$$t lua/klaviyo/operations.lua | tail -n 1; \
	  [ $${PIPESTATUS[0]} = 0 ] || fail=1; \
	done; \
	$(MAKE) --no-print-directory spec-encode || fail=1; \
	echo "== encode_spec (lua5.4, encoder under ASan/UBSan)"; \
	KLAVIYO_EMULATOR_URL=$(LIMIT_NO_EMULATOR) ASAN_OPTIONS=detect_leaks=0 LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) \
	  $$($(CC) -print-file-name=libubsan.so)" KLAVIYO_ENCODE_MODULE=klaviyo.json_shim \
	  LUA_PATH='$(call lua_path)' LUA_CPATH="$(LIMIT_OUT)/asan-lua5.4/?.so;;" \
	  lua5.4 /usr/bin/busted -o utfTerminal spec/unit/encode_spec.lua | tail -n 1; \
	[ $${PIPESTATUS[0]} = 0 ] || fail=1; \
	echo "== encode_spec (lua5.4, valgrind)"; \
	KLAVIYO_EMULATOR_URL=$(LIMIT_NO_EMULATOR) KLAVIYO_ENCODE_MODULE=klaviyo.json_shim LUA_PATH='$(call lua_path)' \
	  LUA_CPATH="$(BUILD)/lua5.4/?.so;;" \
	  $(LIMIT_VALGRIND) lua5.4 /usr/bin/busted -o utfTerminal spec/unit/encode_spec.lua | tail -n 1; \
	[ $${PIPESTATUS[0]} = 0 ] || fail=1; \
	exit $$fail

spec-encode: $(LIMIT_SHIMS)
	@fail=0; for l in $(TEST_LUAS); do echo "== encode_spec ($$l)"; \
	  KLAVIYO_ENCODE_MODULE=klaviyo.json_shim \
	  LUA_PATH='$(call lua_path)' LUA_CPATH="$(BUILD)/$$l/?.so;;" \
	  $$l /usr/bin/busted -o utfTerminal spec/unit/encode_spec.lua || fail=1; done; \
	exit $$fail

.PHONY: ctest-limiter spec-encode
