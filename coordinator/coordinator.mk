# egress-coordinator
COORD_SRCS := $(wildcard coordinator/*.c)
COORD_BIN  := $(BUILD)/egress-coordinator
ifneq ($(COORD_SRCS),)
all: $(COORD_BIN)
$(COORD_BIN): $(COORD_SRCS) coordinator/*.h $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(COORD_SRCS) $(LIBEGRESS) $(LDFLAGS) $(PKG_LIBS)
endif
