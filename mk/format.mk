# `make format-check`: the C sources against .clang-format (Debian clang-format); fails on the
# first file clang-format would change and shows where.  `make format` rewrites them in place.
FORMAT_SRCS = $(wildcard src/*.c src/*.h spec/c/*.c bench/*.c examples/*.c)

format-check: $(BUILD)/.deb-stamp
	clang-format --dry-run --Werror $(FORMAT_SRCS)

format: $(BUILD)/.deb-stamp
	clang-format -i $(FORMAT_SRCS)

.PHONY: format-check format
