/*
 * main.c: egress-coordinator's command line: the server, and the admin
 * subcommands that manage bearer tokens in the same database.
 */

#include <ctype.h>
#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "egress.h"
#include "lease.h"
#include "server.h"
#include "session.h"
#include "store.h"

static const char usage_text[] =
    "Usage:\n"
    "  egress-coordinator --listen HOST:PORT --db DB [--tls-cert FILE --tls-key FILE]\n"
    "  egress-coordinator --db DB token add --owner NAME --org NAME [--admin]\n"
    "  egress-coordinator --db DB token list\n"
    "  egress-coordinator --db DB token revoke TOKEN-ID\n"
    "\n"
    "The egress coordinator authenticates the two agents of a lease's egress\n"
    "session with one-use tickets, pairs their WebSockets and relays frames\n"
    "between them. It never connects to a destination itself. It also serves\n"
    "the REST API under /v1/ and an operator portal at /portal/ (sign in with\n"
    "a bearer token: leases, live egress status, stop and release).\n"
    "\n"
    "Options:\n"
    "  --listen HOST:PORT   address to serve HTTP/WebSocket on: an IP, [IPv6],\n"
    "                       localhost, or empty for all IPv4 addresses\n"
    "                       (default 127.0.0.1:8080)\n"
    "  --db DB              where tokens, leases, sessions, ticket and resume hashes\n"
    "                       live: a SQLite file (created if missing, WAL mode), or\n"
    "                       a postgresql://USER@HOST:PORT/NAME URI, shared by\n"
    "                       several coordinators (schema migrated on start; a\n"
    "                       password is better in ~/.pgpass or PGPASSWORD than in\n"
    "                       the URI, which ps shows)\n"
    "  --tls-cert FILE      PEM certificate chain: serve https/wss\n"
    "  --tls-key FILE       PEM private key for --tls-cert\n"
    "  --queue-cap BYTES    per-socket outbound buffer before the sending agent is\n"
    "                       paused (default 4194304)\n"
    "  --instance NAME      this instance's name in logs, /metrics and the\n"
    "                       ownership records of a cluster (letters, digits,\n"
    "                       '.', '_', ':', '-'; up to 63; default HOSTNAME:PORT)\n"
    "  --ping-interval TIME a socket quiet this long gets a ping; one quiet for\n"
    "                       three intervals is dropped and its peer told\n"
    "                       (seconds, or with an ms/s suffix; 100ms..600s;\n"
    "                       default 5s)\n"
    "  --owner-lapse TIME   with PostgreSQL: an instance whose heartbeat is older\n"
    "                       than this is dead and others take over its leases\n"
    "                       (seconds, or with an ms/s suffix; 1s..60s; default 3s)\n"
    "  -h, --help           this text\n"
    "  -V, --version        print the version\n"
    "\n"
    "Token commands:\n"
    "  token add --owner NAME --org NAME [--admin]\n"
    "        creates an API bearer token and prints it once on stdout (only its\n"
    "        SHA-256 is stored); its id and scope go to stderr. --admin lets the\n"
    "        token manage every lease of its org.\n"
    "  token list      prints id, owner, org, admin, revoked and creation time\n"
    "  token revoke ID revokes a token by its id (tok_...)\n"
    "\n"
    "Environment (for tests and tuning; see docs/coordinator.md):\n"
    "  EGRESS_TICKET_TTL=SECONDS        ticket lifetime (default 120)\n"
    "  EGRESS_RATE_MINT=RATE:BURST      ticket mints per second per lease and per\n"
    "                                   token (default 1:30)\n"
    "  EGRESS_RATE_FAIL=RATE:BURST      failed upgrades per second per lease and\n"
    "                                   per address (default 0.5:20)\n"
    "\n"
    "Logs go to stderr, one line per event; tickets, tokens and resume secrets\n"
    "are never logged. SIGTERM/SIGINT stop the server cleanly.\n";

static int instance_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n >= COORD_INSTANCE_MAX) {
        return -1;
    }
    /* The name goes into Prometheus labels and log fields unquoted: keep it plain. */
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n
               ? 0
               : -1;
}

