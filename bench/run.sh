#!/usr/bin/env bash
# Token-endpoint throughput benchmark for Valet (client_credentials, SQLite store).
#
# For each signing algorithm (RS256, ES256, EdDSA) this script starts a fresh
# `valet serve` on 127.0.0.1, provisions an API and a client through the CLI, and
# drives POST /token with oha. In the same run it measures `openssl speed` for the
# matching primitive on both cores, so the figures can be compared as a ratio that
# is meaningful on a small, noisy machine.
#
# Usage: bench/run.sh
# Environment:
#   VALET_BIN            use this valet binary instead of building target/release/valet
#   BENCH_SECONDS        measured duration per algorithm (default 20)
#   BENCH_WARMUP         warm-up duration per algorithm (default 3)
#   BENCH_CONCURRENCY    concurrent connections (default 64)
#   BENCH_ALGS           algorithms to run (default "RS256 ES256 EdDSA")
#   BENCH_OPENSSL_SECS   seconds per openssl speed test (default 5)
#   BENCH_KEEP_LOGS      if set to a directory, server logs are copied there
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"

BENCH_SECONDS="${BENCH_SECONDS:-20}"
BENCH_WARMUP="${BENCH_WARMUP:-3}"
BENCH_CONCURRENCY="${BENCH_CONCURRENCY:-64}"
BENCH_ALGS="${BENCH_ALGS:-RS256 ES256 EdDSA}"
BENCH_OPENSSL_SECS="${BENCH_OPENSSL_SECS:-5}"
READY_TIMEOUT=30
HOST=127.0.0.1
AUDIENCE="https://contacts.example.com"

log() { printf '[bench] %s\n' "$*" >&2; }
die() { printf '[bench] ERROR: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- cleanup
SERVER_PID=""
OHA_PID=""
TMPDIRS=()
cleanup() {
    local rc=$?
    if [[ -n "$OHA_PID" ]] && kill -0 "$OHA_PID" 2>/dev/null; then
        kill "$OHA_PID" 2>/dev/null || true
        wait "$OHA_PID" 2>/dev/null || true
    fi
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
    for d in "${TMPDIRS[@]+"${TMPDIRS[@]}"}"; do
        rm -rf -- "$d"
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- tools
for tool in curl python3 openssl; do
    command -v "$tool" >/dev/null || die "$tool is required"
done

if [[ -n "${VALET_BIN:-}" ]]; then
    BIN="$(realpath -- "$VALET_BIN")"
else
    log "building release binary"
    cargo build --release --locked
    BIN="$PWD/target/release/valet"
fi
[[ -x "$BIN" ]] || die "valet binary not found or not executable: $BIN"

if ! command -v oha >/dev/null; then
    log "oha not found; installing with cargo install oha --locked"
    cargo install oha --locked
fi
OHA_HELP="$(oha --help)"
if grep -q -- '--output-format' <<<"$OHA_HELP"; then
    OHA_JSON=(--output-format json)
else
    OHA_JSON=(-j)
fi
OHA_WAIT=()
if grep -q -- '--wait-ongoing-requests-after-deadline' <<<"$OHA_HELP"; then
    # Let requests in flight at the deadline finish instead of counting them as errors.
    OHA_WAIT=(--wait-ongoing-requests-after-deadline)
fi
log "using $(oha --version), $(openssl version | cut -d' ' -f1-2)"

# Run oha in the background and wait for it, so that INT/TERM reach the EXIT trap at once
# (bash defers traps until a foreground child exits).
run_oha() {
    oha "$@" &
    OHA_PID=$!
    local rc=0
    wait "$OHA_PID" || rc=$?
    OHA_PID=""
    return "$rc"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# ---------------------------------------------------------------- openssl speed
openssl_sign_per_sec() {
    local alg="$1" test pattern out
    case "$alg" in
        RS256) test=rsa2048;   pattern='^rsa 2048 bits' ;;
        ES256) test=ecdsap256; pattern='ecdsa.*nistp256' ;;
        EdDSA) test=ed25519;   pattern='EdDSA.*Ed25519' ;;
        *) die "unknown algorithm $alg" ;;
    esac
    out="$(openssl speed -multi 2 -seconds "$BENCH_OPENSSL_SECS" "$test" 2>/dev/null)"
    # Summary line: "... sign verify sign/s verify/s": sign/s is the second-to-last field.
    awk -v pat="$pattern" '$0 ~ pat && NF >= 4 { v = $(NF-1) } END { if (v == "") exit 1; print v }' <<<"$out" \
        || die "could not parse openssl speed $test output"
}

