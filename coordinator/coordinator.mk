# egress-coordinator, plus its cmocka unit tests (pure pieces only).
COORD_SRCS := $(wildcard coordinator/*.c)
COORD_BIN  := $(BUILD)/egress-coordinator
ifneq ($(COORD_SRCS),)
all: $(COORD_BIN)
$(COORD_BIN): $(COORD_SRCS) coordinator/*.h $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(COORD_SRCS) $(LIBEGRESS) $(LDFLAGS) $(PKG_LIBS)
endif

COORD_TEST_SRCS := $(wildcard coordinator/tests/test_*.c)
COORD_TESTS     := $(COORD_TEST_SRCS:coordinator/tests/%.c=$(BUILD)/tests/coord_%)
UNIT_TESTS      += $(COORD_TESTS)
all: $(COORD_TESTS)

$(BUILD)/tests/coord_test_sessid: coordinator/tests/test_sessid.c coordinator/sessid.c \
                                  coordinator/sessid.h $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Icoordinator -o $@ coordinator/tests/test_sessid.c coordinator/sessid.c \
	    $(LIBEGRESS) $(LDFLAGS) -lcmocka $(LIB_LIBS)
