# make deb: the Debian packages, built with debhelper into build/deb/ from a
# copy of the source files (tracked and untracked, not ignored: no build
# output and nothing a clean clone would lack once committed).
DEB_DIR  := build/deb
DEB_JOBS ?= 2

deb:
	rm -rf $(DEB_DIR) && mkdir -p $(DEB_DIR)/src/egress
	git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t $(DEB_DIR)/src/egress
	cd $(DEB_DIR)/src/egress && dpkg-buildpackage -b -us -uc -J$(DEB_JOBS) > ../../build.log 2>&1 \
	    || { tail -n 60 ../../build.log; exit 1; }
	mv $(DEB_DIR)/src/*.deb $(DEB_DIR)/src/*.changes $(DEB_DIR)/src/*.buildinfo $(DEB_DIR)/
	@ls $(DEB_DIR)/*.deb
