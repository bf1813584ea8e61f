#!/usr/bin/env bash
# Soak (issue 14): Valet on PostgreSQL under a realistic mix (examples/soak.rs:
# client_credentials, introspection, code flows through the real pages with RP-initiated
# logout, refresh, userinfo, revocation) at half the capacity measured first, for
# SOAK_SECONDS (default 600). Reports errors, the server's RSS after warm-up against its end
# and peak, and the store's row counts over time (the janitor must keep them flat).
#
# Token lifetimes are short (access 60 s, refresh 2 m idle / 3 m absolute, sessions 2 m,
# janitor every 15 s) so that rows expire, and are purged, within the run.
#
# Usage: bench/soak.sh   (VALET_BIN=…; SOAK_SECONDS; SOAK_ADMIN_URL, default
#                         postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
. bench/lib.sh
export PATH="$HOME/.cargo/bin:$PATH"
SOAK_SECONDS="${SOAK_SECONDS:-600}"
WARMUP=60
ADMIN_URL="${SOAK_ADMIN_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
DB=valet_soak
DB_URL="${ADMIN_URL%/*}/$DB"
AUDIENCE="https://contacts.example.com"

log() { printf '[soak] %s\n' "$*" >&2; }

cargo build --release --locked --example soak
BIN="$(realpath -- "${VALET_BIN:-target/release/valet}")"
GEN="$PWD/target/release/examples/soak"

DIR="$(mktemp -d -t valet-soak-XXXXXX)"
SERVER_PID=""
cleanup() {
    [[ -n "$SERVER_PID" ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf -- "$DIR"
}
trap cleanup EXIT

psql -q "$ADMIN_URL" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
psql -q "$ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null

PORT="$(free_port)"
BASE="http://127.0.0.1:$PORT"
ENV=(-i "PATH=$PATH" "HOME=$HOME" "RUST_LOG=warn"
    "VALET_DATABASE_URL=$DB_URL" "VALET_LISTEN=127.0.0.1:$PORT" "VALET_ISSUER=$BASE"
    "VALET_SECRET=$(openssl rand -hex 24)"
    "VALET_TOKENS__ACCESS_TOKEN_TTL=60s" "VALET_TOKENS__REFRESH_IDLE_TTL=120s"
    "VALET_TOKENS__REFRESH_ABSOLUTE_TTL=180s" "VALET_LOGIN__SESSION_TTL=120s"
    "VALET_JANITOR__INTERVAL=15s"
    # One web client and one service client carry the whole mix from loopback.
    "VALET_RATE_LIMIT__PER_CLIENT=0")
(cd "$DIR" && exec env "${ENV[@]}" "$BIN" serve) >"$DIR/server.log" 2>&1 &
SERVER_PID=$!
wait_ready "$BASE"
cli api create --identifier "$AUDIENCE" --name Contacts --scope "read:contacts" >/dev/null
cli client create --name soak-service --grant-type client_credentials --scope read:contacts \
    --audience "$AUDIENCE" --json >"$DIR/service.json"
cli client create --name soak-web --grant-type authorization_code,refresh_token \
    --redirect-uri http://127.0.0.1:9/cb --post-logout-redirect-uri http://127.0.0.1:9/bye \
    --scope "read:contacts" --audience "$AUDIENCE" --json >"$DIR/web.json"
USERS=()
for i in $(seq 0 49); do
    echo "soak-password" | cli user create --username "user$i" --password-stdin >/dev/null
    USERS+=("user$i")
done
python3 - "$DIR" "${USERS[@]}" <<'PY'
import json, sys
d = sys.argv[1]
service, web = (json.load(open(f"{d}/{n}.json")) for n in ("service", "web"))
json.dump({
    "service": service,
    "web": {**web, "redirect_uri": "http://127.0.0.1:9/cb",
            "post_logout_redirect_uri": "http://127.0.0.1:9/bye"},
    "audience": "https://contacts.example.com",
    "users": sys.argv[2:], "password": "soak-password",
}, open(f"{d}/clients.json", "w"))
PY
export SOAK_BASE="$BASE" SOAK_CLIENTS="$DIR/clients.json" SOAK_WORKERS=16

log "capacity: the mix flat out for 30 s"
SOAK_SECONDS=30 SOAK_RATE=0 "$GEN" >"$DIR/capacity.json"
CAPACITY="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops_per_second"])' "$DIR/capacity.json")"
RATE="$(python3 -c "print(round($CAPACITY / 2, 1))")"
log "capacity $CAPACITY ops/s; soaking at $RATE ops/s for ${SOAK_SECONDS}s"

TABLES="refresh_tokens grants sessions session_clients authorization_codes pending_requests revoked_access_tokens login_failures logout_deliveries consents"
rows() {
    local q="" t
    for t in $TABLES; do q+="(SELECT COUNT(*) FROM $t) AS $t,"; done
    psql -qAt -F' ' "$DB_URL" -c "SELECT ${q%,}"
}
SOAK_SECONDS="$SOAK_SECONDS" SOAK_RATE="$RATE" "$GEN" >"$DIR/soak.json" &
GEN_PID=$!
: >"$DIR/rss.txt"; : >"$DIR/rows.txt"
T=0
while kill -0 "$GEN_PID" 2>/dev/null; do
    echo "$T $(ps -o rss= -p "$SERVER_PID")" >>"$DIR/rss.txt"
    (( T % 60 == 0 )) && echo "$T $(rows)" >>"$DIR/rows.txt"
    sleep 10
    T=$((T + 10))
done
wait "$GEN_PID"
echo "$T $(rows)" >>"$DIR/rows.txt"

python3 - "$DIR" "$WARMUP" "$TABLES" <<'PY'
import json, sys
d, warmup, tables = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
soak = json.load(open(f"{d}/soak.json"))
cap = json.load(open(f"{d}/capacity.json"))
rss = [tuple(map(int, l.split())) for l in open(f"{d}/rss.txt") if len(l.split()) == 2]
# RSS swings by the Argon2 buffers (19 MiB each, handed back when idle), so compare windows:
# the minute after warm-up against the last minute, by their lows and their highs.
end_t = rss[-1][0]
first = [kb for t, kb in rss if warmup <= t < warmup + 60] or [kb for _, kb in rss]
last = [kb for t, kb in rss if t > end_t - 60] or [kb for _, kb in rss]
def pct(a, b): return f"{(b - a) / a * 100:+.1f} %"
print(f"capacity: {cap['ops_per_second']:.0f} ops/s (errors {cap['errors']})")
print(f"soak: {soak['operations']} operations in {soak['seconds']:.0f} s = {soak['ops_per_second']:.0f} ops/s, errors {soak['errors']} {soak['first_errors'][:3]}")
for name, o in sorted(soak["per_operation"].items()):
    print(f"  {name:<18} {o['count']:>7}  p50 {o['p50_ms']:7.1f} ms  p99 {o['p99_ms']:7.1f} ms")
print(f"RSS low:  {min(first)/1024:.1f} MiB in the minute after warm-up, {min(last)/1024:.1f} MiB in the last ({pct(min(first), min(last))})")
print(f"RSS high: {max(first)/1024:.1f} MiB in the minute after warm-up, {max(last)/1024:.1f} MiB in the last ({pct(max(first), max(last))}); peak {max(kb for _, kb in rss)/1024:.1f} MiB")
print("rows (t s: " + " ".join(tables) + "):")
for line in open(f"{d}/rows.txt"):
    print("  " + line.strip())
sys.exit(1 if soak["errors"] else 0)
PY
