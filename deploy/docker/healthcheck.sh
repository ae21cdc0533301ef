#!/bin/bash
# Container health check for the sessions service, needing nothing but bash: GETs a
# path on the admin port (default /live) and exits 0 only on HTTP 200.
#
#   sessions-healthcheck [/live|/ready]
#
# The admin port is taken from SESSIONS_ADMIN_LISTEN (default 0.0.0.0:9807) and
# reached on the loopback address.
set -u
path="${1:-/live}"
listen="${SESSIONS_ADMIN_LISTEN:-0.0.0.0:9807}"
port="${listen##*:}"
case "$port" in
  '' | *[!0-9]*)
    echo "sessions-healthcheck: cannot read a port from SESSIONS_ADMIN_LISTEN=$listen" >&2
    exit 2
    ;;
esac
exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
printf 'GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' "$path" >&3
IFS= read -r -t 3 status <&3 || exit 1
exec 3<&-
case "$status" in
  "HTTP/1."?" 200 "*) exit 0 ;;
  *)
    echo "sessions-healthcheck: $path answered: ${status%$'\r'}" >&2
    exit 1
    ;;
esac
