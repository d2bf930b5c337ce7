# `make deps`: install what is missing, from Debian and npm only. Safe to run repeatedly.
DEB_PACKAGES := lua5.1 lua5.3 lua5.4 luajit2 liblua5.1-0-dev liblua5.3-dev liblua5.4-dev \
  libluajit2-5.1-dev lua-busted lua-cjson lua-socket lua-check lua-ldoc luarocks \
  libcurl4-openssl-dev libssl-dev pkg-config nginx libnginx-mod-http-lua valgrind clang wrk \
  redis-server libhiredis-dev lua-nginx-redis nodejs curl openssl lua-discount clang-format

deps: $(BUILD)/.deb-stamp $(ROOT)/tools/node/node_modules/.stamp

$(BUILD)/.deb-stamp: mk/deps.mk
	@missing=$$(for p in $(DEB_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  if [ "$$(id -u)" != 0 ]; then echo "make deps: need root to install: $$missing" >&2; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi
	@# Debian starts the system nginx/redis on install; the project never uses them.
	@mkdir -p $(BUILD) && touch $@

$(ROOT)/tools/node/node_modules/.stamp: tools/node/package.json $(BUILD)/.deb-stamp
	@command -v npm >/dev/null || { echo "make deps: npm is missing (it comes with nodejs)" >&2; exit 1; }
	cd tools/node && npm install --no-audit --no-fund --loglevel=error
	@touch $@

.PHONY: deps
