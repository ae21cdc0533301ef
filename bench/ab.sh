#!/usr/bin/env bash
# Before/after of a code change: two builds of the service, alternated on the same
# point, reporting throughput, p99 and the CPU time per request of the service (utime+
# stime from /proc/PID/stat over the measured run, divided by the requests answered),
# of redis-server and of the load generator. CPU per request is far steadier than throughput on a shared machine;
# alternating A and B puts both under the same noise.
#
# Usage: bench/ab.sh A_BINARY B_BINARY [sessions-bench options]
#   e.g. bench/ab.sh /tmp/sessions.old target/release/sessions -c 64 -k 1 -s get
# Env:   ROUNDS (3), SECS (4), EMBEDDED=1 (no Redis), BENCH (target/release/sessions-bench),
#        TOPOLOGY: standalone (default), cluster (CLUSTER=1 is the same) or both
#        (each binary on a standalone Redis and on a cluster, alternated);
#        CLUSTER_REPLICAS (1): replicas per primary of the cluster.
# Runs on Redis of its own (persistence off) unless EMBEDDED=1: one redis-server, or a
# Redis Cluster of three primaries with a replica each (the redis CPU is then the sum
# over every node).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
A=$1
B=$2
shift 2
ROUNDS=${ROUNDS:-3}
SECS=${SECS:-4}
BENCH=${BENCH:-$ROOT/target/release/sessions-bench}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/sessions-ab.XXXXXX")
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

TOPOLOGY=${TOPOLOGY:-standalone}
[[ -n ${CLUSTER:-} ]] && TOPOLOGY=cluster
case $TOPOLOGY in
standalone) TOPOLOGIES=(standalone) ;;
cluster) TOPOLOGIES=(cluster) ;;
both) TOPOLOGIES=(standalone cluster) ;;
*) echo "TOPOLOGY must be standalone, cluster or both" >&2; exit 2 ;;
esac
[[ -n ${EMBEDDED:-} ]] && TOPOLOGIES=(embedded)
declare -A ENVS REDIS_PIDS
ENVS[embedded]=""
REDIS_PIDS[embedded]=""
for t in "${TOPOLOGIES[@]}"; do
    case $t in
    standalone)
        start_redis "$WORK"
        ENVS[$t]="REDIS_URL=redis://127.0.0.1:$RPORT"
        REDIS_PIDS[$t]=$RPID
        ;;
    cluster)
        start_cluster "$WORK"
        ENVS[$t]="REDIS_URL=$(cluster_urls) SESSIONS_REDIS_MODE=cluster"
        REDIS_PIDS[$t]="${CPIDS[*]}"
        ;;
    esac
done
HZ=$(getconf CLK_TCK)
redis_ticks() { # topology: CPU ticks of its redis-server processes
    local sum=0 p
    for p in ${REDIS_PIDS[$1]}; do sum=$((sum + $(ticks "$p"))); done
    echo "$sum"
}

one() { # label binary topology
    local port admin pid t0 t1 r0=0 r1=0 topo=$3 env_list
    set -- "$1" "$2" "${@:4}"
    read -r -a env_list <<<"${ENVS[$topo]}"
    port=$(free_port)
    admin=$(free_port)
    env -u REDIS_URL -u SESSIONS_REDIS_MODE "${env_list[@]}" SESSIONS_LISTEN="127.0.0.1:$port" \
        SESSIONS_ADMIN_LISTEN="127.0.0.1:$admin" SESSIONS_KEY_PREFIX=ab \
        SESSIONS_MAX_CONNECTIONS=2048 SESSIONS_LOG=warn "$2" >"$WORK/$1.log" 2>&1 &
    pid=$!
    PIDS+=("$pid")
    wait_port "$port"
    # Warm-up run (pool set up, connections and scripts in place), not measured.
    "$BENCH" --addr "127.0.0.1:$port" -q -d 1s -w 0s "${@:3}" >/dev/null 2>&1 || true
    t0=$(ticks "$pid")
    r0=$(redis_ticks "$topo")
    "$BENCH" --addr "127.0.0.1:$port" -q -d "${SECS}s" -w 0s --format json \
        --json "$WORK/out.json" "${@:3}" >/dev/null
    t1=$(ticks "$pid")
    r1=$(redis_ticks "$topo")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    python3 - "$1" "$t0" "$t1" "$HZ" "$WORK/out.json" "$r0" "$r1" <<'EOF'
import json, sys
label, t0, t1, hz, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r0, r1 = int(sys.argv[6]), int(sys.argv[7])
run = json.load(open(path))
t = run['total']
ok = max(t['ok'], 1)
cpu = (t1 - t0) / hz * 1e6 / ok
others = ""
if r1 > r0:
    others += f"  redis {(r1 - r0) / hz * 1e6 / ok:5.2f}"
if 'client_cpu_s' in run:
    others += f"  bench {run['client_cpu_s'] * 1e6 / ok:5.2f}"
print(f"{label:13} {t['ok_per_s']:>10,.0f} ok/s  p99 {t['latency_us']['p99'] / 1000:6.2f} ms  "
      f"service {cpu:6.2f} us/request{others}  errors {t['errors']}")
EOF
}

echo "point: $* (${TOPOLOGIES[*]}), ${SECS}s each"
for _ in $(seq 1 "$ROUNDS"); do
    for t in "${TOPOLOGIES[@]}"; do
        one "A $t" "$A" "$t" "$@"
        one "B $t" "$B" "$t" "$@"
    done
done
