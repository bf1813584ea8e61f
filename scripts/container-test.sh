#!/usr/bin/env bash
# End-to-end test of the Dockerfile with podman, following /work/shared/CONTAINER.md:
# build the image, run it against PostgreSQL at 127.0.0.1:5432, issue and introspect a token,
# check it runs as non-root and stops cleanly (exit 0, well under the 10 s grace period).
#
# Needs root, a reachable PostgreSQL (psql -h 127.0.0.1 -U postgres), curl, python3 and the
# host's Rust toolchain (rustup) — it is bind-mounted read-only into the build, because no
# registry is reachable for rust:1-slim-bookworm.
#
# Caching: if VALET_CT_CACHE (default /var/cache/valet-container-test) exists or can be
# created, it keeps the debootstrap root file system and podman's storage (base, builder and
# layer cache) between runs, so a second run skips debootstrap and, unless Cargo.toml or
# Cargo.lock changed, the dependency build. VALET_CT_CACHE=none uses a throw-away directory
# and resets it at the end. The host's cargo registry ($CARGO_HOME/registry) is mounted into
# the build, so crates the host already fetched are not downloaded again.
# Timings go to stderr as "TIME <step> <seconds>".
#
# VALET_CT_BINARY=target/debug/valet (any valet built on bookworm-compatible glibc) skips the
# builder stage: the Dockerfile's runtime stage, unchanged, is built around that binary. That
# tests everything but the compile (measured on two cores: 50 s in all with a cold cache,
# against 5-6 minutes for the full build); see docs/deploy.md. VALET_CT_BUILD_TWICE=1 builds
# twice, to time the layer cache.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${VALET_CT_CACHE:-/var/cache/valet-container-test}
WORK=$(mktemp -d /tmp/valet-container-test.XXXXXX)
if [[ $CACHE == none ]] || ! mkdir -p "$CACHE" 2>/dev/null; then
  CACHE=$WORK/cache
  CACHING=0
else
  CACHING=1
fi

IMAGE=localhost/valet:test
BUILDER=localhost/valet-builder
RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
HOST_CA=/opt/valet-host-ca.crt
PG=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qtA)
DB=valet_container_test_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
CONTAINER=valet-ct-$$
DB_CREATED=0

log() { printf '== %s\n' "$*" >&2; }
now() { date +%s%N; }
took() { awk -v a="$1" -v b="$(now)" -v s="$2" 'BEGIN { printf "TIME %-16s %6.1f s\n", s, (b - a) / 1e9 }' >&2; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local rc=$?
  set +e
  if [[ $rc -ne 0 ]] && command -v podman >/dev/null; then
    podman container exists "$CONTAINER" 2>/dev/null && podman logs "$CONTAINER" 2>&1 | tail -n 30 >&2
  fi
  if command -v podman >/dev/null && [[ -f $WORK/containers.conf ]]; then
    podman rm -f "$CONTAINER" >/dev/null 2>&1
    podman rm -f "$CONTAINER-cli" >/dev/null 2>&1
    if [[ $CACHING == 1 ]]; then
      # Keep base, builder and the layer cache; drop only the image under test. No
      # `podman image prune`: the layer cache lives in dangling intermediate images.
      podman rmi -f "$IMAGE" >/dev/null 2>&1
    else
      podman system reset -f >/dev/null 2>&1
    fi
  fi
  [[ $DB_CREATED == 1 ]] && "${PG[@]}" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null
  rm -rf "$WORK"
  if [[ $rc -eq 0 ]]; then log "PASS"; else log "FAILED (exit $rc)"; fi
}
trap cleanup EXIT

# --- podman --------------------------------------------------------------------------------
t=$(now)
if ! command -v podman >/dev/null || ! command -v runc >/dev/null || ! command -v debootstrap >/dev/null; then
  log "installing podman runc debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc debootstrap >/dev/null
fi
took "$t" podman-install

HARD_NOFILE=$(ulimit -Hn)
[[ $HARD_NOFILE == unlimited ]] && HARD_NOFILE=1048576
cat > "$WORK/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=$HARD_NOFILE:$HARD_NOFILE", "nproc=32768:32768"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
CONF
cat > "$WORK/storage.conf" <<CONF
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$WORK/run"
CONF
export CONTAINERS_CONF=$WORK/containers.conf CONTAINERS_STORAGE_CONF=$WORK/storage.conf

