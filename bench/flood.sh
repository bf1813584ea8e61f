#!/usr/bin/env bash
# Flood limits under load (issue 14): while one address floods /token and then one client
# floods it, a well-behaved client (its own address) keeps its latency.
#
# Starts a release `valet serve` on SQLite with 127.0.0.1 as a trusted proxy (so each load
# generator picks its address with X-Forwarded-For), provisions through the CLI, then:
#   1. baseline: the good client alone, client_credentials at a fixed rate (oha -q);
#   2. address flood: unauthenticated /token requests from one address at full speed (the
#      per-address bucket answers 429) while the good client runs again;
#   3. client flood: an authenticated client at full speed from its own address (the
#      per-client bucket answers 429) while the good client runs again.
# Reports the good client's p50/p99 in each phase, the ratio to the baseline p99 (target
# ≤ 2), and how the floods were answered.
#
# Usage: bench/flood.sh      (VALET_BIN=… to skip the build; FLOOD_SECONDS, default 15)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH="${FLOOD_SECONDS:-15}"
GOOD_RATE="${FLOOD_GOOD_RATE:-40}"
# The flood's rate (requests/s; 0 = as fast as oha can, which on a 2-core machine also takes
# most of a core from the server).
FLOOD_RATE="${FLOOD_RATE:-0}"
AUDIENCE="https://contacts.example.com"

log() { printf '[flood] %s\n' "$*" >&2; }
die() { printf '[flood] ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -n "${VALET_BIN:-}" ]]; then
    BIN="$(realpath -- "$VALET_BIN")"
else
    cargo build --release --locked
    BIN="$PWD/target/release/valet"
fi
command -v oha >/dev/null || cargo install oha --locked

DIR="$(mktemp -d -t valet-flood-XXXXXX)"
SERVER_PID=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    rm -rf -- "$DIR"
}
trap cleanup EXIT

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
ENV=(-i "PATH=$PATH" "HOME=$HOME"
    "VALET_DATABASE_URL=sqlite://$DIR/valet.db" "VALET_LISTEN=127.0.0.1:$PORT"
    "VALET_ISSUER=$BASE" "VALET_SECRET=$(openssl rand -hex 24)" "RUST_LOG=warn"
    "VALET_HTTP__TRUSTED_PROXIES=[\"127.0.0.1/32\"]"
    "VALET_RATE_LIMIT__PER_ADDRESS=50" "VALET_RATE_LIMIT__PER_CLIENT=200")
(cd "$DIR" && exec env "${ENV[@]}" "$BIN" serve) >"$DIR/server.log" 2>&1 &
SERVER_PID=$!
wait_ready "$BASE"
cli api create --identifier "$AUDIENCE" --name Contacts --scope read:contacts >/dev/null
basic_of() {
    python3 -c '
import base64, json, sys, urllib.parse
c = json.loads(sys.stdin.read())
cred = urllib.parse.quote_plus(c["client_id"]) + ":" + urllib.parse.quote_plus(c["client_secret"])
print(base64.b64encode(cred.encode()).decode())'
}
GOOD="$(cli client create --name good --grant-type client_credentials --scope read:contacts \
    --audience "$AUDIENCE" --json | basic_of)"
NOISY="$(cli client create --name noisy --grant-type client_credentials --scope read:contacts \
    --audience "$AUDIENCE" --json | basic_of)"
BODY="grant_type=client_credentials&audience=https%3A%2F%2Fcontacts.example.com"
CTYPE="Content-Type: application/x-www-form-urlencoded"

# The good client: a fixed rate under its limits (50/s per address), from its own address.
good() {
    oha -z "${SECONDS_EACH}s" -c 4 -q "$GOOD_RATE" --no-tui --output-format json -m POST \
        -H "Authorization: Basic $GOOD" -H "$CTYPE" -H "X-Forwarded-For: 198.51.100.1" \
        -d "$BODY" "$BASE/token" >"$DIR/$1.json"
}
flood() {
    local rate=()
    [[ "$FLOOD_RATE" != 0 ]] && rate=(-q "$FLOOD_RATE")
    oha -z "$((SECONDS_EACH + 2))s" -c 32 "${rate[@]}" --no-tui --output-format json -m POST "$@" \
        -H "$CTYPE" -d "$BODY" "$BASE/token"
}
summary() {
    python3 - "$DIR/$1.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = d["latencyPercentiles"]
codes = d.get("statusCodeDistribution", {})
print(f'{p["p50"]*1000:.2f} {p["p99"]*1000:.2f} {json.dumps(codes, separators=(",", ":"))}')
PY
}

log "baseline: the good client alone, $GOOD_RATE req/s for ${SECONDS_EACH}s"
good baseline
read -r B50 B99 BCODES <<<"$(summary baseline)"

log "address flood: unauthenticated /token from 203.0.113.66 at full speed"
flood -H "X-Forwarded-For: 203.0.113.66" >"$DIR/flood-address.json" &
FLOOD=$!
sleep 2
good under-address-flood
wait "$FLOOD"
read -r A50 A99 ACODES <<<"$(summary under-address-flood)"
read -r _ _ FACODES <<<"$(summary flood-address)"

log "client flood: the noisy client at full speed from 203.0.113.77"
flood -H "Authorization: Basic $NOISY" -H "X-Forwarded-For: 203.0.113.77" >"$DIR/flood-client.json" &
FLOOD=$!
sleep 2
good under-client-flood
wait "$FLOOD"
read -r C50 C99 CCODES <<<"$(summary under-client-flood)"
read -r _ _ FCCODES <<<"$(summary flood-client)"

ratio() { python3 -c "print(f'{$1/$2:.2f}')"; }
printf '\n| phase | good p50 ms | good p99 ms | p99 / baseline | good statuses | flood statuses |\n'
printf '| --- | ---: | ---: | ---: | --- | --- |\n'
printf '| baseline | %s | %s | 1.00 | %s | – |\n' "$B50" "$B99" "$BCODES"
printf '| address flood | %s | %s | %s | %s | %s |\n' "$A50" "$A99" "$(ratio "$A99" "$B99")" "$ACODES" "$FACODES"
printf '| client flood | %s | %s | %s | %s | %s |\n' "$C50" "$C99" "$(ratio "$C99" "$B99")" "$CCODES" "$FCCODES"
