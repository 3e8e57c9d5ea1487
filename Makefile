# egress: top-level build.
#
#   make deps    install the Debian packages (as root, idempotent)
#   make         build everything into build/
#   make test    deps + build + unit, fuzz and e2e tests, plain and under ASan/UBSan
#   make check   the same tests without installing packages or the sanitizer pass
#   make demo    the end-to-end demo on local defaults
#   make bench   benchmarks (not part of make test)
#
# SAN=1 builds into build/asan with AddressSanitizer + UBSan.

SAN       ?=
ifeq ($(SAN),1)
BUILD     ?= build/asan
else
BUILD     ?= build
endif

CC        ?= gcc
FUZZ_CC   ?= clang
PKGS      := libwebsockets jansson openssl sqlite3 libuv
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN      := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wstrict-prototypes \
             -Wmissing-prototypes -Wno-unused-parameter
CSTD      := -std=c11 -D_GNU_SOURCE
OPT       := -O2 -g
SANFLAGS  :=
ifeq ($(SAN),1)
OPT       := -O1 -g -fno-omit-frame-pointer
SANFLAGS  := -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif

CFLAGS    ?=
CFLAGS    += $(CSTD) $(WARN) $(OPT) $(SANFLAGS) -fPIC -Ilib $(PKG_CFLAGS)
LDFLAGS   += $(SANFLAGS)

.PHONY: all deps test check check-unit check-fuzz check-t check-san fuzz demo bench \
        format format-check clean

all:

include lib/lib.mk
include coordinator/coordinator.mk
include agent/agent.mk
include ngx_egress_module/module.mk

# Benchmark load tools: built with everything so they cannot rot unnoticed.
BENCH_TOOLS := $(BUILD)/bench/origin $(BUILD)/bench/loadgen $(BUILD)/bench/wsbridge $(BUILD)/bench/delayrelay
all: $(BENCH_TOOLS)
$(BUILD)/bench/%: bench/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) $(OPT) $(SANFLAGS) -o $@ $< $(LDFLAGS) -lm

deps:
	@sh tools/install-deps.sh

test: deps
	$(MAKE) format-check
	$(MAKE) all
	$(MAKE) check-unit check-fuzz check-t
	$(MAKE) check-san

check: all
	$(MAKE) check-unit check-fuzz check-t

check-unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

# Sanitizer pass: unit tests and the e2e suite against the ASan/UBSan build.
check-san:
	$(MAKE) SAN=1 all
	$(MAKE) SAN=1 check-unit
	EGRESS_BUILD=$(CURDIR)/build/asan EGRESS_SAN=1 prove -j2 -I t/lib t/

check-t: all
	EGRESS_BUILD=$(CURDIR)/$(BUILD) prove -j2 -I t/lib t/

fuzz: $(FUZZ_TARGETS)

# Bounded runs from the checked-in corpora. libFuzzer writes new inputs into
# its first corpus directory, so a scratch directory under build/ goes first
# and the checked-in seeds stay untouched.
# A slow target lowers its own count in its .mk: FUZZ_RUNS_CAP += NAME=RUNS.
FUZZ_RUNS ?= 200000
check-fuzz: $(FUZZ_TARGETS)
	@set -e; for f in $(FUZZ_TARGETS); do \
	    n=$$(basename $$f); r=$(FUZZ_RUNS); \
	    for cap in $(FUZZ_RUNS_CAP); do \
	        [ "$${cap%%=*}" = "$$n" ] && [ "$${cap#*=}" -lt "$$r" ] && r=$${cap#*=}; \
	    done; \
	    echo "== $$n ($$r runs)"; \
	    mkdir -p build/fuzz/work-$$n; \
	    c=lib/fuzz/corpus/$${n#fuzz_}; [ -d $$c ] || c=coordinator/fuzz/corpus/$${n#fuzz_}; \
	    [ -d $$c ] || c=ngx_egress_module/fuzz/corpus/$${n#fuzz_}; \
	    if ! $$f -runs=$$r -max_len=65536 -print_final_stats=0 \
	            build/fuzz/work-$$n $$c > build/fuzz/$$n.log 2>&1; then \
	        tail -n 40 build/fuzz/$$n.log; exit 1; \
	    fi; \
	    tail -n 1 build/fuzz/$$n.log; \
	done

demo: deps
	$(MAKE) all
	@sh tools/demo.sh

bench:
	-$(MAKE) all
	@sh bench/run.sh

SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run --Werror $(SOURCES)

clean:
	rm -rf build
