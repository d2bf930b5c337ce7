# `make contract-check`: validates what an emulator recorded against Klaviyo's OpenAPI spec
# (tools/contract-check.js, Ajv). Give exactly one source:
#   make contract-check EMULATOR_URL=http://127.0.0.1:8787   (its GET /__emulator/requests)
#   make contract-check CONTRACT_JOURNAL=build/results/exchanges.jsonl   (emulator --journal)
#   make contract-check CONTRACT_DUMP=requests.json   (a saved GET /__emulator/requests answer)
# `make contract-unit`: the check's own tests (node:test, no emulator).
CONTRACT_SOURCE = $(strip \
  $(if $(EMULATOR_URL),--url $(EMULATOR_URL)) \
  $(if $(CONTRACT_JOURNAL),--journal $(CONTRACT_JOURNAL)) \
  $(if $(CONTRACT_DUMP),--dump $(CONTRACT_DUMP)))

contract-check: $(ROOT)/tools/node/node_modules/.stamp
	@if [ -z "$(CONTRACT_SOURCE)" ]; then \
	  echo "make contract-check: set EMULATOR_URL, CONTRACT_JOURNAL or CONTRACT_DUMP" >&2; exit 2; fi
	node $(ROOT)/tools/contract-check.js $(CONTRACT_SOURCE)

contract-unit: $(ROOT)/tools/node/node_modules/.stamp
	node --test $(ROOT)/spec/sdk/contract_check_test.js

.PHONY: contract-check contract-unit
