# ngx_stream_egress_module: built as a dynamic module against Debian's nginx-dev.
#
# Debian ships nginx's configure script and headers (not its .c files) in
# /usr/share/nginx/src, so we configure a private copy of that tree with the
# same --with-compat ABI as Debian's nginx and build only our module target.

NGX_SRC       ?= /usr/share/nginx/src
NGX_BUILD     := $(BUILD)/nginx
NGX_OBJS      := $(abspath $(NGX_BUILD))/objs
MODULE_SO     := $(BUILD)/ngx_stream_egress_module.so
MODULE_SRCS   := $(wildcard ngx_egress_module/*.c ngx_egress_module/*.h)
NGX_CC_OPT    := -g -O2 -fPIC -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
NGX_LD_OPT    := -fPIC
ifeq ($(SAN),1)
NGX_CC_OPT    := -g -O1 -fPIC -fno-omit-frame-pointer $(SANFLAGS) -Wno-unused-parameter \
                 -Wno-missing-field-initializers
NGX_LD_OPT    := -fPIC $(SANFLAGS)
endif

# The configure flags that shape the ABI match Debian's nginx build.
NGX_CONF_FLAGS := --with-compat --with-threads --with-debug --with-http_ssl_module \
                  --with-stream=dynamic --with-stream_ssl_module \
                  --with-stream_ssl_preread_module --with-stream_realip_module

all: $(MODULE_SO)

$(NGX_BUILD)/.configured: config ngx_egress_module/module.mk
	rm -rf $(NGX_BUILD)
	@mkdir -p $(dir $(NGX_BUILD))
	cp -r $(NGX_SRC) $(NGX_BUILD)
	cd $(NGX_BUILD) && ./configure $(NGX_CONF_FLAGS) \
	    --with-cc-opt='$(NGX_CC_OPT)' --with-ld-opt='$(NGX_LD_OPT)' \
	    --builddir=$(NGX_OBJS) --add-dynamic-module=$(CURDIR) > configure.log 2>&1 \
	    || { cat configure.log; exit 1; }
	touch $@

$(MODULE_SO): $(NGX_BUILD)/.configured $(MODULE_SRCS) $(LIB_SRCS) lib/*.h
	$(MAKE) -C $(NGX_BUILD) -f objs/Makefile $(NGX_OBJS)/ngx_stream_egress_module.so
	@# a new inode: running nginx processes keep their mapping intact
	cp $(NGX_OBJS)/ngx_stream_egress_module.so $@.tmp && mv -f $@.tmp $@

# libFuzzer targets for the module's HTTP parsers: ngx_stream_egress_http*.c
# compiled with clang against the configured nginx headers, plus a shim for
# the few nginx functions they call (nginx-dev has no nginx .c files). Their
# corpora are in ngx_egress_module/fuzz/corpus/<name>.
MODULE_FUZZ      := module_chunked module_request module_response
MODULE_HTTP_SRCS := $(wildcard ngx_egress_module/ngx_stream_egress_http*.c)
MODULE_FUZZ_SRCS := ngx_egress_module/fuzz/ngx_shim.c $(MODULE_HTTP_SRCS) \
                    lib/egress_host.c lib/egress_error.c
MODULE_FUZZ_INCS := $(addprefix -I$(NGX_BUILD)/,src/core src/event src/event/modules \
                    src/os/unix src/stream objs) -Ilib -Ingx_egress_module
FUZZ_TARGETS     += $(MODULE_FUZZ:%=build/fuzz/fuzz_%)

$(MODULE_FUZZ:%=build/fuzz/fuzz_%): build/fuzz/fuzz_%: ngx_egress_module/fuzz/fuzz_%.c \
        $(MODULE_FUZZ_SRCS) ngx_egress_module/ngx_stream_egress_module.h \
        ngx_egress_module/ngx_stream_egress_http.h lib/*.h \
        $(NGX_BUILD)/.configured
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined \
	    -fno-sanitize-recover=undefined -Wall -Wextra -Werror -Wno-unused-parameter \
	    $(MODULE_FUZZ_INCS) -o $@ $< $(MODULE_FUZZ_SRCS)
