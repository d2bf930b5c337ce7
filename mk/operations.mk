# The operation table, generated from Klaviyo's OpenAPI spec (facts only).
operations: $(BUILD)/.deb-stamp
	lua5.4 tools/gen-operations.lua $(SPEC_JSON) > lua/klaviyo/operations.lua.tmp
	mv lua/klaviyo/operations.lua.tmp lua/klaviyo/operations.lua

.PHONY: operations
