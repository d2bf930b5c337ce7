# `make rock-check`: installs the rock with LuaRocks into throwaway trees (Lua 5.4, and Lua 5.1
# whose ABI LuaJIT shares), then, from a directory outside the source tree, requires klaviyo
# from each tree under lua5.4, lua5.1 and luajit and sends one event to the emulator
# (KLAVIYO_EMULATOR_URL, or one rockspec/check.lua starts on a free port). --deps-mode=none:
# no rocks server is reachable here; lua-cjson comes from Debian.
ROCKSPEC  := rockspec/lua-klaviyo-scm-1.rockspec
ROCK_TREE  = $(BUILD)/rocktree-$(1)
# Only the tree and the system directories (lua-cjson, LuaSocket): never the source tree.
tree_path  = $(1)/share/lua/$(2)/?.lua;$(1)/share/lua/$(2)/?/init.lua;;
tree_cpath = $(1)/lib/lua/$(2)/?.so;;

rock-install:
	rm -rf $(call ROCK_TREE,5.4) $(call ROCK_TREE,5.1) $(BUILD)/rock
	luarocks --lua-version 5.4 make --deps-mode=none --tree $(call ROCK_TREE,5.4) $(ROCKSPEC)
	luarocks --lua-version 5.1 make --deps-mode=none --tree $(call ROCK_TREE,5.1) $(ROCKSPEC)

# $(call rock_checks,TREE_5.4,TREE_5.1,NAME): rockspec/check.lua from a directory outside the
# source tree under lua5.4 (first tree), lua5.1 and luajit (second tree); prints each run and
# "NAME: N passed, N failed". Also used by `make dist-check` (mk/dist.mk).
define rock_checks
@set -e; out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; cd "$$out"; fail=0; np=0; nf=0; \
	for pair in lua5.4:5.4 lua5.1:5.1 luajit:5.1; do \
	  interp=$${pair%%:*}; ver=$${pair##*:}; \
	  if [ "$$ver" = 5.4 ]; then t='$(1)'; p='$(call tree_path,$(1),5.4)'; c='$(call tree_cpath,$(1),5.4)'; \
	  else t='$(2)'; p='$(call tree_path,$(2),5.1)'; c='$(call tree_cpath,$(2),5.1)'; fi; \
	  echo "== $$interp (tree $$ver)"; \
	  LUA_PATH="$$p" LUA_CPATH="$$c" $$interp $(ROOT)/rockspec/check.lua \
	    "$$t" $(ROOT)/emulator/klaviyo-emulator > run.log 2>&1 || fail=1; \
	  cat run.log; last=$$(tail -n 1 run.log); \
	  case "$$last" in *" passed, "*" failed") \
	    np=$$((np + $${last%% passed*})); f=$${last#*passed, }; nf=$$((nf + $${f%% failed})) ;; \
	  *) nf=$$((nf + 1)); fail=1 ;; esac; \
	done; echo "$(3): $$np passed, $$nf failed"; exit $$fail
endef

rock-check: rock-install
	$(call rock_checks,$(call ROCK_TREE,5.4),$(call ROCK_TREE,5.1),rock-check)

.PHONY: rock-install rock-check
