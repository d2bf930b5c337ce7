# The batched, durable event tracker (lua/klaviyo/tracker.lua).
#   make spec-tracker    its specs on TEST_LUAS: the spool file alone, the tracker against the
#                        emulator, the crash test (SIGKILL a child tracking 50,000 events) and
#                        the fault test (100,000 events through 503s, resets and 429s)
#   make bench-tracker   bench/tracker: track / delivered / end-to-end events/s beside single
#                        create_event calls (this library and the official Node SDK), peak RSS
#                        for 1,000,000 events, and 2 minutes under the real rate limits
#   make lint-tracker    luacheck on the tracker's files
TRACKER_LUA := lua/klaviyo/tracker.lua $(wildcard lua/klaviyo/tracker/*.lua)

spec-tracker: core
	@for lua in $(TEST_LUAS); do echo "== $$lua"; \
	  LUA_PATH="$(call lua_path)" LUA_CPATH="$(call lua_cpath,$$lua)" \
	  $$lua /usr/bin/busted -o TAP spec/tracker || exit 1; done

bench-tracker: core
	bench/tracker

lint-tracker:
	luacheck $(TRACKER_LUA) spec/tracker bench/tracker.lua

.PHONY: spec-tracker bench-tracker lint-tracker

# The spool's C part (src/lua_spool.c: the writer's Lua methods; src/spool_file.c: appends
# through a mapped window; src/spool_read.c: the batch reader; src/lua_spool_lock.c: the
# owner lock; src/spool_record.c: a record's length and checksum; registered in
# src/lua_klaviyo.c as core.spool_writer, core.spool_check, core.fsync_path and
# core.spool_lock) is linked into klaviyo.core for every interpreter (core.mk's link recipe
# takes every prerequisite, so an extra one here is enough; the rock's build compiles every
# src/*.c).
$(foreach l,$(LUAS),$(eval $(BUILD)/$(l)/klaviyo/core.so: $(BUILD)/obj/$(l)/lua_spool.o \
  $(BUILD)/obj/$(l)/lua_spool_lock.o $(BUILD)/obj/$(l)/spool_record.o \
  $(BUILD)/obj/$(l)/spool_file.o $(BUILD)/obj/$(l)/spool_read.o))

# The spool record's trailer in C alone (ASan/UBSan), run by CORE's `ctest`.
CTESTS += ctest-spool
ctest-spool: $(BUILD)/ctest/test_spool_record
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 $<

$(BUILD)/ctest/test_spool_record: spec/c/test_spool_record.c src/spool_record.c src/spool_record.h \
  src/json_read.c src/json_read.h spec/c/ctest.h mk/tracker.mk
	@mkdir -p $(dir $@)
	$(CC) $(SAN_CFLAGS) -Isrc -Ispec/c $< src/spool_record.c src/json_read.c -o $@

.PHONY: ctest-spool
