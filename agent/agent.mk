# egress (host agent and operator CLI)
AGENT_SRCS := $(wildcard agent/*.c)
AGENT_BIN  := $(BUILD)/egress
# The bridge speaks WebSocket through wslay on the agent's own libuv loop:
# no libwebsockets in the agent.
AGENT_LIBS  = $(shell pkg-config --libs jansson openssl libuv 2>/dev/null) -lwslay
ifneq ($(AGENT_SRCS),)
all: $(AGENT_BIN)
$(AGENT_BIN): $(AGENT_SRCS) agent/*.h lib/*.h $(LIBEGRESS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $(AGENT_SRCS) $(LIBEGRESS) $(LDFLAGS) $(AGENT_LIBS)
endif
