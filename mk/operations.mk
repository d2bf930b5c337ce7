# The operation table, generated from Klaviyo's OpenAPI spec (facts only).
#   make operations        regenerates lua/klaviyo/operations.lua from $(OPENAPI), and
#                          docs/query-checks.md (what the query checks allow, per operation)
#   make operations-check  both committed files are byte for byte what the generator writes
OPERATIONS_LUA := lua/klaviyo/operations.lua
QUERY_CHECKS_MD := docs/query-checks.md

operations: $(BUILD)/.deb-stamp
	lua5.4 tools/gen-operations.lua $(OPENAPI) > $(OPERATIONS_LUA).tmp
	mv $(OPERATIONS_LUA).tmp $(OPERATIONS_LUA)
	lua5.4 tools/gen-operations.lua $(OPENAPI) --checks-doc > $(QUERY_CHECKS_MD).tmp
	mv $(QUERY_CHECKS_MD).tmp $(QUERY_CHECKS_MD)

operations-check:
	@out=$$(mktemp); doc=$$(mktemp); trap 'rm -f "$$out" "$$doc"' EXIT; \
	if lua5.4 tools/gen-operations.lua $(OPENAPI) > "$$out" && cmp -s "$$out" $(OPERATIONS_LUA) && \
	   lua5.4 tools/gen-operations.lua $(OPENAPI) --checks-doc > "$$doc" && cmp -s "$$doc" $(QUERY_CHECKS_MD); then \
	  echo "operations: 1 passed, 0 failed"; \
	else echo "$(OPERATIONS_LUA) or $(QUERY_CHECKS_MD) differs from what tools/gen-operations.lua writes:" \
	  "run make operations"; \
	  echo "operations: 0 passed, 1 failed"; exit 1; fi

.PHONY: operations operations-check
