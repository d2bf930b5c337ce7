# `make docs`: HTML reference of the idiomatic modules with LDoc (Debian lua-ldoc), written to
# build/docs. Any warning LDoc prints fails the target, so the docs stay warning-free.
docs: $(BUILD)/.deb-stamp
	@rm -rf $(BUILD)/docs
	@out=$$(ldoc -c config.ld . 2>&1); status=$$?; \
	  warnings=$$(printf '%s\n' "$$out" | grep -v -e '^reading configuration from' -e '^output written to'); \
	  if [ $$status -ne 0 ] || [ -n "$$warnings" ]; then printf '%s\n' "$$out" >&2; \
	    echo "make docs: LDoc reported problems" >&2; exit 1; fi
	@echo "docs: $(BUILD)/docs/index.html"

.PHONY: docs
