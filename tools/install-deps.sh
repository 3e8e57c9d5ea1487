#!/bin/sh
# Installs every Debian package egress needs to build, test and demo.
# Idempotent: runs apt-get only when something is missing. Needs root.
set -eu

PKGS="
build-essential make pkg-config gcc clang clang-format libclang-rt-14-dev
nginx nginx-dev libnginx-mod-stream libpcre2-dev zlib1g-dev libssl-dev
libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libjansson-dev libsqlite3-dev sqlite3
libpq-dev postgresql
libwslay-dev libcmocka-dev publicsuffix
scdoc debhelper lintian dpkg-dev man-db
curl openssl ca-certificates openssh-server openssh-client iproute2 procps psmisc
chromium
perl libio-socket-ssl-perl libprotocol-websocket-perl libjson-pp-perl libhttp-tiny-perl

"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    echo "deps: all packages present"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages:$missing" >&2
    echo "deps: run 'make deps' as root to install them" >&2
    exit 1
fi

echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
