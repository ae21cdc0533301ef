#!/usr/bin/env bash
# Connection scale of one replica: N (default 10000; SESSIONS_MAX_CONNECTIONS is set
# to N) concurrent loopback client connections, each answered;
# reports the service's RSS growth per connection. Runs the service on a redis-server
# of its own (persistence off), as deployed.
#
# Usage: bench/connections.sh [N]      Env: SKIP_BUILD=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
N=${1:-10000}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sessions-conns.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
# Each side holds N sockets: raise the descriptor limit for this shell and its children.
ulimit -n "$(ulimit -Hn)"
if (($(ulimit -n) < N + 100)); then
    echo "ulimit -n is $(ulimit -n); need more than $N (raise the hard limit)" >&2
    exit 1
fi

[[ -n ${SKIP_BUILD:-} ]] || cargo build --release --bin sessions >&2

start_redis "$WORK"

PORT=$(free_port)
ADMIN=$(free_port)
SESSIONS_LISTEN=127.0.0.1:$PORT SESSIONS_ADMIN_LISTEN=127.0.0.1:$ADMIN \
    REDIS_URL=redis://127.0.0.1:$RPORT SESSIONS_LOG=warn SESSIONS_MAX_CONNECTIONS=$N \
    target/release/sessions >"$WORK/service.log" 2>&1 &
SPID=$!
PIDS+=("$SPID")
wait_port "$PORT"

echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); ulimit -n $(ulimit -n)" >&2
python3 bench/connections.py 127.0.0.1 "$PORT" "$SPID" "$N"
