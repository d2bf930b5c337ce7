# Versions and releases. The version lives in VERSION only; tools/stamp-version writes it
# into src/klaviyo.h, lua/klaviyo/init.lua and rockspec/lua-klaviyo-<version>-1.rockspec.
#   make version        stamps it (every `make build` does this first)
#   make version-check  the stamped files agree with VERSION ("version: N passed, N failed")
#   make dist           from the committed HEAD: build/dist/lua-klaviyo-<v>.tar.gz (git
#                       archive, unpacking into lua-klaviyo-<v>/) and the source rock
#                       build/dist/lua-klaviyo-<v>-1.src.rock (the versioned rockspec and
#                       that tarball, which its source url names, in the zip LuaRocks reads)
#   make dist-check     installs that source rock with LuaRocks into empty trees (Lua 5.4,
#                       and 5.1 for LuaJIT), from outside the source tree with
#                       --deps-mode=none, and runs rockspec/check.lua from each (as rock-check)
KL_RELEASE := $(shell cat $(ROOT)/VERSION 2>/dev/null)
DIST_NAME  := lua-klaviyo-$(KL_RELEASE)
DIST_DIR   := $(BUILD)/dist
DIST_TAR   := $(DIST_DIR)/$(DIST_NAME).tar.gz
DIST_SPEC  := rockspec/$(DIST_NAME)-1.rockspec
DIST_ROCK  := $(DIST_DIR)/$(DIST_NAME)-1.src.rock
# What carries the version: a release is made only when HEAD holds them as VERSION says.
VERSIONED  := VERSION src/klaviyo.h lua/klaviyo/init.lua $(DIST_SPEC)

version:
	@lua5.4 tools/stamp-version >/dev/null

version-check:
	@lua5.4 tools/stamp-version --check

# The tarball is what HEAD holds (the generated operation table is committed; the rock's
# build needs no other generated file), so uncommitted version stamps stop the release.
dist: version-check
	@git diff --quiet HEAD -- $(VERSIONED) && git ls-files --error-unmatch $(VERSIONED) >/dev/null 2>&1 || \
	  { echo "make dist: commit $(VERSIONED) first (make version stamps them)" >&2; exit 1; }
	rm -rf $(DIST_DIR) && mkdir -p $(DIST_DIR)/rock
	git archive --format=tar.gz --prefix=$(DIST_NAME)/ -o $(DIST_TAR) HEAD
	cp $(DIST_SPEC) $(DIST_TAR) $(DIST_DIR)/rock/
	cd $(DIST_DIR)/rock && zip -q -X ../$(notdir $(DIST_ROCK)) $(notdir $(DIST_SPEC)) $(notdir $(DIST_TAR))
	rm -rf $(DIST_DIR)/rock
	@echo "dist: $(DIST_TAR)"; echo "dist: $(DIST_ROCK)"

DIST_TREE = $(DIST_DIR)/tree-$(1)

dist-check: dist
	rm -rf $(call DIST_TREE,5.4) $(call DIST_TREE,5.1)
	cd $(DIST_DIR) && for v in 5.4 5.1; do \
	  luarocks --lua-version $$v install --deps-mode=none --tree $(DIST_DIR)/tree-$$v $(DIST_ROCK) || exit 1; done
	$(call rock_checks,$(call DIST_TREE,5.4),$(call DIST_TREE,5.1),dist-check)

.PHONY: version version-check dist dist-check
