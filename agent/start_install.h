/*
 * start_install.h: `egress start --install`, the lease side installed from
 * Debian packages over one SSH connection.
 */
#ifndef EGRESS_START_INSTALL_H
#define EGRESS_START_INSTALL_H

#include <stddef.h>

#include "cli.h"

/* What start_install() found out; msg is what to tell the operator. */
typedef struct {
    int rc;        /* 0 installed or already there; 6 the lease cannot take them; 1 failed */
    char msg[512]; /* the cause, when rc != 0 */
} start_install_t;

/*
 * The default package directory: deb/ next to this program (build/deb for a
 * build tree, where `make deb` writes). Fills buf, returns it.
 */
const char *start_install_default_dir(char *buf, size_t len);

/*
 * Copies egress_*.deb and libnginx-mod-stream-egress_*.deb from dir to the
 * lease and installs them with apt-get (which pulls nginx from the lease's
 * own mirror), all over one SSH session: refuses when the lease's nginx ABI
 * differs from the module's, does nothing when the same versions are
 * installed, and removes whatever a failed install added.
 */
void start_install(const cli_ssh_t *ssh, const char *dir, start_install_t *res);

#endif /* EGRESS_START_INSTALL_H */
