#!/usr/bin/env bash
# Redis memory per session: for each shape, a fresh redis-server of its own (persistence
# off) and a fresh service on it; N sessions opened through the service (open_session
# over Seneca TCP, so the keys are the service's own), then INFO used_memory growth per
# session, broken down by key kind (MEMORY USAGE ... SAMPLES 0 summed over every key of
# the kind: session hash, user indexes, bucket indexes, expiry and retention indexes,
# reuse map), and what other layouts would save (measured on rewritten copies of a
# sample of the keys). See bench/memory.py for the details.
#
# Shapes: one   N sessions, one per user
#         ten   N sessions, ten per user
#         data  N sessions, one per user, 1 KiB of data each (given at open_session)
#         closed  N sessions, one per user, opened then closed (close_session)
#
# Usage: bench/memory.sh [OUT.md]       (default: target/bench/memory.md)
# Env:   N (100000), SHAPES ("one ten data closed"), VARIANTS=0 (skip the layout
#        variants), REDIS_ARGS (extra redis-server options, e.g.
#        "--hash-max-listpack-value 2048"), SKIP_BUILD=1
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:-target/bench/memory.md}
N=${N:-100000}
SHAPES=${SHAPES:-"one ten data closed"}
PREFIX=sessions
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sessions-memory.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

[[ -n ${SKIP_BUILD:-} ]] || cargo build --release --bin sessions >&2
SERVICE=$ROOT/target/release/sessions
VARIANT_ARG=()
[[ ${VARIANTS:-1} == 0 ]] || VARIANT_ARG=(--variants)
# shellcheck disable=SC2206 # REDIS_ARGS is a list of options, split on spaces
EXTRA=(${REDIS_ARGS:-})

stop() { # pid...: stops processes this script started and forgets them
    local p keep=()
    for p in "$@"; do kill "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do [[ " $* " == *" $p "* ]] || keep+=("$p"); done
    PIDS=("${keep[@]}")
}

log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
RESULTS=()
for shape in $SHAPES; do
    mkdir -p "$WORK/$shape"
    start_redis "$WORK/$shape" "${EXTRA[@]}"
    port=$(free_port)
    admin=$(free_port)
    SESSIONS_LISTEN=127.0.0.1:$port SESSIONS_ADMIN_LISTEN=127.0.0.1:$admin \
        REDIS_URL=redis://127.0.0.1:$RPORT SESSIONS_KEY_PREFIX=$PREFIX SESSIONS_LOG=warn \
        "$SERVICE" >"$WORK/$shape/service.log" 2>&1 &
    spid=$!
    PIDS+=("$spid")
    wait_port "$port"
    log "shape $shape: $N sessions (redis-server on port $RPORT${EXTRA[*]:+, ${EXTRA[*]}})"
    python3 bench/memory.py shape "$shape" "$port" "$RPORT" "$PREFIX" "$N" \
        "$WORK/$shape.json" "${VARIANT_ARG[@]}"
    RESULTS+=("$WORK/$shape.json")
    stop "$spid" "$RPID"
done
log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"

mkdir -p "$(dirname "$OUT")"
{
    echo "bench/memory.sh, N=$N, $(date -u +%Y-%m-%d)${EXTRA[*]:+, redis-server ${EXTRA[*]}}"
    echo
    python3 bench/memory.py table "${RESULTS[@]}"
} | tee "$OUT"
cp "${RESULTS[@]}" "$(dirname "$OUT")/"
