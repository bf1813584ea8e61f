#!/usr/bin/env bash
# Interop: start a real Valet on SQLite in a temp dir, provision it with the CLI, and drive it
# with stock relying-party libraries (interop.mjs: openid-client, oauth4webapi, jose).
#
#   tests/interop/run.sh [VALET_BIN]     (or VALET_BIN=...; default target/debug/valet)
#
# INTEROP_KEEP=1 keeps the temp dir.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

bin="${1:-${VALET_BIN:-target/debug/valet}}"
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac
if [ ! -x "$bin" ]; then
  echo "interop: no valet binary at $bin (build it, or pass its path)" >&2
  exit 2
fi
command -v node >/dev/null 2>&1 || { echo "interop: node is not installed" >&2; exit 2; }
command -v npm >/dev/null 2>&1 || { echo "interop: npm is not installed" >&2; exit 2; }

# Node 18 has WebCrypto only behind a flag; the libraries need globalThis.crypto.
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$node_major" -lt 20 ]; then
  export NODE_OPTIONS="${NODE_OPTIONS:+$NODE_OPTIONS }--experimental-global-webcrypto"
fi

# The libraries, from the committed lockfile (a fresh clone has no node_modules).
if [ ! -d "$here/node_modules" ] || [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/valet-interop.XXXXXX")"
pid=""
cleanup() {
  local status=$?
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    echo "--- valet CLI log ---"
    cat "$tmp/cli.log" 2>/dev/null || true
    echo "--- valet server log (last 40 lines) ---"
    tail -n 40 "$tmp/server.log" 2>/dev/null || true
  fi
  if [ "${INTEROP_KEEP:-0}" = 1 ]; then echo "interop: kept $tmp"; else rm -rf "$tmp"; fi
  exit "$status"
}
trap cleanup EXIT

free_port() {
  node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close() })'
}
port="$(free_port)"
rp_port="$(free_port)" # the relying parties' redirect URIs: nothing listens there, the redirect is read, not followed
issuer="http://127.0.0.1:$port"
reload=1

# One config file for the server and every CLI call (so config/valet.toml of the cwd is never
# read). keys.reload_interval is short so that `valet keys rotate` reaches the running server
# within a second, well inside the 30 s cooldown of the resource server's JWKS cache.
cat >"$tmp/valet.toml" <<EOF
database_url = "sqlite://$tmp/valet.db"
listen = "127.0.0.1:$port"
issuer = "$issuer"

[keys]
reload_interval = "${reload}s"

[registration]
mode = "open"
audiences = ["https://contacts.example.com"]
EOF
export VALET_CONFIG="$tmp/valet.toml"
# Nothing from the caller's environment overrides the file.
unset VALET_DATABASE_URL DATABASE_URL VALET_LISTEN VALET_ISSUER VALET_SECRET

"$bin" serve >"$tmp/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  if "$bin" health --url "$issuer/healthz" >/dev/null 2>&1; then break; fi
  kill -0 "$pid" 2>/dev/null || { echo "interop: valet serve exited" >&2; exit 1; }
  sleep 0.1
done
"$bin" health --url "$issuer/healthz" >/dev/null 2>&1 || { echo "interop: $issuer/healthz never answered 200" >&2; exit 1; }
echo "interop: valet $("$bin" --version | awk '{print $NF}') serving $issuer (SQLite in $tmp)"

# Provision with the CLI; each --json answer is read with node (no jq needed).
field() { node -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => console.log(JSON.parse(s)[process.argv[1]]))' "$1"; }

password="interop-$(node -p 'require("crypto").randomBytes(12).toString("hex")')"
printf '%s\n' "$password" | "$bin" user create --username alice --email alice@example.com \
  --name "Alice Liddell" --password-stdin --json >/dev/null 2>"$tmp/cli.log"
api=https://contacts.example.com
"$bin" api create --identifier "$api" --name Contacts --scope "read:contacts" --json >/dev/null 2>>"$tmp/cli.log"

web_redirect="http://127.0.0.1:$rp_port/cb"
web_logout_redirect="http://127.0.0.1:$rp_port/signed-out"
web_client() {
  "$bin" client create --name "Interop Web" --redirect-uri "$web_redirect" \
    --grant-type authorization_code --grant-type refresh_token "$@" --json 2>>"$tmp/cli.log"
}
web="$(web_client --post-logout-redirect-uri "$web_logout_redirect")"

