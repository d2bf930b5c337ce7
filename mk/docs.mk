# `make docs`: HTML reference of the modules config.ld lists, with LDoc (Debian lua-ldoc),
# written to build/docs. A public function with no doc comment (tools/docs-check) and any
# warning LDoc prints fail the target, so the docs stay complete and warning-free.
docs: $(BUILD)/.deb-stamp
	@lua5.4 tools/docs-check
	@rm -rf $(BUILD)/docs
	@out=$$(ldoc -c config.ld . 2>&1); status=$$?; \
	  warnings=$$(printf '%s\n' "$$out" | grep -v -e '^reading configuration from' -e '^output written to'); \
	  if [ $$status -ne 0 ] || [ -n "$$warnings" ]; then printf '%s\n' "$$out" >&2; \
	    echo "make docs: LDoc reported problems" >&2; exit 1; fi
	@echo "docs: $(BUILD)/docs/index.html"

.PHONY: docs