/* HOSTNAME:PORT of --listen, trimmed to what --instance accepts. */
static void instance_default(char *out, size_t cap)
{
    char host[COORD_INSTANCE_MAX];
    const char *port = strrchr(coord_cfg.listen, ':');
    size_t i, n;

    if (gethostname(host, sizeof(host)) < 0) {
        snprintf(host, sizeof(host), "coordinator");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(out, cap, "%.40s:%.16s", host, port != NULL ? port + 1 : "0");
    n = strlen(out);
    for (i = 0; i < n; i++) {
        if (strchr("._:-", out[i]) == NULL && !isalnum((unsigned char) out[i])) {
            out[i] = '-';
        }
    }
}

static void usage(FILE *f)
{
    fputs(usage_text, f);
}

static int parse_rate(const char *env, double *rate, double *burst)
{
    const char *v = getenv(env);
    double r, b;

    if (v == NULL || *v == '\0') {
        return 0;
    }
    if (sscanf(v, "%lf:%lf", &r, &b) != 2 || r <= 0 || b < 1) {
        fprintf(stderr, "egress-coordinator: %s must be RATE:BURST (e.g. 1:30)\n", env);
        return -1;
    }
    *rate = r;
    *burst = b;
    return 0;
}

/* "5", "5s" or "500ms" in milliseconds; -1 when malformed. */
static int parse_interval_ms(const char *s)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);

    if (end == s || v > 600000) {
        return -1;
    }
    if (strcmp(end, "ms") == 0) {
        return (int) v;
    }
    if (*end == '\0' || strcmp(end, "s") == 0) {
        return v > 600 ? -1 : (int) v * 1000;
    }
    return -1;
}

static int name_valid(const char *s)
{
    size_t n = strlen(s), i;

    if (n == 0 || n > COORD_NAME_MAX) {
        return 0;
    }
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c <= ' ' || c >= 0x7f || c == '"' || c == '\\') {
            return 0;
        }
    }
    return 1;
}

static int token_add(int argc, char **argv)
{
    static const struct option opts[] = {{"owner", required_argument, NULL, 'o'},
                                         {"org", required_argument, NULL, 'g'},
                                         {"admin", no_argument, NULL, 'a'},
                                         {NULL, 0, NULL, 0}};
    const char *owner = NULL, *org = NULL;
    char token[COORD_SECRET_BUF], hash[EGRESS_SHA256_HEX_LEN + 1], id[32];
    uint8_t rnd[6];
    int admin = 0, c;

    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            owner = optarg;
            break;
        case 'g':
            org = optarg;
            break;
        case 'a':
            admin = 1;
            break;
        default:
            return 2;
        }
    }
    if (owner == NULL || org == NULL || optind != argc) {
        fprintf(stderr, "egress-coordinator: token add needs --owner NAME --org NAME\n");
        return 2;
    }
    if (!name_valid(owner) || !name_valid(org)) {
        fprintf(stderr, "egress-coordinator: owner and org must be 1-128 printable "
                        "characters without spaces or quotes\n");
        return 2;
    }
    if (egress_token_new(token, sizeof(token), "egk_", COORD_SECRET_BYTES, NULL) < 0 ||
        egress_random_bytes(rnd, sizeof(rnd), NULL) < 0) {
        fprintf(stderr, "egress-coordinator: no randomness\n");
        return 1;
    }
    memcpy(id, "tok_", 4);
    id[4 + egress_base64url_encode(id + 4, rnd, sizeof(rnd))] = '\0';
    egress_sha256_hex(hash, token, strlen(token));
    if (store_token_add(hash, id, owner, org, admin) < 0) {
        OPENSSL_cleanse(token, sizeof(token));
        return 1;
    }
    printf("%s\n", token);
    fflush(stdout);
    OPENSSL_cleanse(token, sizeof(token));
    fprintf(stderr, "token %s created for owner=%s org=%s admin=%s (shown once)\n", id, owner,
            org, admin ? "yes" : "no");
    return 0;
}

static void token_print(const store_token_t *t, void *arg)
{
    char when[32];

    (void) arg;
    coord_time_format(when, sizeof(when), t->created_at);
    printf("%-12s %-20s %-20s %-5s %-7s %s\n", t->id, t->owner, t->org, t->admin ? "yes" : "no",
           t->revoked ? "yes" : "no", when);
}

