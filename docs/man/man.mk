# Man pages: scdoc sources in docs/man/, troff pages in $(BUILD)/man/.
MAN_SRCS  := $(wildcard docs/man/*.scd)
MAN_PAGES := $(MAN_SRCS:docs/man/%.scd=$(BUILD)/man/%)

all: $(MAN_PAGES)

$(BUILD)/man/%: docs/man/%.scd
	@mkdir -p $(dir $@)
	@command -v scdoc >/dev/null || { echo "scdoc is missing: run make deps" >&2; exit 1; }
	scdoc < $< > $@.tmp && mv $@.tmp $@
