# egress-coordinator, plus its cmocka unit tests (pure pieces only).
COORD_SRCS   := $(wildcard coordinator/*.c coordinator/portal/*.c)
COORD_HDRS   := $(wildcard coordinator/*.h coordinator/portal/*.h)
COORD_INC    := -Icoordinator -Icoordinator/portal
COORD_BIN    := $(BUILD)/egress-coordinator
# libpq for the PostgreSQL store (store_pg.c); only the coordinator links it.
PQ_CFLAGS    := $(shell pkg-config --cflags libpq 2>/dev/null)
PQ_LIBS      := $(shell pkg-config --libs libpq 2>/dev/null || echo -lpq)
# The portal's CSS and JS, compiled in as C strings (no files to install).
PORTAL_ASSETS := coordinator/portal/portal.css coordinator/portal/portal.js
PORTAL_GEN    := $(BUILD)/gen/portal_assets.c
ifneq ($(COORD_SRCS),)
all: $(COORD_BIN)
$(COORD_BIN): $(COORD_SRCS) $(PORTAL_GEN) $(COORD_HDRS) $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(PQ_CFLAGS) $(COORD_INC) -o $@ $(COORD_SRCS) $(PORTAL_GEN) $(LIBEGRESS) \
	    $(LDFLAGS) $(PKG_LIBS) $(PQ_LIBS)
endif

$(PORTAL_GEN): $(PORTAL_ASSETS) tools/embed-assets.sh
	@mkdir -p $(dir $@)
	sh tools/embed-assets.sh portal_css coordinator/portal/portal.css \
	    portal_js coordinator/portal/portal.js > $@.tmp && mv $@.tmp $@

COORD_TEST_SRCS := $(wildcard coordinator/tests/test_*.c)
COORD_TESTS     := $(COORD_TEST_SRCS:coordinator/tests/%.c=$(BUILD)/tests/coord_%)
UNIT_TESTS      += $(COORD_TESTS)
all: $(COORD_TESTS)

$(BUILD)/tests/coord_test_sessid: coordinator/tests/test_sessid.c coordinator/sessid.c \
                                  coordinator/sessid.h $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icoordinator -o $@ coordinator/tests/test_sessid.c coordinator/sessid.c \
	    $(LIBEGRESS) $(LDFLAGS) -lcmocka $(LIB_LIBS)

$(BUILD)/tests/coord_test_portal: coordinator/tests/test_portal.c coordinator/portal/portal_form.c \
                                  coordinator/portal/portal_html.c coordinator/portal/portal_form.h \
                                  coordinator/portal/portal_html.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(COORD_INC) -o $@ coordinator/tests/test_portal.c \
	    coordinator/portal/portal_form.c coordinator/portal/portal_html.c $(LDFLAGS) -lcmocka

# libFuzzer target for the portal's request parsers (run by check-fuzz with lib's).
FUZZ_TARGETS += build/fuzz/fuzz_portal_form
build/fuzz/fuzz_portal_form: coordinator/fuzz/fuzz_portal_form.c coordinator/portal/portal_form.c \
                             coordinator/portal/portal_form.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined $(COORD_INC) -o $@ \
	    coordinator/fuzz/fuzz_portal_form.c coordinator/portal/portal_form.c

# libFuzzer target for the HTTP handling after lws (framing check, routing,
# bodies, JSON, every REST route) on a temporary SQLite store: everything
# but main.c is linked in. --wrap silences the event log (see the target).
# Each input runs up to 8 requests through real SQLite statements (hundreds
# of mallocs each under ASan): about 1000 inputs a second, so check-fuzz
# runs it 25000 times rather than FUZZ_RUNS.
COORD_FUZZ_SRCS := $(filter-out coordinator/main.c,$(COORD_SRCS))
FUZZ_TARGETS += build/fuzz/fuzz_http_api
FUZZ_RUNS_CAP += fuzz_http_api=25000
build/fuzz/fuzz_http_api: coordinator/fuzz/fuzz_http_api.c $(COORD_FUZZ_SRCS) $(COORD_HDRS) \
                          $(PORTAL_GEN) $(LIB_SRCS) lib/*.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ilib $(COORD_INC) $(PKG_CFLAGS) $(PQ_CFLAGS) \
	    -Wl,--wrap=coord_log -o $@ coordinator/fuzz/fuzz_http_api.c $(COORD_FUZZ_SRCS) \
	    $(PORTAL_GEN) $(LIB_SRCS) $(PKG_LIBS) $(PQ_LIBS)

# The coordinator's t/ files again with every coordinator on a scratch
# PostgreSQL server (EGRESS_TEST_DB=pg, see t/lib/Test/Egress/Postgres.pm).
# `make test` runs it after check-t (about a minute on two cores), so every
# coordinator file passes on both backends. SAN=1 runs them against
# build/asan. The multi-instance files (t/180-183) start PostgreSQL always.
.PHONY: check-pg
check-pg: all
	EGRESS_TEST_DB=pg EGRESS_BUILD=$(CURDIR)/$(BUILD) $(if $(filter 1,$(SAN)),EGRESS_SAN=1) \
	    prove -j2 -I t/lib $(wildcard t/1[0-7]*-coordinator-*.t)

$(BUILD)/tests/coord_test_view: coordinator/tests/test_view.c coordinator/destinations.c \
                                coordinator/destinations.h coordinator/traffic.c \
                                coordinator/traffic.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icoordinator -o $@ coordinator/tests/test_view.c \
	    coordinator/destinations.c coordinator/traffic.c $(LDFLAGS) -lcmocka

$(BUILD)/tests/coord_test_owner_notify: coordinator/tests/test_owner_notify.c \
                                        coordinator/owner_notify.c coordinator/owner_notify.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icoordinator -o $@ coordinator/tests/test_owner_notify.c \
	    coordinator/owner_notify.c $(LDFLAGS) -lcmocka

# libFuzzer target for the ownership notification payload (from any instance).
FUZZ_TARGETS += build/fuzz/fuzz_owner_notify
build/fuzz/fuzz_owner_notify: coordinator/fuzz/fuzz_owner_notify.c coordinator/owner_notify.c \
                              coordinator/owner_notify.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined $(COORD_INC) -o $@ coordinator/fuzz/fuzz_owner_notify.c \
	    coordinator/owner_notify.c

# libFuzzer target for the destination table and the traffic ring.
# libFuzzer target for the session id parsers (ours and crabbox-proposed ones).
FUZZ_TARGETS += build/fuzz/fuzz_sessid
build/fuzz/fuzz_sessid: coordinator/fuzz/fuzz_sessid.c coordinator/sessid.c coordinator/sessid.h \
                        $(LIB_SRCS) lib/*.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ilib $(COORD_INC) -o $@ coordinator/fuzz/fuzz_sessid.c \
	    coordinator/sessid.c $(LIB_SRCS) $(LIB_LIBS)

FUZZ_TARGETS += build/fuzz/fuzz_destinations
build/fuzz/fuzz_destinations: coordinator/fuzz/fuzz_destinations.c coordinator/destinations.c \
                              coordinator/destinations.h coordinator/traffic.c coordinator/traffic.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined $(COORD_INC) -o $@ coordinator/fuzz/fuzz_destinations.c \
	    coordinator/destinations.c coordinator/traffic.c

$(BUILD)/tests/coord_test_ratelimit: coordinator/tests/test_ratelimit.c coordinator/ratelimit.c \
                                     coordinator/ratelimit.h coordinator/ratelimit_pg.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icoordinator -o $@ coordinator/tests/test_ratelimit.c \
	    coordinator/ratelimit.c $(LDFLAGS) -lcmocka

$(BUILD)/tests/coord_test_owner_counters: coordinator/tests/test_owner_counters.c \
                                          coordinator/owner_counters.c \
                                          coordinator/owner_counters.h coordinator/util.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Ilib -Icoordinator -o $@ coordinator/tests/test_owner_counters.c \
	    coordinator/owner_counters.c coordinator/util.c $(LDFLAGS) -lcmocka -ljansson

# libFuzzer target for the live counters another instance publishes.
FUZZ_TARGETS += build/fuzz/fuzz_owner_counters
build/fuzz/fuzz_owner_counters: coordinator/fuzz/fuzz_owner_counters.c \
                                coordinator/owner_counters.c coordinator/owner_counters.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ilib $(COORD_INC) -o $@ \
	    coordinator/fuzz/fuzz_owner_counters.c coordinator/owner_counters.c -ljansson
