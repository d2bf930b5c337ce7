# The operation table, generated from Klaviyo's OpenAPI spec (facts only).
#   make operations        regenerates lua/klaviyo/operations.lua from $(OPENAPI)
#   make operations-check  the committed table is byte for byte what the generator writes
OPERATIONS_LUA := lua/klaviyo/operations.lua

operations: $(BUILD)/.deb-stamp
	lua5.4 tools/gen-operations.lua $(OPENAPI) > $(OPERATIONS_LUA).tmp
	mv $(OPERATIONS_LUA).tmp $(OPERATIONS_LUA)

operations-check:
	@out=$$(mktemp); trap 'rm -f "$$out"' EXIT; \
	if lua5.4 tools/gen-operations.lua $(OPENAPI) > "$$out" && cmp -s "$$out" $(OPERATIONS_LUA); then \
	  echo "operations: 1 passed, 0 failed"; \
	else echo "$(OPERATIONS_LUA) differs from what tools/gen-operations.lua writes: run make operations"; \
	  echo "operations: 0 passed, 1 failed"; exit 1; fi

.PHONY: operations operations-check
