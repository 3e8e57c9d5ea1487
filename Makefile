# egress: top-level build.
#
#   make deps    install the Debian packages (as root, idempotent)
#   make         build everything into build/
#   make test    deps + build + unit, fuzz and e2e tests, plain and under ASan/UBSan
#   make check   the same tests without installing packages or the sanitizer pass
#   make demo    the end-to-end demo on local defaults
#   make bench   benchmarks (not part of make test)
#   make install install the programs, module, man pages and units
#                (PREFIX=/usr/local, DESTDIR= for staging)
#   make deb     Debian packages into build/deb/ (dpkg-buildpackage)
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
        format format-check clean programs install deb

all:

include lib/lib.mk
include coordinator/coordinator.mk
include agent/agent.mk
include ngx_egress_module/module.mk
include docs/man/man.mk
include debian/deb.mk

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
	$(MAKE) check-pg
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

# What `make install` puts where. The Debian packaging runs it with
# PREFIX=/usr into its staging DESTDIR; units and the config file name the
# installed paths (substituted below).
PREFIX          ?= /usr/local
DESTDIR         ?=
BINDIR          ?= $(PREFIX)/bin
SBINDIR         ?= $(PREFIX)/sbin
MANDIR          ?= $(PREFIX)/share/man
NGX_MODULES_DIR ?= $(PREFIX)/lib/nginx/modules
NGX_MODCONF_DIR ?= $(PREFIX)/share/nginx/modules-available
SYSUSERS_DIR    ?= $(PREFIX)/lib/sysusers.d
UNIT_DIR        ?= $(PREFIX)/lib/systemd/system
USER_UNIT_DIR   ?= $(PREFIX)/lib/systemd/user
BASHCOMP_DIR    ?= $(PREFIX)/share/bash-completion/completions
ifeq ($(PREFIX),/usr)
SYSCONFDIR      ?= /etc
else
SYSCONFDIR      ?= $(PREFIX)/etc
endif
INSTALL         ?= install
UNIT_SUBST       = sed -e 's|/usr/sbin/egress-coordinator|$(SBINDIR)/egress-coordinator|' \
                       -e 's|/usr/bin/egress|$(BINDIR)/egress|' \
                       -e 's|/etc/egress/|$(SYSCONFDIR)/egress/|'

programs: $(AGENT_BIN) $(COORD_BIN) $(MODULE_SO) $(MAN_PAGES)

install: programs
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(NGX_MODULES_DIR) \
	    $(DESTDIR)$(NGX_MODCONF_DIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 \
	    $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSCONFDIR)/egress $(DESTDIR)$(SYSUSERS_DIR) \
	    $(DESTDIR)$(UNIT_DIR) $(DESTDIR)$(USER_UNIT_DIR) $(DESTDIR)$(BASHCOMP_DIR)
	$(INSTALL) -m 0755 $(AGENT_BIN) $(DESTDIR)$(BINDIR)/egress
	$(INSTALL) -m 0755 $(COORD_BIN) $(DESTDIR)$(SBINDIR)/egress-coordinator
	$(INSTALL) -m 0644 $(MODULE_SO) $(DESTDIR)$(NGX_MODULES_DIR)/ngx_stream_egress_module.so
	echo 'load_module $(NGX_MODULES_DIR)/ngx_stream_egress_module.so;' \
	    > $(DESTDIR)$(NGX_MODCONF_DIR)/mod-stream-egress.conf
	chmod 0644 $(DESTDIR)$(NGX_MODCONF_DIR)/mod-stream-egress.conf
	$(INSTALL) -m 0644 $(BUILD)/man/egress.1 $(DESTDIR)$(MANDIR)/man1/egress.1
	$(INSTALL) -m 0644 $(BUILD)/man/egress.5 $(DESTDIR)$(MANDIR)/man5/egress.5
	$(INSTALL) -m 0644 $(BUILD)/man/egress-coordinator.8 \
	    $(DESTDIR)$(MANDIR)/man8/egress-coordinator.8
	@# an administrator's edited config survives a reinstall
	[ -e $(DESTDIR)$(SYSCONFDIR)/egress/coordinator.conf ] || \
	    $(UNIT_SUBST) conf/coordinator.conf > $(DESTDIR)$(SYSCONFDIR)/egress/coordinator.conf
	$(INSTALL) -m 0644 conf/egress.bash-completion $(DESTDIR)$(BASHCOMP_DIR)/egress
	$(INSTALL) -m 0644 conf/egress-coordinator.sysusers \
	    $(DESTDIR)$(SYSUSERS_DIR)/egress-coordinator.conf
	$(UNIT_SUBST) conf/egress-coordinator.service > \
	    $(DESTDIR)$(UNIT_DIR)/egress-coordinator.service
	$(UNIT_SUBST) conf/egress-host@.service > $(DESTDIR)$(USER_UNIT_DIR)/egress-host@.service
	chmod 0644 $(DESTDIR)$(SYSCONFDIR)/egress/coordinator.conf \
	    $(DESTDIR)$(UNIT_DIR)/egress-coordinator.service \
	    $(DESTDIR)$(USER_UNIT_DIR)/egress-host@.service

SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run --Werror $(SOURCES)

clean:
	rm -rf build
