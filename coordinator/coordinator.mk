# egress-coordinator, plus its cmocka unit tests (pure pieces only).
COORD_SRCS   := $(wildcard coordinator/*.c)
COORD_BIN    := $(BUILD)/egress-coordinator
# The portal's CSS and JS, compiled in as C strings (no files to install).
PORTAL_ASSETS := coordinator/portal/portal.css coordinator/portal/portal.js
PORTAL_GEN    := $(BUILD)/gen/portal_assets.c
ifneq ($(COORD_SRCS),)
all: $(COORD_BIN)
$(COORD_BIN): $(COORD_SRCS) $(PORTAL_GEN) coordinator/*.h $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icoordinator -o $@ $(COORD_SRCS) $(PORTAL_GEN) $(LIBEGRESS) $(LDFLAGS) \
	    $(PKG_LIBS)
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

$(BUILD)/tests/coord_test_portal: coordinator/tests/test_portal.c coordinator/portal_form.c \
                                  coordinator/portal_html.c coordinator/portal_form.h \
                                  coordinator/portal_html.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icoordinator -o $@ coordinator/tests/test_portal.c \
	    coordinator/portal_form.c coordinator/portal_html.c $(LDFLAGS) -lcmocka

# libFuzzer target for the portal's request parsers (run by check-fuzz with lib's).
FUZZ_TARGETS += build/fuzz/fuzz_portal_form
build/fuzz/fuzz_portal_form: coordinator/fuzz/fuzz_portal_form.c coordinator/portal_form.c \
                             coordinator/portal_form.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Icoordinator -o $@ \
	    coordinator/fuzz/fuzz_portal_form.c coordinator/portal_form.c
