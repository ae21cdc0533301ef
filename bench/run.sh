#!/usr/bin/env bash
# Benchmark of the sessions service against the limit of the Redis it runs on.
#
# In one run, back to back on the same machine:
#   1. the service on Redis: get, open, store and a mix, at 1, 16, 64 and 256 requests
#      in flight, with sessions-bench, in two shapes: N clients with one request each
#      (1x1, 16x1, 64x1, 256x1: connections x in flight each), and a few connections
#      with many requests each (4x16, 16x16);
#   2. Redis' own limit for the same work at the same concurrency, with redis-benchmark
#      against the same redis-server, in the same shape (-c connections, -P requests
#      in flight each: -c 64 -P 1 for 64x1, -c 4 -P 16 for 4x16): HGETALL of a real
#      session hash (get), EVALSHA of the real open script (reuse path, as the open
#      scenario re-opens pooled users' sessions), EVALSHA of the real store_data script;
#   3. the service on its embedded store (no Redis: the protocol's own cost).
# It prints and writes a Markdown table with the ratio service / Redis per command and
# concurrency. The numbers are only comparable within one run (the machine is shared).
#
# Usage: bench/run.sh [OUT.md]         (default: target/bench/results.md)
# Env:   POINT_SECS (5), WARMUP_SECS (1), SKIP_BUILD=1,
#        LEVELS="1x1 16x1 64x1 256x1 4x16 16x16",
#        SCENARIOS="get open store mix", MIX (get=80,store=10,open=10);
#        SESSIONS_* variables reach the service (e.g. SESSIONS_WORKER_THREADS=1) and
#        are listed in the results.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
OUT=${1:-target/bench/results.md}
POINT_SECS=${POINT_SECS:-5}
WARMUP_SECS=${WARMUP_SECS:-1}
LEVELS=${LEVELS:-"1x1 16x1 64x1 256x1 4x16 16x16"}
SCENARIOS=${SCENARIOS:-"get open store mix"}
MIX=${MIX:-get=80,store=10,open=10}
PREFIX=bench
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sessions-bench.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }

if [[ -z ${SKIP_BUILD:-} ]]; then
    log "building release binaries"
    cargo build --release --bin sessions --bin sessions-bench >&2
fi
SERVICE=$ROOT/target/release/sessions
BENCH=$ROOT/target/release/sessions-bench

# --- redis-server of our own, persistence off ---------------------------------------
start_redis "$WORK"
RCLI=(redis-cli -h 127.0.0.1 -p "$RPORT")

LOADS=()
sample_load() { LOADS+=("$(cut -d' ' -f1 /proc/loadavg)"); }

start_service() { # name [REDIS_URL]; sets SVC_PORT, SVC_PID
    SVC_PORT=$(free_port)
    local admin
    admin=$(free_port)
    if [[ -n ${2:-} ]]; then
        SESSIONS_LISTEN=127.0.0.1:$SVC_PORT SESSIONS_ADMIN_LISTEN=127.0.0.1:$admin \
            SESSIONS_MAX_CONNECTIONS=2048 REDIS_URL=$2 SESSIONS_KEY_PREFIX=$PREFIX SESSIONS_LOG=warn \
            "$SERVICE" >"$WORK/$1.log" 2>&1 &
    else
        env -u REDIS_URL SESSIONS_LISTEN=127.0.0.1:$SVC_PORT \
            SESSIONS_ADMIN_LISTEN=127.0.0.1:$admin SESSIONS_LOG=warn \
            SESSIONS_MAX_CONNECTIONS=2048 "$SERVICE" >"$WORK/$1.log" 2>&1 &
    fi
    SVC_PID=$!
    PIDS+=("$SVC_PID")
    wait_port "$SVC_PORT"
}

stop_service() {
    kill "$SVC_PID" 2>/dev/null || true
    wait "$SVC_PID" 2>/dev/null || true
}

# Results: R[backend:scenario:level] = "ok_per_s p99_ms"
declare -A R

