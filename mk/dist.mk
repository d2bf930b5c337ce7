# Versions and releases. The version lives in VERSION only; tools/stamp-version.lua writes it
# into src/klaviyo.h, lua/klaviyo/init.lua and rockspec/lua-klaviyo-<version>-1.rockspec.
#   make version        stamps it (every `make build` does this first)
#   make version-check  the stamped files agree with VERSION ("version: N passed, N failed")
#   make dist           from the committed HEAD: build/dist/lua-klaviyo-<v>.tar.gz (git
#                       archive, unpacking into lua-klaviyo-<v>/) and the source rock
#                       build/dist/lua-klaviyo-<v>-1.src.rock (the versioned rockspec and
#                       that tarball, which its source url names, in the zip LuaRocks reads)
#   make dist-check     installs that source rock with LuaRocks into empty trees (Lua 5.4,
#                       and 5.1 for LuaJIT), from outside the source tree with
#                       --deps-mode=none, and runs rockspec/check.lua from each (as rock-check);
#                       then the same with the rock built without hiredis (HIREDIS=0)
KL_RELEASE := $(shell cat $(ROOT)/VERSION 2>/dev/null)
DIST_NAME  := lua-klaviyo-$(KL_RELEASE)
DIST_DIR   := $(BUILD)/dist
DIST_TAR   := $(DIST_DIR)/$(DIST_NAME).tar.gz
DIST_SPEC  := rockspec/$(DIST_NAME)-1.rockspec
DIST_ROCK  := $(DIST_DIR)/$(DIST_NAME)-1.src.rock
# What carries the version: a release is made only when HEAD holds them as VERSION says.
VERSIONED  := VERSION src/klaviyo.h lua/klaviyo/init.lua $(DIST_SPEC)

version:
	@lua5.4 tools/stamp-version.lua >/dev/null

version-check:
	@lua5.4 tools/stamp-version.lua --check

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
# dist_install VERSION TREE [ENV]: the source rock into an empty TREE, from outside the source tree
dist_install = rm -rf $(2) && cd $(DIST_DIR) && \
  $(3) luarocks --lua-version $(1) install --deps-mode=none --tree $(2) $(DIST_ROCK)

# Twice: as built here, and built without hiredis (HIREDIS=0, as where it is not installed).
dist-check: dist
	$(call dist_install,5.4,$(call DIST_TREE,5.4))
	$(call dist_install,5.1,$(call DIST_TREE,5.1))
	$(call rock_checks,$(call DIST_TREE,5.4),$(call DIST_TREE,5.1),dist-check)
	@$(MAKE) --no-print-directory dist-check-nohiredis

dist-check-nohiredis: export KLAVIYO_ROCK_HIREDIS := 0
dist-check-nohiredis:
	$(call dist_install,5.4,$(call DIST_TREE,nohiredis-5.4),HIREDIS=0)
	$(call dist_install,5.1,$(call DIST_TREE,nohiredis-5.1),HIREDIS=0)
	$(call rock_checks,$(call DIST_TREE,nohiredis-5.4),$(call DIST_TREE,nohiredis-5.1),dist-check-nohiredis)

.PHONY: version version-check dist dist-check dist-check-nohiredis
