#!/usr/bin/env bash
# Valet's benchmark suite (issue 15): builds the release binary and the suite's own tools,
# installs oha and the node-oidc-provider peer (bench/peer, from its committed lock file),
# then runs bench/suite.py, which prints the tables of BENCHMARKS.md and writes
# bench/results.json.
#
# Usage: bench/run.sh                   every scenario, both stores, the peer
#        BENCH_SCALE=1 bench/run.sh     then again on a seeded store (1 M users, 100 k
#                                       clients, 1 M refresh tokens)
#        bench/run.sh ab STORE ALG SCENARIO ROUNDS BIN...
#                                       binaries alternated on one scenario (bench/ab.py)
#        bench/run.sh alloc dhat|callgrind BIN SCENARIO N
#                                       allocations or instructions under valgrind
#                                       (bench/alloc.py)
# The knobs (BENCH_SECONDS, BENCH_STORES, BENCH_SCENARIOS, ...) are listed in bench/suite.py.
# PostgreSQL: BENCH_ADMIN_URL (default postgres://postgres@127.0.0.1:5432/postgres); each run
# creates and drops its own database.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '[bench] %s\n' "$*" >&2; }

if [[ -z "${VALET_BIN:-}" ]]; then
    log "building the release binary and the suite's generators"
    cargo build --release --locked --bin valet --example loadgen --example argon2_rate
fi
if ! command -v oha >/dev/null; then
    log "installing oha (cargo install oha --locked)"
    cargo install oha --locked
fi
case "${1:-}" in
    ab) shift; exec python3 bench/ab.py "$@" ;;
    alloc) shift; exec python3 bench/alloc.py "$@" ;;
esac
if [[ "${BENCH_PEER:-1}" == 1 ]]; then
    command -v node >/dev/null || { log "node is required for the peer (or BENCH_PEER=0)"; exit 1; }
    if [[ ! -d bench/peer/node_modules ]]; then
        log "installing the peer (npm ci in bench/peer)"
        (cd bench/peer && npm ci --no-audit --no-fund >/dev/null)
    fi
fi
for tool in openssl psql python3; do
    command -v "$tool" >/dev/null || { log "$tool is required"; exit 1; }
done

exec python3 bench/suite.py
