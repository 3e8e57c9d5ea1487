#!/bin/sh
# make bench: benchmarks on 127.0.0.1 (not part of make test).
#
#   sh bench/run.sh              full suite (about 20 min on 2 cores)
#   BENCH_QUICK=1 sh bench/run.sh   smoke run (about 2-4 min)
#   BENCH_ONLY=net sh bench/run.sh  only the network case (delay relays, ssh -R)
#   BENCH_ONLY=cluster sh bench/run.sh  only the cluster case (3 coordinators behind nginx)
#
# Installs the bench-only peers when missing (squid, tinyproxy, websockify,
# wrk from Debian as root; npm wstunnel pinned by bench/npm/package-lock.json
# into build/bench/npm), builds the C tools into build/bench/ with the
# project's -O2 flags, then runs bench/bench.pl, which writes
# bench/results/latest.md and latest.json. Environment knobs: see
# bench/README.md.
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TOOLS=${BENCH_TOOLS:-$ROOT/build/bench}
mkdir -p "$TOOLS" bench/results

# BENCH_ONLY=net needs none of the loopback peers (the network case uses
# OpenSSH and curl, which tools/install-deps.sh installs)
PEERS="squid tinyproxy websockify wrk"
if [ "${BENCH_ONLY:-}" = net ] || [ "${BENCH_ONLY:-}" = cluster ]; then PEERS=""; fi

# --- Debian peers (only when missing; never part of tools/install-deps.sh)
missing=""
for p in $PEERS; do
    dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "bench: installing$missing"
        # keep the packages' init scripts from starting system daemons
        made_policy=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
            chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
            trap 'rm -f /usr/sbin/policy-rc.d' EXIT INT TERM
        fi
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing \
            || echo "bench: could not install$missing; those paths will be reported as not run"
        if [ "$made_policy" = 1 ]; then
            rm -f /usr/sbin/policy-rc.d
            trap - EXIT INT TERM
        fi
    else
        echo "bench: missing$missing (run as root to install); those paths will be reported as not run"
    fi
fi

# --- npm wstunnel, pinned (package-lock.json); installed once per lock
if [ "${BENCH_ONLY:-}" = net ] || [ "${BENCH_ONLY:-}" = cluster ]; then
    :
elif command -v npm >/dev/null 2>&1; then
    if ! cmp -s bench/npm/package-lock.json "$TOOLS/npm/package-lock.json" \
        || [ ! -f "$TOOLS/npm/node_modules/wstunnel/bin/wstt.js" ]; then
        mkdir -p "$TOOLS/npm"
        cp bench/npm/package.json bench/npm/package-lock.json "$TOOLS/npm/"
        (cd "$TOOLS/npm" && npm ci --no-audit --no-fund --loglevel=error >npm.log 2>&1) \
            || { echo "bench: npm ci for wstunnel failed (see $TOOLS/npm/npm.log)"; \
                 BENCH_WSTUNNEL_MISSING="npm ci failed (see build/bench/npm/npm.log)"; \
                 export BENCH_WSTUNNEL_MISSING; }
    fi
else
    BENCH_WSTUNNEL_MISSING="npm not installed"; export BENCH_WSTUNNEL_MISSING
fi

# --- C tools, same warnings and -O2 as the project build
CC=${CC:-gcc}
CF="-std=c11 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Wshadow -Wpointer-arith \
-Wstrict-prototypes -Wmissing-prototypes"
for t in origin loadgen wsbridge delayrelay; do
    if [ ! -x "$TOOLS/$t" ] || [ "bench/$t.c" -nt "$TOOLS/$t" ]; then
        # shellcheck disable=SC2086
        $CC $CF -o "$TOOLS/$t" "bench/$t.c" -lm
    fi
done

# --- limits: 5000 idle streams need ~4 fds each across the chain
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

BENCH_TOOLS=$TOOLS exec perl bench/bench.pl
