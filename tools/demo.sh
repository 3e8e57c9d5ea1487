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
cleanup
trap - EXIT INT TERM

# The next steps, printed so that they work as they are: installed programs
# when they are on the PATH, else this build's; free ports (the defaults
# when nothing listens there). The heredoc is quoted: nothing in it runs now.
prog() {
    if command -v "$1" >/dev/null 2>&1; then echo "$1"; else echo "$2"; fi
}
port_or_free() {
    if perl -MIO::Socket::IP -e 'exit !IO::Socket::IP->new(PeerHost=>"127.0.0.1",PeerPort=>$ARGV[0])' "$1"; then
        free_port
    else
        echo "$1"
    fi
}
TRY_EGRESS=$(prog egress "$EGRESS")
TRY_COORD=$(prog egress-coordinator "$COORD")
TRY_CPORT=$(port_or_free 8080)
TRY_PPORT=$(port_or_free 3128)
LISTEN_OPT=""
[ "$TRY_PPORT" = 3128 ] || LISTEN_OPT=" --listen 127.0.0.1:$TRY_PPORT"
sed -e "s|@EGRESS@|$TRY_EGRESS|g" -e "s|@COORD@|$TRY_COORD|g" -e "s|@CPORT@|$TRY_CPORT|g" \
    -e "s|@PPORT@|$TRY_PPORT|g" -e "s|@LISTEN@|$LISTEN_OPT|g" <<'EOF'

Try next, on this machine (each line as printed; README.md and docs/operations.md explain them):
  cd "$(mktemp -d /tmp/egress-try.XXXXXX)"
  @COORD@ --listen 127.0.0.1:@CPORT@ --db ./egress.db 2>coordinator.log &
  export EGRESS_COORDINATOR=http://127.0.0.1:@CPORT@
  export EGRESS_TOKEN="$(@COORD@ --db ./egress.db token add --owner you --org yours)"
  @EGRESS@ lease create --slug my-lease
  @EGRESS@ ticket --id my-lease --role client --out client.ticket --session-out session
  @EGRESS@ client --id my-lease --ticket-file client.ticket@LISTEN@ --daemon
  @EGRESS@ host --id my-lease --session "$(cat session)" --profile discord --daemon
  @EGRESS@ status --id my-lease
  curl -sS --proxy http://127.0.0.1:@PPORT@ -o /dev/null -w '%{http_code}\n' https://discord.com/
  curl -sS --proxy http://127.0.0.1:@PPORT@ http://example.com/    # 403: not on the allowlist
  @EGRESS@ stop --id my-lease
  kill $!    # the coordinator (the last job started with &)

With a lease of your own (reachable over SSH, with egress and the module installed):
  @EGRESS@ lease create --slug swift-crab --ssh root@LEASE-HOST
  @EGRESS@ start --id swift-crab --profile discord --daemon
EOF