# --- base image ----------------------------------------------------------------------------
t=$(now)
if ! podman image exists localhost/debian:bookworm-slim; then
  if [[ ! -f $CACHE/rootfs.tar ]]; then
    MIRROR=$( { grep -rhoE '^(URIs:|deb) +https?://[^ ]+/debian/?( |$)' /etc/apt/sources.list.d/ /etc/apt/sources.list 2>/dev/null || true; } \
      | grep -oE 'https?://[^ ]+' | head -n1 || true)
    MIRROR=${MIRROR:-http://deb.debian.org/debian}
    log "debootstrap bookworm from $MIRROR"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -n 20 "$WORK/debootstrap.log" >&2; fail debootstrap; }
    rm -rf "$WORK"/rootfs/var/cache/apt/archives/*.deb "$WORK"/rootfs/var/lib/apt/lists/*
    tar -C "$WORK/rootfs" -cf "$CACHE/rootfs.tar.tmp" . && mv "$CACHE/rootfs.tar.tmp" "$CACHE/rootfs.tar"
    rm -rf "$WORK/rootfs"
  fi
  podman import -q --change 'CMD ["bash"]' "$CACHE/rootfs.tar" localhost/debian:bookworm-slim >/dev/null
  podman tag localhost/debian:bookworm-slim docker.io/library/debian:bookworm-slim
fi
took "$t" base-image

# --- builder image: the real rust:1-slim-bookworm's packages, the host's toolchain -------------
t=$(now)
# Always built: podman's layer cache makes an unchanged one take a second.
if [[ -z ${VALET_CT_BINARY:-} ]]; then
  cat > "$WORK/Containerfile.builder" <<CONF
FROM localhost/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates pkg-config \\
 && rm -rf /var/lib/apt/lists/*
# The toolchain is bind-mounted at build time: RUSTUP_HOME read-only at its host path, the
# rustup proxies (cargo, rustc) at /opt/cargo-bin; CARGO_HOME is writable, as in rust:1-slim.
# The host's CA bundle (its TLS proxy) is mounted beside, not over, /etc/ssl/certs: a build
# volume is mounted into every RUN step, and the runtime stage installs ca-certificates.
ENV RUSTUP_HOME=$RUSTUP_HOME CARGO_HOME=/usr/local/cargo CARGO_HTTP_CAINFO=$HOST_CA \\
    PATH=/opt/cargo-bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CONF
  podman build --pull=never -t "$BUILDER" -f "$WORK/Containerfile.builder" "$WORK" >"$WORK/builder.log" 2>&1 \
    || { tail -n 20 "$WORK/builder.log" >&2; fail "builder image"; }
fi
took "$t" builder-image

# --- the image under test --------------------------------------------------------------------
if [[ -n ${VALET_CT_BINARY:-} ]]; then
  # The runtime stage exactly as in the Dockerfile, its builder replaced by the given binary.
  mkdir -p "$WORK/ctx/config"
  cp "$VALET_CT_BINARY" "$WORK/ctx/valet"
  cp "$REPO/config/valet.toml" "$WORK/ctx/config/"
  { printf 'FROM scratch AS builder\nCOPY valet /usr/local/bin/valet\n\n'
    sed -n '/^FROM debian:bookworm-slim/,$p' "$REPO/Dockerfile"; } > "$WORK/ctx/Containerfile"
  BUILD=(podman build --pull=never -t "$IMAGE" -f "$WORK/ctx/Containerfile" "$WORK/ctx")
else
  FULL_BUILD=(podman build --pull=never --build-arg RUST_IMAGE="$BUILDER"
    -v "$RUSTUP_HOME:$RUSTUP_HOME:ro" -v "$CARGO_HOME/bin:/opt/cargo-bin:ro"
    -v "$CA_BUNDLE:$HOST_CA:ro" -v "$CARGO_HOME/registry:/usr/local/cargo/registry"
    -f "$REPO/Dockerfile")
  BUILD=("${FULL_BUILD[@]}" -t "$IMAGE" "$REPO")
fi
t=$(now)
log "podman build (output in $WORK/build.log)"
"${BUILD[@]}" >"$WORK/build.log" 2>&1 || { tail -n 40 "$WORK/build.log" >&2; fail "podman build"; }
took "$t" build
if [[ ${VALET_CT_BUILD_TWICE:-0} == 1 ]]; then
  t=$(now)
  "${BUILD[@]}" >"$WORK/build2.log" 2>&1 || { tail -n 40 "$WORK/build2.log" >&2; fail "second podman build"; }
  took "$t" build-cached
fi
if [[ $CACHING == 1 && -z ${VALET_CT_BINARY:-} ]]; then
  # Keep the cache from growing by a release target/ (about 1.4 GB) per source change: tag
  # this build's builder stage (a layer-cache hit), so its layers stay referenced, then prune
  # what only older builds used.
  t=$(now)
  "${FULL_BUILD[@]}" --target builder -t localhost/valet-build-cache "$REPO" >"$WORK/tag.log" 2>&1 \
    || { tail -n 20 "$WORK/tag.log" >&2; fail "tagging the builder stage"; }
  podman image prune -f >/dev/null
  took "$t" cache-prune
fi
podman image inspect -f '{{.Size}}' "$IMAGE" | awk '{ printf "== image size %.1f MB\n", $1 / 1e6 }' >&2
# The image's own defaults: listen on all interfaces, the bundled config file, non-root.
podman run --rm --pull=never --network none "$IMAGE" config > "$WORK/config.toml" 2>&1 \
  || { cat "$WORK/config.toml" >&2; fail "valet config in the image"; }
grep -q '^listen = "0.0.0.0:8080"' "$WORK/config.toml" || fail "image does not listen on 0.0.0.0:8080"

# --- run against PostgreSQL ------------------------------------------------------------------
t=$(now)
"${PG[@]}" -c "CREATE DATABASE $DB" >/dev/null
DB_CREATED=1
PGPASSWORD_PART=${PGPASSWORD:+:$PGPASSWORD}
DATABASE_URL="postgres://postgres$PGPASSWORD_PART@127.0.0.1:5432/$DB"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
SECRET=$(head -c 32 /dev/urandom | base64)
ENVS=(-e VALET_SECRET="$SECRET" -e VALET_DATABASE_URL="$DATABASE_URL"
  -e VALET_LISTEN="127.0.0.1:$PORT" -e VALET_ISSUER="$BASE")

podman run -d --pull=never --network host --name "$CONTAINER" "${ENVS[@]}" "$IMAGE" >/dev/null
for _ in $(seq 1 100); do
  code=$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz" || true)
  [[ $code == 200 ]] && break
  [[ $(podman inspect -f '{{.State.Running}}' "$CONTAINER") == true ]] || fail "container exited"
  sleep 0.1
done
[[ $code == 200 ]] || fail "/readyz never answered 200 (last: $code)"
took "$t" start-to-ready
curl -fsS "$BASE/healthz" >/dev/null || fail /healthz
# The image's HEALTHCHECK command, run inside the container: no curl needed there.
podman exec "$CONTAINER" valet health --url "$BASE/readyz" >/dev/null || fail "valet health inside the container"

t=$(now)
cli() { podman run --rm --pull=never --network host --name "$CONTAINER-cli" "${ENVS[@]}" "$IMAGE" "$@"; }
AUD=https://contacts.example.com
cli api create --identifier "$AUD" --name Contacts --scope "read:contacts create:contacts" >/dev/null
cli client create --name ct-sync --grant-type client_credentials --scope read:contacts \
  --audience "$AUD" --json > "$WORK/client.json"
CLIENT_ID=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["client_id"])' < "$WORK/client.json")
CLIENT_SECRET=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["client_secret"])' < "$WORK/client.json")

curl -fsS -u "$CLIENT_ID:$CLIENT_SECRET" "$BASE/token" -d grant_type=client_credentials \
  -d audience="$AUD" > "$WORK/token.json" || fail "token request"
TOKEN=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' < "$WORK/token.json")
curl -fsS "$BASE/.well-known/jwks.json" > "$WORK/jwks.json"
python3 - "$TOKEN" "$WORK/jwks.json" "$BASE" <<'PY' || fail "token header/claims"
import base64, json, sys
token, jwks_file, issuer = sys.argv[1:]
def part(i):
    p = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
header, claims = part(0), part(1)
kids = {k["kid"] for k in json.load(open(jwks_file))["keys"]}
assert header["kid"] in kids, (header, kids)
assert claims["iss"] == issuer, claims
assert claims["aud"] in ("https://contacts.example.com", ["https://contacts.example.com"]), claims
PY
curl -fsS -u "$CLIENT_ID:$CLIENT_SECRET" "$BASE/introspect" -d token="$TOKEN" > "$WORK/introspect.json"
python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["active"] is True, d' \
  < "$WORK/introspect.json" || fail "introspection: $(cat "$WORK/introspect.json")"
took "$t" token-checks

UID_IN=$(podman exec "$CONTAINER" id -u)
[[ $UID_IN == 10001 ]] || fail "container runs as uid $UID_IN, want 10001"
[[ $(podman top "$CONTAINER" user | tail -n +2 | sort -u) != root ]] || fail "a process runs as root"
# Into a file first: `curl | grep -q` under pipefail fails when grep stops reading early.
curl -fsS "$BASE/metrics" > "$WORK/metrics.txt" || fail "/metrics"
grep -q '^valet_http_requests_total' "$WORK/metrics.txt" || fail "/metrics lacks request counts"

t=$(now)
podman stop -t 10 "$CONTAINER" >/dev/null
stop_ns=$(( $(now) - t ))
took "$t" stop
EXIT=$(podman inspect -f '{{.State.ExitCode}}' "$CONTAINER")
[[ $EXIT == 0 ]] || fail "exit code $EXIT after SIGTERM"
(( stop_ns < 5000000000 )) || fail "stop took $((stop_ns / 1000000)) ms (SIGTERM not handled?)"
log "uid $UID_IN, token active, stopped with exit 0 in $((stop_ns / 1000000)) ms"
