# What bench/flood.sh and bench/soak.sh share; sourced, not run.

# A free TCP port on 127.0.0.1.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Wait (at most 30 s) until $1/readyz answers 200.
wait_ready() {
    for _ in $(seq 300); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$1/readyz" || true)" == 200 ]] && return 0
        sleep 0.1
    done
    echo "no 200 from $1/readyz within 30 s" >&2
    return 1
}

# The valet CLI against the server's store: DIR, ENV and BIN are the caller's.
cli() { (cd "$DIR" && env "${ENV[@]}" "$BIN" "$@"); }
