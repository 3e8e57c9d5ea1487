/*
 * start_install.c: `egress start --install`. The two lease-side packages
 * travel base64-encoded inside one shell script on the standard input of one
 * `ssh TARGET sh -s`; the script checks the nginx ABI, skips what is already
 * installed, runs apt-get on the local files (so apt resolves nginx from the
 * lease's own mirror) and, when that fails, purges every package the attempt
 * added, so the lease is left as it was.
 */

#include <errno.h>
#include <glob.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egress_base64.h"
#include "start_install.h"

#define INSTALL_MAX_DEB (64u << 20) /* a package this large is not ours */

/* Exit codes of the remote script (besides 0 and ssh's 255). */
#define INSTALL_NO_APT   20
#define INSTALL_ABI      21
#define INSTALL_UNDONE   22
#define INSTALL_PARTIAL  23
#define INSTALL_BAD_DEBS 24

/*
 * The part of the script after the packages. Everything that runs a
 * program redirects its standard input: the rest of the script is still
 * waiting there.
 */
static const char install_script[] =
    "cd \"$d\" || exit 1\n"
    "command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 || {\n"
    "    say \"the lease has no apt-get/dpkg (a Debian or Ubuntu lease is needed)\"; exit 20; "
    "}\n"
    "for f in *.deb; do dpkg-deb -f \"$f\" Package </dev/null >/dev/null 2>&1 || {\n"
    "    say \"$f is not a Debian package (damaged on the way, or not one)\"; exit 24; }; "
    "done\n"
    "abi() { tr ',' '\\n' | sed -n 's/^ *\\(nginx-abi-[^ ]*\\).*/\\1/p' | head -n 1; }\n"
    "want=$(dpkg-deb -f libnginx-mod-stream-egress_*.deb Depends </dev/null | abi)\n"
    "have=$(dpkg-query -W -f='${Provides}' nginx 2>/dev/null </dev/null | abi)\n"
    "if [ -n \"$have\" ]; then\n"
    "    where=\"its installed nginx $(dpkg-query -W -f='${Version}' nginx </dev/null)\"\n"
    "else\n"
    "    have=$(apt-cache show --no-all-versions nginx 2>/dev/null </dev/null | sed -n "
    "'s/^Provides: //p' | abi)\n"
    "    where=\"the nginx $(apt-cache policy nginx 2>/dev/null </dev/null | sed -n 's/^ "
    "*Candidate: //p') its apt would install\"\n"
    "fi\n"
    "if [ \"$have\" != \"$want\" ]; then\n"
    "    say \"nginx ABI mismatch: the module was built for $want, the lease has ${have:-no "
    "nginx ABI} ($where); build the packages against the lease's nginx (make deb on a machine "
    "with its nginx-dev version) or install the nginx that provides $want\"\n"
    "    exit 21\n"
    "fi\n"
    "same=1\n"
    "for f in *.deb; do\n"
    "    p=$(dpkg-deb -f \"$f\" Package </dev/null); v=$(dpkg-deb -f \"$f\" Version "
    "</dev/null)\n"
    "    [ \"$(dpkg-query -W -f='${db:Status-Status} ${Version}' \"$p\" 2>/dev/null "
    "</dev/null)\" = \"installed $v\" ] || same=0\n"
    "done\n"
    "if [ $same = 1 ]; then say \"already installed: nothing to do\"; exit 0; fi\n"
    "present() { dpkg-query -W -f='${Package} ${db:Status-Status}\\n' </dev/null | awk '$2 != "
    "\"not-installed\" && $2 != \"config-files\" {print $1}' | sort; }\n"
    "present > before\n"
    "if $SUDO apt-get install -y -q --no-install-recommends ./*.deb </dev/null >apt.log 2>&1; "
    "then\n"
    "    say \"installed:$(for f in *.deb; do printf ' %s %s' \"$(dpkg-deb -f \"$f\" Package "
    "</dev/null)\" \"$(dpkg-deb -f \"$f\" Version </dev/null)\"; done)\"\n"
    "    exit 0\n"
    "fi\n"
    "tail -n 15 apt.log\n"
    "present > after\n"
    "new=$(comm -13 before after | tr '\\n' ' ')\n"
    "[ -z \"$new\" ] || $SUDO dpkg --purge --force-depends $new </dev/null >purge.log 2>&1\n"
    "present > again\n"
    "if cmp -s before again; then\n"
    "    say \"apt-get install failed; undone, the lease is as it was (removed: "
    "${new:-nothing})\"; exit 22\n"
    "fi\n"
    "say \"apt-get install failed and undoing it did not finish: still there: $(comm -13 "
    "before again | tr '\\n' ' ')\"\n"
    "exit 23\n";

const char *start_install_default_dir(char *buf, size_t len)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

    if (n <= 0) {
        snprintf(buf, len, "deb");
        return buf;
    }
    exe[n] = '\0';
    snprintf(buf, len, "%s/deb", dirname(exe));
    return buf;
}

