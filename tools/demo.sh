#!/bin/sh
# make demo: the whole egress path once, on loopback, with local defaults.
#
# Starts a coordinator on a temporary SQLite file, creates a lease, runs the
# host agent with an allowlist, runs nginx with the module as the lease-side
# proxy, fetches a page from a local origin through the proxy, shows status
# and one refused request, then tears everything down.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${EGRESS_BUILD:-$ROOT/build}
EGRESS=$BUILD/egress
COORD=$BUILD/egress-coordinator
MODULE=$BUILD/ngx_stream_egress_module.so
DIR=$(mktemp -d /tmp/egress-demo.XXXXXX)
PIDS=""

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

cleanup() {
    if [ -n "${CLIENT_STARTED:-}" ]; then
        "$EGRESS" client --id "$LEASE" --runtime-dir "$DIR/lease" --stop >/dev/null 2>&1 || true
    fi
    for p in $PIDS; do kill "$p" 2>/dev/null || true; done
    for p in $PIDS; do wait "$p" 2>/dev/null || true; done
    [ -n "${EGRESS_DEMO_KEEP:-}" ] || rm -rf "$DIR"
}
trap cleanup EXIT INT TERM

free_port() {
    perl -MIO::Socket::IP -e \
        'print IO::Socket::IP->new(LocalHost=>"127.0.0.1",LocalPort=>0,Listen=>1)->sockport'
}

wait_port() {
    i=0
    until perl -MIO::Socket::IP -e 'exit !IO::Socket::IP->new(PeerHost=>"127.0.0.1",PeerPort=>$ARGV[0])' "$1"; do
        i=$((i + 1))
        if [ $i -gt 250 ]; then
            echo "demo: nothing listening on port $1 after 5 s" >&2
            return 1
        fi
        sleep 0.02
    done
}

for f in "$EGRESS" "$COORD" "$MODULE"; do
    [ -e "$f" ] || { echo "demo: $f is missing; run make first" >&2; exit 1; }
done

CPORT=$(free_port)
OPORT=$(free_port)
PPORT=3128
if perl -MIO::Socket::IP -e 'exit !IO::Socket::IP->new(PeerHost=>"127.0.0.1",PeerPort=>3128)'; then
    PPORT=$(free_port)
    echo "demo: 127.0.0.1:3128 is busy, using proxy port $PPORT"
fi

say "coordinator on 127.0.0.1:$CPORT (database $DIR/egress.db)"
"$COORD" --listen "127.0.0.1:$CPORT" --db "$DIR/egress.db" 2>"$DIR/coordinator.log" &
PIDS="$PIDS $!"
wait_port "$CPORT"
EGRESS_TOKEN=$("$COORD" --db "$DIR/egress.db" token add --owner demo --org demo 2>/dev/null)
EGRESS_COORDINATOR=http://127.0.0.1:$CPORT
export EGRESS_TOKEN EGRESS_COORDINATOR

say "origin on 127.0.0.1:$OPORT (answers with the caller's address)"
perl -I"$ROOT/t/lib" -MTest::Egress::Origin -e 'Test::Egress::Origin::main(@ARGV)' -- \
    --listen 127.0.0.1 --port "$OPORT" >"$DIR/origin.log" 2>&1 &
PIDS="$PIDS $!"
wait_port "$OPORT"

say "lease"
LEASE=demo-lease
"$EGRESS" lease create --slug "$LEASE" --ttl 600

say "lease-side proxy: nginx with ngx_stream_egress_module on 127.0.0.1:$PPORT"
"$EGRESS" ticket --id "$LEASE" --role client --out "$DIR/client.ticket" \
    --session-out "$DIR/session"
# The nginx worker runs unprivileged: it must be able to reach its runtime dir.
chmod 711 "$DIR"
"$EGRESS" client --id "$LEASE" --listen "127.0.0.1:$PPORT" --ticket-file "$DIR/client.ticket" \
    --runtime-dir "$DIR/lease" --daemon
CLIENT_STARTED=1
wait_port "$PPORT"

say "host agent: allowlist localhost:$OPORT (loopback origin, so --allow-private)"
"$EGRESS" host --id "$LEASE" --session "$(cat "$DIR/session")" \
    --allow "localhost:$OPORT,127.0.0.1:$OPORT" --allow-private 2>"$DIR/host.log" &
PIDS="$PIDS $!"
i=0
until "$EGRESS" status --id "$LEASE" >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -le 250 ] || { echo "demo: agents did not connect" >&2; cat "$DIR"/*.log >&2; exit 1; }
    sleep 0.02
done
sed -n 1p "$DIR/host.log"

say "curl through the proxy: the origin sees the host agent's address (loopback here)"
curl -sS --fail --proxy "http://127.0.0.1:$PPORT" "http://localhost:$OPORT/ip"

say "egress status"
"$EGRESS" status --id "$LEASE"

say "a destination that is not on the allowlist"
curl -sS --proxy "http://127.0.0.1:$PPORT" -w 'HTTP %{http_code}\n' \
    "http://not-allowed.example:$OPORT/" || true

say "done; tearing down"
cat <<EOF

Try next (see README.md and docs/operations.md):
  egress-coordinator --listen 127.0.0.1:8080 --db ./egress.db &
  export EGRESS_COORDINATOR=http://127.0.0.1:8080
  export EGRESS_TOKEN=$(egress-coordinator --db ./egress.db token add --owner you --org yours)
  egress lease create --slug my-lease --ssh root@LEASE-HOST
  egress start --id my-lease --profile discord --daemon
  chromium --proxy-server=http://127.0.0.1:3128 https://discord.com    # on the lease
  egress status --id my-lease
  egress stop --id my-lease
See README.md and docs/ for the full tour.
EOF