run_service_point() { # backend scenario level
    local c=${3%x*} k=${3#*x} extra=()
    [[ $2 == mix ]] && extra=(--mix "$MIX") || extra=(-s "$2")
    local json=$WORK/$1-$2-$3.json
    sample_load
    "$BENCH" --addr "127.0.0.1:$SVC_PORT" -c "$c" -k "$k" "${extra[@]}" \
        -d "${POINT_SECS}s" -w "${WARMUP_SECS}s" --format json -q --json "$json" >/dev/null
    local ok p99 errs
    ok=$(jq -r '.total.ok_per_s' "$json")
    p99=$(jq -r '(.total.latency_us.p99 // 0) / 1000' "$json")
    errs=$(jq -r '.total.errors' "$json")
    [[ $errs != 0 ]] && log "  $1 $2 $3: $errs errors (see $json)"
    R[$1:$2:$3]="$ok $p99"
    log "  $1 $2 $3: $ok ok/s, p99 $p99 ms"
}

# redis-benchmark: first a short run to learn the rate (also the warm-up), then a run
# sized to last about POINT_SECS.
run_redis_point() { # name level cmd...
    local name=$1 level=$2
    shift 2
    local c=${level%x*} p=${level#*x} n rps line
    n=$((c * p * 200))
    sample_load
    line=$(redis-benchmark -h 127.0.0.1 -p "$RPORT" -c "$c" -P "$p" -n "$n" --csv "$@" | tail -1)
    rps=$(echo "$line" | awk -F, '{print $(NF-6)}' | tr -d '"')
    n=$(python3 -c "print(max(1000, int(float('$rps') * $POINT_SECS)))")
    line=$(redis-benchmark -h 127.0.0.1 -p "$RPORT" -c "$c" -P "$p" -n "$n" --csv "$@" | tail -1)
    rps=$(echo "$line" | awk -F, '{print $(NF-6)}' | tr -d '"')
    local p99
    p99=$(echo "$line" | awk -F, '{print $(NF-1)}' | tr -d '"')
    R[redis:$name:$level]="$rps $p99"
    log "  redis $name $level: $rps ops/s, p99 $p99 ms"
}

machine() {
    echo "- nproc: $(nproc)"
    echo "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
    echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
    echo "- kernel: $(uname -sr)"
    echo "- redis-server: $(redis-server --version | sed 's/Redis server //')"
    echo "- rustc: $(rustc --version)"
    # The service inherits the environment: say which of its settings were changed.
    local settings
    settings=$(env | grep -E '^(SESSIONS_|TOKIO_)' | sort | tr '\n' ' ' || true)
    echo "- service settings from the environment: ${settings:-none (defaults)}"
}

START_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
log "load average at start: $START_LOAD"

# --- 1. the service on Redis ------------------------------------------------------
log "service on Redis 127.0.0.1:$RPORT"
start_service redis "redis://127.0.0.1:$RPORT"
for s in $SCENARIOS; do
    for l in $LEVELS; do run_service_point service "$s" "$l"; done
done
stop_service

# --- 2. Redis' own limit ----------------------------------------------------------
# A real session hash and its fields, left by the runs above.
SKEY=$("${RCLI[@]}" --scan --pattern "$PREFIX:{*}:s:*" | head -1 || true)
[[ -n $SKEY ]] || { echo "no session hash in Redis" >&2; exit 1; }
BASE=${SKEY%s:*}
field() { "${RCLI[@]}" HGET "$SKEY" "$1"; }
SID=$(field id)
UID_=$(field user_id)
RK=$(field rk)
UNAME=$(field user_name)
ADDR=$(field address)
CLIENT=$(field client)
DATA=$(field data)
[[ -n $DATA ]] || DATA='{"bench":"x"}'
log "reference session $SKEY (user $UID_)"

# The scripts as scripts.rs builds them: common.lua followed by the command's file.
load_script() { # name -> sha
    local f=$WORK/$1.lua sha want
    cat src/store/redis/lua/common.lua "src/store/redis/lua/$1.lua" >"$f"
    want=$(sha1sum "$f" | cut -d' ' -f1)
    sha=$(python3 - "$f" "$RPORT" <<'EOF'
import socket, sys
body = open(sys.argv[1], 'rb').read()
s = socket.create_connection(('127.0.0.1', int(sys.argv[2])))
s.sendall(b'*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$%d\r\n%s\r\n' % (len(body), body))
r = b''
while not r.endswith(b'\r\n') or r.count(b'\r\n') < 2:
    r += s.recv(4096)
print(r.split(b'\r\n')[1].decode())
EOF
)
    [[ $sha == "$want" ]] || { echo "SCRIPT LOAD $1 returned $sha, sha1 is $want" >&2; exit 1; }
    # The service loaded its copy while serving: the same SHA proves the same text.
    [[ $("${RCLI[@]}" SCRIPT EXISTS "$sha") == 1 ]] ||
        { echo "the service's $1 script has another SHA than $sha" >&2; exit 1; }
    echo "$sha"
}
OPEN_SHA=$(load_script open)
STORE_SHA=$(load_script store_data)
NOW=$(($(date +%s) * 1000))
# The expiry cutoffs the service passes with its default lifetimes: now - 24 h idle,
# and no absolute lifetime ('').
IDLE_CUT=$((NOW - 86400000))
NEW_ID=$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
OPEN=(EVALSHA "$OPEN_SHA" 7 "${BASE}oa" "${BASE}oc" "${BASE}exp" "${BASE}ret" "${BASE}reuse"
    "${BASE}s:$NEW_ID" "${BASE}ua:$UID_"
    "$BASE" "$NEW_ID" 1 "$NOW" "$UID_" "$RK" "$IDLE_CUT" "" 0 close_oldest
    user_name "$UNAME" address "$ADDR" client "$CLIENT")
STORE=(EVALSHA "$STORE_SHA" 6 "${BASE}oa" "${BASE}oc" "${BASE}exp" "${BASE}ret" "${BASE}reuse"
    "$SKEY" "$BASE" "$SID" "$NOW" "$IDLE_CUT" "" "$DATA")
# Both must take their real path: open reuses the session ({1, fields}), store returns it.
first=$("${RCLI[@]}" "${OPEN[@]}" | head -1)
[[ $first == 1 ]] || { echo "open script did not reuse the session: $first" >&2; exit 1; }
[[ $("${RCLI[@]}" "${STORE[@]}" | wc -l) -gt 10 ]] ||
    { echo "store_data script did not return the session" >&2; exit 1; }

log "redis-benchmark against the same redis-server"
for l in $LEVELS; do
    [[ $SCENARIOS == *get* || $SCENARIOS == *mix* ]] && run_redis_point get "$l" HGETALL "$SKEY"
    [[ $SCENARIOS == *open* || $SCENARIOS == *mix* ]] && run_redis_point open "$l" "${OPEN[@]}"
    [[ $SCENARIOS == *store* || $SCENARIOS == *mix* ]] && run_redis_point store "$l" "${STORE[@]}"
done

# The mix' Redis limit: the time per request of each part, weighted by the mix.
for l in $LEVELS; do
    [[ $SCENARIOS == *mix* ]] || break
    R[redis:mix:$l]="$(python3 - "$MIX" "${R[redis:get:$l]%% *}" "${R[redis:open:$l]%% *}" "${R[redis:store:$l]%% *}" <<'EOF'
import sys
w = dict(p.split('=') for p in sys.argv[1].split(','))
rate = {'get': float(sys.argv[2]), 'open': float(sys.argv[3]), 'store': float(sys.argv[4])}
tot = sum(int(v) for v in w.values())
print('%.2f -' % (1 / sum(int(v) / tot / rate[k] for k, v in w.items())))
EOF
)"
done

# --- 3. the embedded store --------------------------------------------------------
log "service on the embedded store"
start_service embedded
for s in $SCENARIOS; do
    for l in $LEVELS; do run_service_point embedded "$s" "$l"; done
done
stop_service

END_LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
MEAN_LOAD=$(printf '%s\n' "${LOADS[@]}" | awk '{s+=$1; if ($1>m) m=$1} END {printf "%.2f (max %.2f)", s/NR, m}')

# --- report -------------------------------------------------------------------------
inflight() { echo $((${1%x*} * ${1#*x})); }
fmt() { python3 -c "print(f'{float(\"$1\"):,.0f}')"; }
{
    echo "Run at $(date -u '+%Y-%m-%d %H:%M UTC'), ${POINT_SECS}s per point after ${WARMUP_SECS}s warm-up."
    echo
    machine
    echo "- load average (1 min): $START_LOAD at start, $END_LOAD at end; mean over the points $MEAN_LOAD"
    echo
    echo "Service on Redis vs redis-benchmark doing the same Redis work at the same concurrency"
    echo "and in the same shape: CxK is C connections with K requests in flight on each"
    echo "(redis-benchmark -c C -P K; Kx1 is K clients waiting for one reply each, as"
    echo "redis-benchmark's plain -c K). Mix $MIX; its Redis limit is the weighted time per"
    echo "request of get, open and store:"
    echo
    echo "| command | in flight (conns x each) | service ok/s | service p99 ms | Redis ops/s | Redis p99 ms | service / Redis |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    for s in $SCENARIOS; do
        for l in $LEVELS; do
            read -r svc_v svc_p <<<"${R[service:$s:$l]:-0 -}"
            read -r red_v red_p <<<"${R[redis:$s:$l]:-0 -}"
            ratio=$(python3 -c "r=float('$red_v'); print(f'{100*float(\"$svc_v\")/r:.0f}%' if r else '-')")
            echo "| $s | $(inflight "$l") ($l) | $(fmt "$svc_v") | $svc_p | $(fmt "$red_v") | $red_p | $ratio |"
        done
    done
    echo
    echo "Service on the embedded store (no Redis), same points:"
    echo
    echo "| command | in flight (conns x each) | ok/s | p99 ms | embedded / on Redis |"
    echo "|---|---|---:|---:|---:|"
    for s in $SCENARIOS; do
        for l in $LEVELS; do
            read -r emb_v emb_p <<<"${R[embedded:$s:$l]:-0 -}"
            read -r svc_v _ <<<"${R[service:$s:$l]:-0 -}"
            ratio=$(python3 -c "r=float('$svc_v'); print(f'{float(\"$emb_v\")/r:.2f}x' if r else '-')")
            echo "| $s | $(inflight "$l") ($l) | $(fmt "$emb_v") | $emb_p | $ratio |"
        done
    done
} >"$WORK/table.md"
mkdir -p "$(dirname "$OUT")"
cp "$WORK/table.md" "$OUT"
cat "$OUT"
log "written to $OUT (raw sessions-bench JSON in $WORK)"
