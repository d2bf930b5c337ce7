# `make test`: installs what is missing, builds, runs every suite against one emulator and
# ends with the real totals (tools/test-all). `make demo`: the quickstart against the emulator.
test: deps build
	@tools/test-all

# Every example, each against a fresh emulator account (needs KLAVIYO_EMULATOR_URL).
run-examples: build
	@tools/run-examples

demo: deps build
	@tools/demo

.PHONY: test run-examples demo