# ---------------------------------------------------------------- one algorithm
RESULTS=()   # "alg tokens_per_s median_ms sign_per_s ratio non2xx errors"
FAILED=0

bench_alg() {
    local alg="$1"
    local dir port base secret
    dir="$(mktemp -d -t valet-bench-XXXXXX)"
    TMPDIRS+=("$dir")
    port="$(free_port)"
    base="http://$HOST:$port"
    secret="$(openssl rand -hex 24)"   # 48 random characters

    # A clean environment: valet rejects unknown VALET_* variables (VALET_BIN included),
    # and nothing from the caller's environment should change the configuration.
    local -a env=(
        -i "PATH=$PATH" "HOME=$HOME"
        "VALET_DATABASE_URL=sqlite://$dir/valet.db"
        "VALET_LISTEN=$HOST:$port"
        "VALET_ISSUER=$base"
        "VALET_TOKENS__SIGNING_ALG=$alg"
        "VALET_SECRET=$secret"
        # One client at full speed is what is measured, not the flood limit (bench/flood.sh).
        "VALET_RATE_LIMIT__PER_CLIENT=0"
        "RUST_LOG=warn"
    )

    log "$alg: starting valet serve on $base"
    (cd "$dir" && exec env "${env[@]}" "$BIN" serve) >"$dir/server.log" 2>&1 &
    SERVER_PID=$!

    local waited=0 code=""
    while :; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID" 2>/dev/null || true
            SERVER_PID=""
            tail -n 30 "$dir/server.log" >&2 || true
            die "$alg: valet serve exited before becoming ready"
        fi
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/readyz" || true)"
        [[ "$code" == 200 ]] && break
        if (( waited >= READY_TIMEOUT * 10 )); then
            tail -n 30 "$dir/server.log" >&2 || true
            die "$alg: /readyz did not return 200 within ${READY_TIMEOUT}s (last status: ${code:-none})"
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    log "$alg: ready after ~$((waited / 10)).$((waited % 10))s"

    # Provision through the CLI against the same store.
    (cd "$dir" && env "${env[@]}" "$BIN" api create --identifier "$AUDIENCE" --name Contacts \
        --scope "read:contacts create:contacts delete:contacts") >"$dir/api.out" 2>"$dir/api.err" \
        || { cat "$dir/api.err" >&2; die "$alg: valet api create failed"; }
    (cd "$dir" && env "${env[@]}" "$BIN" client create --name bench --grant-type client_credentials \
        --scope read:contacts --audience "$AUDIENCE" --json) >"$dir/client.json" 2>"$dir/client.err" \
        || { cat "$dir/client.err" >&2; die "$alg: valet client create failed"; }

    local basic
    basic="$(python3 - "$dir/client.json" <<'PY'
import base64, json, sys, urllib.parse
c = json.load(open(sys.argv[1]))
cred = urllib.parse.quote_plus(c["client_id"]) + ":" + urllib.parse.quote_plus(c["client_secret"])
print(base64.b64encode(cred.encode()).decode())
PY
)" || die "$alg: could not read client_id/client_secret from: $(cat "$dir/client.json")"

    local body="grant_type=client_credentials&audience=https%3A%2F%2Fcontacts.example.com"
    local ctype="application/x-www-form-urlencoded"

    # One token request by hand: it must return an access_token.
    local resp
    resp="$(curl -s --max-time 10 -H "Authorization: Basic $basic" -H "Content-Type: $ctype" \
        --data "$body" "$base/token")" || die "$alg: token request failed (curl)"
    python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d.get("access_token") and d.get("token_type","").lower()=="bearer"' "$resp" 2>/dev/null \
        || die "$alg: token request did not return an access_token: $resp"
    local jwt_alg
    jwt_alg="$(python3 -c '
