# Shared by the bench scripts (sourced, not run): child processes killed on exit,
# free loopback ports, waiting for a port to accept connections, and a redis-server
# of the script's own.

PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() { # port (on 127.0.0.1)
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

start_redis() { # dir [redis-server options]; sets RPORT and RPID: a redis-server on a
    # free port, persistence off
    RPORT=$(free_port)
    redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
        --dir "$1" --logfile "$1/redis.log" --daemonize no "${@:2}" &
    RPID=$!
    PIDS+=("$RPID")
    wait_port "$RPORT"
}

start_cluster() { # dir; sets CPORTS and CPIDS: a Redis Cluster of three primaries with
    # CLUSTER_REPLICAS (default 1) replicas each, persistence off, on free ports; returns
    # once every node says ok
    CPORTS=()
    CPIDS=()
    local port bus d replicas=${CLUSTER_REPLICAS:-1}
    local nodes=$((3 * (1 + replicas)))
    for _ in $(seq 1 "$nodes"); do
        port=$(free_port)
        # The bus port is chosen too: by default it is port + 10000, which another
        # process may hold.
        bus=$(free_port)
        d="$1/cluster-$port"
        mkdir -p "$d"
        redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
            --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$bus" \
            --cluster-node-timeout 2000 --dir "$d" --logfile "$d/redis.log" \
            --daemonize no &
        CPIDS+=("$!")
        PIDS+=("$!")
        CPORTS+=("$port")
        wait_port "$port"
    done
    local addrs=()
    for port in "${CPORTS[@]}"; do addrs+=("127.0.0.1:$port"); done
    redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes \
        </dev/null >"$1/cluster-create.log"
    for _ in $(seq 1 300); do
        local ok=0
        for port in "${CPORTS[@]}"; do
            redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok' \
                && ok=$((ok + 1))
        done
        [[ $ok == "$nodes" ]] && return 0
        sleep 0.1
    done
    echo "the Redis Cluster did not come up (see $1)" >&2
    return 1
}

cluster_urls() { # the REDIS_URL of the cluster started by start_cluster
    local urls=() port
    for port in "${CPORTS[@]}"; do urls+=("redis://127.0.0.1:$port"); done
    (IFS=,; echo "${urls[*]}")
}