/* The one file dir/pattern names (dbgsym packages do not match), or NULL with msg set. */
static char *install_find(const char *dir, const char *pattern, start_install_t *res)
{
    char pat[4200];
    glob_t g;
    char *path = NULL;

    snprintf(pat, sizeof(pat), "%s/%s", dir, pattern);
    if (glob(pat, 0, NULL, &g) != 0 || g.gl_pathc != 1) {
        snprintf(res->msg, sizeof(res->msg),
                 "%s %s in %s (make deb builds them; --packages DIR says where they are)",
                 g.gl_pathc > 1 ? "more than one" : "no", pattern, dir);
    } else {
        path = strdup(g.gl_pathv[0]);
    }
    globfree(&g);
    return path;
}

/* Appends "base64 -d > NAME <<'END' ... END" for one file. Returns 0 or -1 (msg set). */
static int install_add_file(char **script, size_t *len, const char *path, start_install_t *res)
{
    FILE *f = fopen(path, "rb");
    unsigned char *data = NULL;
    char *b64 = NULL, *base, *next;
    long size;
    size_t enc, need;
    int rc = -1;

    if (!f || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 ||
        (unsigned long) size > INSTALL_MAX_DEB || fseek(f, 0, SEEK_SET) != 0) {
        snprintf(res->msg, sizeof(res->msg), "cannot read %s: %s", path,
                 f ? "not a package of ours" : strerror(errno));
        goto out;
    }
    if ((data = malloc((size_t) size)) == NULL ||
        fread(data, 1, (size_t) size, f) != (size_t) size ||
        (b64 = malloc(EGRESS_BASE64_ENCODED_LEN((size_t) size) + 1)) == NULL) {
        snprintf(res->msg, sizeof(res->msg), "cannot read %s", path);
        goto out;
    }
    enc = egress_base64_encode(b64, data, (size_t) size);
    b64[enc] = '\0';
    base = strrchr(path, '/') ? strrchr(path, '/') + 1 : (char *) path;
    need = *len + enc + strlen(base) + 128;
    if ((next = realloc(*script, need)) == NULL) {
        snprintf(res->msg, sizeof(res->msg), "out of memory");
        goto out;
    }
    *script = next;
    *len += (size_t) snprintf(*script + *len, need - *len,
                              "base64 -d > \"$d/%s\" <<'EGRESS_DEB_END'\n%s\nEGRESS_DEB_END\n",
                              base, b64);
    rc = 0;
out:
    if (f)
        fclose(f);
    free(data);
    free(b64);
    return rc;
}

void start_install(const cli_ssh_t *ssh, const char *dir, start_install_t *res)
{
    static const char head[] = "set -u\n"
                               "umask 022\n"
                               "export DEBIAN_FRONTEND=noninteractive\n"
                               "SUDO=; [ \"$(id -u)\" = 0 ] || SUDO='sudo -n'\n"
                               "say() { printf 'egress start: lease: %s\\n' \"$*\"; }\n"
                               "d=$(mktemp -d /tmp/egress-install.XXXXXX) || exit 1\n"
                               "trap 'rm -rf \"$d\"' EXIT\n";
    const char *args[] = {"-s", NULL};
    cli_ssh_t sh = *ssh;
    char *egress = NULL, *module = NULL, *script = NULL, *tail;
    size_t len = 0;
    int status;

    res->rc = 1;
    res->msg[0] = '\0';
    if ((egress = install_find(dir, "egress_*_*.deb", res)) == NULL ||
        (module = install_find(dir, "libnginx-mod-stream-egress_*_*.deb", res)) == NULL)
        goto out;
    len = strlen(head);
    if ((script = strdup(head)) == NULL || install_add_file(&script, &len, egress, res) < 0 ||
        install_add_file(&script, &len, module, res) < 0)
        goto out;
    if ((tail = realloc(script, len + sizeof(install_script))) == NULL)
        goto out;
    script = tail;
    memcpy(script + len, install_script, sizeof(install_script));

    sh.remote = "sh";
    status = cli_ssh_run(&sh, args, script);
    switch (status) {
    case 0:
        res->rc = 0;
        break;
    case INSTALL_NO_APT:
    case INSTALL_ABI:
    case INSTALL_BAD_DEBS:
        res->rc = 6;
        snprintf(res->msg, sizeof(res->msg), "the lease cannot take the packages (above)");
        break;
    case INSTALL_UNDONE:
        snprintf(res->msg, sizeof(res->msg),
                 "installing the packages failed and was undone (above)");
        break;
    case INSTALL_PARTIAL:
        snprintf(res->msg, sizeof(res->msg),
                 "installing the packages failed and undoing it did not finish (above)");
        break;
    case 255:
    case -1:
        snprintf(res->msg, sizeof(res->msg), "cannot reach the lease over SSH (%s)",
                 ssh->target);
        break;
    default:
        snprintf(res->msg, sizeof(res->msg), "installing on the lease failed (exit %d)",
                 status);
        break;
    }
out:
    free(egress);
    free(module);
    free(script);
}
