# libegress: static library, cmocka unit tests, libFuzzer targets.

LIB_SRCS  := lib/egress_error.c lib/egress_base64.c lib/egress_host.c lib/egress_allow.c \
             lib/egress_psl.c lib/egress_frame.c lib/egress_flow.c lib/egress_crypto.c \
             lib/egress_upgrade.c lib/egress_state.c lib/egress_wsframe.c \
             lib/egress_idmap.c lib/egress_wsserver.c lib/egress_httphead.c
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBEGRESS := $(BUILD)/libegress.a
LIB_LIBS  := -ljansson -lcrypto

LIB_TEST_SRCS := $(wildcard lib/tests/test_*.c)
LIB_TESTS     := $(LIB_TEST_SRCS:lib/tests/%.c=$(BUILD)/tests/%)
UNIT_TESTS    += $(LIB_TESTS)

FUZZ_SRCS    := $(wildcard lib/fuzz/fuzz_*.c)
FUZZ_TARGETS := $(FUZZ_SRCS:lib/fuzz/%.c=build/fuzz/%)

all: $(LIBEGRESS) $(LIB_TESTS)

$(BUILD)/lib/%.o: lib/%.c lib/*.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(LIBEGRESS): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/tests/%: lib/tests/%.c $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIBEGRESS) $(LDFLAGS) -lcmocka $(LIB_LIBS)

# Fuzz targets always use clang with libFuzzer, ASan and UBSan, whatever SAN says.
build/fuzz/%: lib/fuzz/%.c $(LIB_SRCS) lib/*.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Ilib -o $@ $< $(LIB_SRCS) $(LIB_LIBS)
