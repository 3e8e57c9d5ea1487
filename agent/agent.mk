# egress (host agent and operator CLI)
AGENT_SRCS := $(wildcard agent/*.c)
AGENT_BIN  := $(BUILD)/egress
ifneq ($(AGENT_SRCS),)
all: $(AGENT_BIN)
$(AGENT_BIN): $(AGENT_SRCS) agent/*.h $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(AGENT_SRCS) $(LIBEGRESS) $(LDFLAGS) $(PKG_LIBS)
endif
