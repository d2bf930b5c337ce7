# lua-klaviyo. The two commands a newcomer needs: `make demo` and `make test`.
# Each part of the build lives in its own fragment under mk/ (one job each).
SHELL := /bin/bash
.DEFAULT_GOAL := all

ROOT      := $(abspath .)
# Klaviyo's OpenAPI spec (MIT, openapi/LICENSE): the generator, the contract check and the
# tests read it from here.
OPENAPI   := $(ROOT)/openapi/klaviyo-stable-2026-07-15.json
BUILD     := $(ROOT)/build
# Generated from lua/klaviyo/limiter/redis_script.lua by mk/redis.mk; compiled into the core.
REDIS_GEN_H := $(BUILD)/gen/redis_script.h

# Interpreters the library supports; the suite runs on TEST_LUAS.
LUAS      := lua5.1 lua5.3 lua5.4 luajit
TEST_LUAS ?= lua5.4 luajit

# Module search paths for running from the source tree with interpreter $(1).
lua_path  = $(ROOT)/lua/?.lua;$(ROOT)/lua/?/init.lua;$(ROOT)/spec/?.lua;$(ROOT)/emulator/lua/?.lua;;
lua_cpath = $(BUILD)/$(1)/?.so;;

# The version lives in VERSION only: every build first stamps it where it is compiled in
# (`make version`, mk/dist.mk).
build: version

include mk/deps.mk
include $(sort $(filter-out mk/deps.mk,$(wildcard mk/*.mk)))

all: build

.PHONY: all
