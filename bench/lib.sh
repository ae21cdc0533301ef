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