static int token_cmd(int argc, char **argv)
{
    int rc;

    if (argc < 2) {
        fprintf(stderr, "egress-coordinator: token add|list|revoke\n");
        return 2;
    }
    if (strcmp(argv[1], "add") == 0) {
        return token_add(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "list") == 0 && argc == 2) {
        printf("%-12s %-20s %-20s %-5s %-7s %s\n", "ID", "OWNER", "ORG", "ADMIN", "REVOKED",
               "CREATED");
        return store_token_list(token_print, NULL) < 0 ? 1 : 0;
    }
    if (strcmp(argv[1], "revoke") == 0 && argc == 3) {
        rc = store_token_revoke(argv[2]);
        if (rc == 1) {
            fprintf(stderr, "egress-coordinator: no token with id %s\n", argv[2]);
            return 1;
        }
        if (rc == 0) {
            fprintf(stderr, "token %s revoked\n", argv[2]);
        }
        return rc < 0 ? 1 : 0;
    }
    fprintf(stderr, "egress-coordinator: token add|list|revoke (see --help)\n");
    return 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"db", required_argument, NULL, 'd'},
                                         {"tls-cert", required_argument, NULL, 'c'},
                                         {"tls-key", required_argument, NULL, 'k'},
                                         {"queue-cap", required_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {"ping-interval", required_argument, NULL, 'p'},
                                         {"instance", required_argument, NULL, 'i'},
                                         {"owner-lapse", required_argument, NULL, 'O'},
                                         {"version", no_argument, NULL, 'V'},
                                         {NULL, 0, NULL, 0}};
    static char instance_buf[COORD_INSTANCE_MAX];
    const char *ttl;
    int c, rc;

    coord_cfg.listen = "127.0.0.1:8080";
    coord_cfg.ticket_ttl = 120;
    coord_cfg.queue_cap = 4 * 1024 * 1024;
    coord_cfg.mint_rate = 1;
    coord_cfg.mint_burst = 30;
    coord_cfg.fail_rate = 0.5;
    coord_cfg.fail_burst = 20;
    coord_cfg.ping_ms = 5000;
    coord_cfg.owner_lapse_ms = 3000;

    while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            coord_cfg.listen = optarg;
            break;
        case 'd':
            coord_cfg.db_path = optarg;
            break;
        case 'c':
            coord_cfg.tls_cert = optarg;
            break;
        case 'k':
            coord_cfg.tls_key = optarg;
            break;
        case 'q': {
            char *end;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (*end != '\0' || v < 65536 || v > (1ULL << 32)) {
                fprintf(stderr, "egress-coordinator: --queue-cap must be 65536..4294967296\n");
                return 2;
            }
            coord_cfg.queue_cap = (size_t) v;
            break;
        }
        case 'p':
            coord_cfg.ping_ms = parse_interval_ms(optarg);
            if (coord_cfg.ping_ms < 100 || coord_cfg.ping_ms > 600000) {
                fprintf(stderr, "egress-coordinator: --ping-interval must be 100ms..600s "
                                "(e.g. 5s, 500ms)\n");
                return 2;
            }
            break;
        case 'O':
            coord_cfg.owner_lapse_ms = parse_interval_ms(optarg);
            if (coord_cfg.owner_lapse_ms < 1000 || coord_cfg.owner_lapse_ms > 60000) {
                fprintf(stderr, "egress-coordinator: --owner-lapse must be 1s..60s "
                                "(e.g. 3s, 2500ms)\n");
                return 2;
            }
            break;
        case 'i':
            if (instance_name_valid(optarg) < 0) {
                fprintf(stderr, "egress-coordinator: --instance must be 1..63 of letters, "
                                "digits, '.', '_', ':' or '-'\n");
                return 2;
            }
            coord_cfg.instance = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("egress-coordinator %s\n", EGRESS_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if ((ttl = getenv("EGRESS_TICKET_TTL")) != NULL && *ttl) {
        coord_cfg.ticket_ttl = atoi(ttl);
        if (coord_cfg.ticket_ttl < 1 || coord_cfg.ticket_ttl > 3600) {
            fprintf(stderr, "egress-coordinator: EGRESS_TICKET_TTL must be 1..3600\n");
            return 2;
        }
    }
    if (parse_rate("EGRESS_RATE_MINT", &coord_cfg.mint_rate, &coord_cfg.mint_burst) < 0 ||
        parse_rate("EGRESS_RATE_FAIL", &coord_cfg.fail_rate, &coord_cfg.fail_burst) < 0) {
        return 2;
    }
    if (coord_cfg.instance == NULL) {
        instance_default(instance_buf, sizeof(instance_buf));
        coord_cfg.instance = instance_buf;
    }
    if (coord_cfg.db_path == NULL) {
        fprintf(stderr,
                "egress-coordinator: --db FILE|postgresql://... is required (see --help)\n");
        return 2;
    }
    if ((coord_cfg.tls_cert == NULL) != (coord_cfg.tls_key == NULL)) {
        fprintf(stderr, "egress-coordinator: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (store_open(coord_cfg.db_path) < 0) {
        return 1;
    }
    if (optind < argc) {
        if (strcmp(argv[optind], "token") != 0) {
            fprintf(stderr, "egress-coordinator: unknown command %s (see --help)\n",
                    argv[optind]);
            store_close();
            return 2;
        }
        rc = token_cmd(argc - optind, argv + optind);
    } else {
        lease_tick_start();
        rc = server_run();
    }
    store_close();
    return rc;
}
