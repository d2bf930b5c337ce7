# The local Klaviyo: `make emulator` serves it in the foreground on port 8787.
EMULATOR_PORT ?= 8787

emulator: $(BUILD)/.deb-stamp
	$(ROOT)/emulator/klaviyo-emulator run --port $(EMULATOR_PORT)

.PHONY: emulator
