# The request body checks, generated from Klaviyo's OpenAPI spec: one Lua file per operation
# with a JSON body under lua/klaviyo/bodies/, the checks several operations share in
# _shared_NN.lua there, `klaviyo describe`'s shape fragments in _shapes.lua (tools/gen-bodies.lua;
# klaviyo.body_check runs them).
#   make bodies        regenerates them from $(OPENAPI)
#   make bodies-check  the committed files are byte for byte what the generator writes
BODIES_DIR := lua/klaviyo/bodies

bodies: $(BUILD)/.deb-stamp
	rm -rf $(BODIES_DIR).tmp && mkdir -p $(BODIES_DIR).tmp
	lua5.4 tools/gen-bodies.lua $(OPENAPI) $(BODIES_DIR).tmp
	rm -rf $(BODIES_DIR) && mv $(BODIES_DIR).tmp $(BODIES_DIR)

bodies-check:
	@out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	if lua5.4 tools/gen-bodies.lua $(OPENAPI) "$$out" && diff -rq "$$out" $(BODIES_DIR) >/dev/null; then \
	  echo "bodies: 1 passed, 0 failed"; \
	else echo "$(BODIES_DIR) differs from what tools/gen-bodies.lua writes: run make bodies"; \
	  echo "bodies: 0 passed, 1 failed"; exit 1; fi

.PHONY: bodies bodies-check