import base64,json,sys
h=json.loads(sys.argv[1])["access_token"].split(".")[0]
print(json.loads(base64.urlsafe_b64decode(h+"="*(-len(h)%4)))["alg"])' "$resp")"
    [[ "$jwt_alg" == "$alg" ]] || die "$alg: token is signed with $jwt_alg, expected $alg"

    local -a oha_args=(--no-tui -c "$BENCH_CONCURRENCY" -m POST
        -H "Authorization: Basic $basic" -H "Content-Type: $ctype" -d "$body")

    log "$alg: warm-up ${BENCH_WARMUP}s"
    run_oha "${oha_args[@]}" -z "${BENCH_WARMUP}s" "${OHA_JSON[@]}" "$base/token" >/dev/null

    log "$alg: measuring ${BENCH_SECONDS}s, concurrency $BENCH_CONCURRENCY, keep-alive"
    run_oha "${oha_args[@]}" "${OHA_WAIT[@]+"${OHA_WAIT[@]}"}" -z "${BENCH_SECONDS}s" "${OHA_JSON[@]}" \
        "$base/token" >"$dir/oha.json"

    local stats
    stats="$(python3 - "$dir/oha.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["summary"]
codes = {str(k): v for k, v in (d.get("statusCodeDistribution") or {}).items()}
ok = sum(v for k, v in codes.items() if k.startswith("2"))
non2xx = sum(v for k, v in codes.items() if not k.startswith("2"))
errs = d.get("errorDistribution") or {}
# Requests cut off by the end of the run are not server failures.
errors = sum(v for k, v in errs.items() if "deadline" not in k.lower())
p50 = (d.get("latencyPercentiles") or {}).get("p50")
# oha counts every request it finished in requestsPerSec; count only 2xx as tokens.
total = sum(codes.values())
rps = s["requestsPerSec"] * (ok / total if total else 0.0)
print(f"{rps:.0f} {p50 * 1000 if p50 is not None else float('nan'):.2f} {ok} {non2xx} {errors}")
for k, v in codes.items():
    if not k.startswith("2"):
        print(f"status {k}: {v}", file=sys.stderr)
for k, v in errs.items():
    print(f"oha error {k!r}: {v}", file=sys.stderr)
PY
)" || die "$alg: could not parse oha output"
    local rps p50 ok non2xx errors
    read -r rps p50 ok non2xx errors <<<"$stats"
    log "$alg: $rps tokens/s, median ${p50} ms, $ok ok, $non2xx non-2xx, $errors errors"

    # Stop the server before measuring openssl so they do not compete for the cores.
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""

    local problems
    problems="$(grep -Ei 'panic|error' "$dir/server.log" | head -n 20 || true)"
    if [[ -n "$problems" ]]; then
        log "$alg: server log mentions errors:"
        printf '%s\n' "$problems" >&2
    fi
    if [[ -n "${BENCH_KEEP_LOGS:-}" ]]; then
        mkdir -p "$BENCH_KEEP_LOGS"
        cp "$dir/server.log" "$BENCH_KEEP_LOGS/server-$alg.log"
        cp "$dir/oha.json" "$BENCH_KEEP_LOGS/oha-$alg.json"
    fi

    log "$alg: openssl speed -multi 2 -seconds $BENCH_OPENSSL_SECS"
    local sign ratio
    sign="$(openssl_sign_per_sec "$alg")"
    ratio="$(python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.2f}")' "$rps" "$sign")"

    RESULTS+=("$alg $rps $p50 $sign $ratio $non2xx $errors")
    if (( non2xx > 0 || errors > 0 || ok == 0 )); then
        FAILED=1
    fi
    rm -rf -- "$dir"
}

for alg in $BENCH_ALGS; do
    bench_alg "$alg"
done

# ---------------------------------------------------------------- report
echo
echo "Valet POST /token (client_credentials), SQLite, ${BENCH_SECONDS}s, c=$BENCH_CONCURRENCY, keep-alive; $(nproc) cores"
printf '| %-5s | %9s | %10s | %16s | %17s | %7s | %6s |\n' \
    alg tokens/s "median ms" "openssl sign/s" "tokens/s ÷ sign/s" non-2xx errors
printf '| %-5s | %9s | %10s | %16s | %17s | %7s | %6s |\n' \
    ----- --------- ---------- ---------------- ----------------- ------- ------
for row in "${RESULTS[@]}"; do
    read -r alg rps p50 sign ratio non2xx errors <<<"$row"
    printf '| %-5s | %9s | %10s | %16s | %17s | %7s | %6s |\n' \
        "$alg" "$rps" "$p50" "$sign" "$ratio" "$non2xx" "$errors"
done

if (( FAILED )); then
    die "some requests failed (non-2xx or connection errors): see above"
fi