spa_redirect="http://127.0.0.1:$rp_port/spa/cb"
spa="$("$bin" client create --name "Interop SPA" --public --redirect-uri "$spa_redirect" --json 2>>"$tmp/cli.log")"

svc="$("$bin" client create --name "Interop Service" --grant-type client_credentials \
  --scope read:contacts --audience "$api" --json 2>>"$tmp/cli.log")"

tv="$("$bin" client create --name "Interop TV" \
  --grant-type urn:ietf:params:oauth:grant-type:device_code --json 2>>"$tmp/cli.log")"
# A private_key_jwt service client: its key pair made in node, the public JWK Set registered.
(cd "$here" && node client-key.mjs "$tmp/pkjwt-public.json" "$tmp/pkjwt-private.json")
pkjwt="$("$bin" client create --name "Interop Signed Service" --grant-type client_credentials \
  --scope read:contacts --audience "$api" --token-endpoint-auth-method private_key_jwt \
  --jwks-file "$tmp/pkjwt-public.json" --json 2>>"$tmp/cli.log")"

export INTEROP_ISSUER="$issuer"
export INTEROP_USERNAME=alice INTEROP_PASSWORD="$password"
export INTEROP_USER_EMAIL=alice@example.com INTEROP_USER_NAME="Alice Liddell"
INTEROP_WEB_CLIENT_ID="$(field client_id <<<"$web")"
INTEROP_WEB_CLIENT_SECRET="$(field client_secret <<<"$web")"
export INTEROP_WEB_CLIENT_ID INTEROP_WEB_CLIENT_SECRET
export INTEROP_WEB_REDIRECT_URI="$web_redirect" INTEROP_WEB_POST_LOGOUT_REDIRECT_URI="$web_logout_redirect"
INTEROP_SPA_CLIENT_ID="$(field client_id <<<"$spa")"
export INTEROP_SPA_CLIENT_ID INTEROP_SPA_REDIRECT_URI="$spa_redirect"
INTEROP_SERVICE_CLIENT_ID="$(field client_id <<<"$svc")"
INTEROP_SERVICE_CLIENT_SECRET="$(field client_secret <<<"$svc")"
export INTEROP_SERVICE_CLIENT_ID INTEROP_SERVICE_CLIENT_SECRET
INTEROP_DEVICE_CLIENT_ID="$(field client_id <<<"$tv")"
INTEROP_DEVICE_CLIENT_SECRET="$(field client_secret <<<"$tv")"
export INTEROP_DEVICE_CLIENT_ID INTEROP_DEVICE_CLIENT_SECRET
INTEROP_PKJWT_CLIENT_ID="$(field client_id <<<"$pkjwt")"
export INTEROP_PKJWT_CLIENT_ID INTEROP_PKJWT_PRIVATE_JWK="$tmp/pkjwt-private.json"
export INTEROP_API="$api" INTEROP_API_SCOPE=read:contacts
export INTEROP_VALET_BIN="$bin" INTEROP_KEYS_RELOAD_SECONDS="$reload"

status=0
(cd "$here" && node interop.mjs) || status=$?

# The README's "Sign in with Valet" example, exactly as written there.
sed -n '/<!-- signin:start -->/,/<!-- signin:end -->/p' "$root/README.md" \
  | sed '1,2d;$d' | sed '$d' >"$here/readme-signin.mjs"
(cd "$here" && VALET_ISSUER="$issuer" CLIENT_ID="$INTEROP_WEB_CLIENT_ID" \
  CLIENT_SECRET="$INTEROP_WEB_CLIENT_SECRET" REDIRECT_URI="$web_redirect" node readme.mjs) || status=$?
rm -f "$here/readme-signin.mjs"

# The README's MCP-style registration example, exactly as written there.
sed -n '/<!-- register:start -->/,/<!-- register:end -->/p' "$root/README.md" \
  | sed '1,2d;$d' | sed '$d' >"$here/readme-register-example.mjs"
(cd "$here" && RESOURCE_METADATA="$issuer/.well-known/oauth-protected-resource/contacts.example.com" \
  REDIRECT_URI="http://127.0.0.1:$rp_port/mcp/cb" node readme-register.mjs) || status=$?
rm -f "$here/readme-register-example.mjs"
exit "$status"
