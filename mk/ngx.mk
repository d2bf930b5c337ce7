# OpenResty/nginx: the ngx transport's specs (spec/ngx, also part of `make test`) and its bench.
#   make spec-ngx          busted spec/ngx under each of TEST_LUAS (nginx runs LuaJIT inside)
#   make bench-openresty   bench/openresty/run (about 2.5 minutes: not blocking, then 4 workers x 90 s)
spec-ngx: core
	@for lua in $(TEST_LUAS); do \
	  echo "== spec/ngx under $$lua"; \
	  LUA_PATH="$(call lua_path)" LUA_CPATH="$(call lua_cpath,$$lua)" $$lua /usr/bin/busted -o TAP spec/ngx || exit 1; \
	done

bench-openresty: core
	bench/openresty/run $(BENCH_SECONDS)

.PHONY: spec-ngx bench-openresty
