#!/usr/bin/env bash
# End-to-end test of the Dockerfile with podman, following /work/shared/CONTAINER.md:
# build the image, check its size (at most VALET_CT_MAX_MB, default 40 MB) and its file system
# (no shell, /var/lib/valet owned by 10001), run it against PostgreSQL at 127.0.0.1:5432
# (reached by a host name, so the image's name lookup is tested), issue and introspect a
# token, check it runs as non-root and stops cleanly (exit 0, well under the 10 s grace
# period), then run it on its defaults (SQLite in /var/lib/valet, no network) until its own
# HEALTHCHECK says healthy. The image has no shell: every check runs valet itself or looks
# from outside (podman inspect, podman export, /proc of the container's process).
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
# VALET_CT_BINARY=target/release/valet (any valet built on bookworm-compatible glibc) skips
# the compile: the Dockerfile's rootfs and runtime stages, unchanged, are built around that
# binary (in the same builder image, which has ldd and strip). That tests everything but the
# compile (measured on two cores: 25 s in all with a warm cache, 2.5 minutes with a cold one,
# against 5-6 minutes for the full build); see docs/deploy.md. A debug binary makes a bigger
# image: raise VALET_CT_MAX_MB for it. VALET_CT_BUILD_TWICE=1 builds twice, to time the layer
# cache.
#
# VALET_CT_PREPARE=1 stops after the build, checking nothing: it fills the cache (podman, the
# base and builder images, the build's layers) so that a later run only checks. .ci/run starts
# it in the background at nice 19 while the tests build and run, which leave a core idle much
# of the time; without a cache directory it has nothing to keep and stops at once.
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
PREPARE=${VALET_CT_PREPARE:-0}
if [[ $PREPARE == 1 && $CACHING == 0 ]]; then
  printf '== VALET_CT_PREPARE: no cache directory to fill (VALET_CT_CACHE=%s); nothing to do\n' "${VALET_CT_CACHE:-}" >&2
  rmdir "$WORK"
  exit 0
fi

IMAGE=localhost/valet:test
MAX_MB=${VALET_CT_MAX_MB:-40}
DB_HOST=valet-ct-db   # resolved to 127.0.0.1 through the container's /etc/hosts (--add-host)
BUILDER=localhost/valet-builder
RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
CARGO_HOME=${CARGO_HOME:-$HOME/.cargo}
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
HOST_CA=/opt/valet-host-ca.crt
PG=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -qtA)
DB=valet_container_test_$(od -An -N4 -tx4 /dev/urandom | tr -d ' ')
CONTAINER=valet-ct-$$
SQLITE_CONTAINER=$CONTAINER-sqlite
LOGS_OF=$CONTAINER   # the container whose logs a failure shows
DB_CREATED=0

log() { printf '== %s\n' "$*" >&2; }
now() { date +%s%N; }
took() { awk -v a="$1" -v b="$(now)" -v s="$2" 'BEGIN { printf "TIME %-16s %6.1f s\n", s, (b - a) / 1e9 }' >&2; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local rc=$?
  set +e
  if [[ $rc -ne 0 ]] && command -v podman >/dev/null; then
    podman container exists "$LOGS_OF" 2>/dev/null && podman logs "$LOGS_OF" 2>&1 | tail -n 30 >&2
  fi
  if command -v podman >/dev/null && [[ -f $WORK/containers.conf ]]; then
    podman rm -f "$CONTAINER" >/dev/null 2>&1
    podman rm -f "$CONTAINER-cli" "$CONTAINER-fs" "$SQLITE_CONTAINER" >/dev/null 2>&1
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
  if [[ $rc -ne 0 ]]; then log "FAILED (exit $rc)"; elif [[ $PREPARE == 1 ]]; then log "PREPARED"; else log "PASS"; fi
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
# Always built, with VALET_CT_BINARY too (its rootfs stage runs ldd and strip in it): podman's
# layer cache makes an unchanged one take a second.
cat > "$WORK/Containerfile.builder" <<CONF
FROM localhost/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates pkg-config \\
 && rm -rf /var/lib/apt/lists/*
# The toolchain is bind-mounted at build time: RUSTUP_HOME read-only at its host path, the
# rustup proxies (cargo, rustc) at /opt/cargo-bin; CARGO_HOME is writable, as in rust:1-slim.
# The host's CA bundle (its TLS proxy) is mounted beside, not over, /etc/ssl/certs: a build
# volume is mounted into every RUN step, and the rootfs stage copies Debian's bundle from
# /etc/ssl/certs into the image.
ENV RUSTUP_HOME=$RUSTUP_HOME CARGO_HOME=/usr/local/cargo CARGO_HTTP_CAINFO=$HOST_CA \\
    PATH=/opt/cargo-bin:/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
CONF
podman build --pull=never -t "$BUILDER" -f "$WORK/Containerfile.builder" "$WORK" >"$WORK/builder.log" 2>&1 \
  || { tail -n 20 "$WORK/builder.log" >&2; fail "builder image"; }
took "$t" builder-image

# --- the image under test --------------------------------------------------------------------
# --format docker: podman's default OCI format has no HEALTHCHECK (it would be dropped).
if [[ -n ${VALET_CT_BINARY:-} ]]; then
  # The rootfs and runtime stages exactly as in the Dockerfile; the builder stage is the
  # builder image with the given binary where cargo would have installed it.
  mkdir -p "$WORK/ctx/config"
  cp "$VALET_CT_BINARY" "$WORK/ctx/valet"
  cp "$REPO/config/valet.toml" "$WORK/ctx/config/"
  grep -q '^FROM builder AS rootfs$' "$REPO/Dockerfile" || fail "Dockerfile has no 'FROM builder AS rootfs' stage"
  { printf 'FROM %s AS builder\nCOPY valet /usr/local/bin/valet\n\n' "$BUILDER"
    sed -n '/^FROM builder AS rootfs$/,$p' "$REPO/Dockerfile"; } > "$WORK/ctx/Containerfile"
  BUILD=(podman build --pull=never --format docker -t "$IMAGE" -f "$WORK/ctx/Containerfile" "$WORK/ctx")
else
  # Prepared in the background (.ci/run), the build's RUN steps get the fewest CPU shares their
  # cgroups can have, so the tests beside them keep the cores they want; the layer cache does
  # not depend on it.
  SHARES=()
  [[ $PREPARE == 1 ]] && SHARES=(--cpu-shares=2)
  FULL_BUILD=(podman build --pull=never --format docker "${SHARES[@]}" --build-arg RUST_IMAGE="$BUILDER"
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
if [[ $CACHING == 1 ]]; then
  # Keep the cache from growing by a release target/ (about 1.4 GB) per source change: tag
  # this build's builder stage (a layer-cache hit), so its layers stay referenced, then prune
  # what only older builds used. With VALET_CT_BINARY, prune only: each run's binary layer
  # (and the rootfs stage on it) would stay behind otherwise.
  t=$(now)
  if [[ -z ${VALET_CT_BINARY:-} ]]; then
    "${FULL_BUILD[@]}" --target builder -t localhost/valet-build-cache "$REPO" >"$WORK/tag.log" 2>&1 \
      || { tail -n 20 "$WORK/tag.log" >&2; fail "tagging the builder stage"; }
  fi
  podman image prune -f >/dev/null
  took "$t" cache-prune
fi
if [[ $PREPARE == 1 ]]; then
  log "prepared: the next run finds the images and the build's layers in $CACHE"
  exit 0
fi

# --- the image itself ------------------------------------------------------------------------
SIZE=$(podman image inspect -f '{{.Size}}' "$IMAGE")
log "$(awk -v s="$SIZE" -v m="$MAX_MB" 'BEGIN { printf "image size %.1f MB (limit %d MB)", s / 1e6, m }')"
(( SIZE <= MAX_MB * 1000000 )) || fail "image is $SIZE bytes, more than $MAX_MB MB"
USER_CFG=$(podman image inspect -f '{{.Config.User}}' "$IMAGE")
[[ $USER_CFG == 10001:10001 ]] || fail "image user is '$USER_CFG', want 10001:10001"
HEALTHCHECK_CMD=$(podman image inspect -f '{{if .HealthCheck}}{{join .HealthCheck.Test " "}}{{end}}' "$IMAGE")
[[ $HEALTHCHECK_CMD == "CMD /usr/local/bin/valet health --url http://127.0.0.1:8080/readyz" ]] \
  || fail "image HEALTHCHECK is '$HEALTHCHECK_CMD'"
# Its file system, from outside (there is no shell to look from inside).
podman create -q --pull=never --no-healthcheck --name "$CONTAINER-fs" "$IMAGE" >/dev/null
podman export "$CONTAINER-fs" > "$WORK/fs.tar"
podman rm -f "$CONTAINER-fs" >/dev/null
python3 - "$WORK/fs.tar" <<'PY' || fail "image file system"
import stat, sys, tarfile
entries = {}
for m in tarfile.open(sys.argv[1]):
    name = m.name.removeprefix("./").strip("/")
    if name:
        entries[name] = m
for name in sorted(entries):
    m = entries[name]
    if not m.isdir():
        link = f" -> {m.linkname}" if m.issym() or m.islnk() else ""
        print(f"==   {m.uid}:{m.gid} {stat.S_IMODE(m.mode):04o} {m.size:>9} /{name}{link}", file=sys.stderr)
def check(name, uid, gid, mode):
    m = entries.get(name)
    assert m is not None, f"/{name} missing"
    got = (m.uid, m.gid, stat.S_IMODE(m.mode))
    assert got == (uid, gid, mode), f"/{name} is {got[0]}:{got[1]} {got[2]:04o}, want {uid}:{gid} {mode:04o}"
check("usr/local/bin/valet", 0, 0, 0o755)
check("var/lib/valet", 10001, 10001, 0o750)
check("tmp", 0, 0, 0o1777)
check("etc/valet/valet.toml", 0, 0, 0o644)
ca = entries.get("etc/ssl/certs/ca-certificates.crt")
assert ca is not None and ca.size > 100000, "no CA bundle"
for shell in ("bin/sh", "usr/bin/sh", "bin/bash", "usr/bin/bash", "bin/busybox"):
    assert shell not in entries, f"/{shell} is in the image"
PY
# The image's own defaults: listen on all interfaces, the bundled config file.
podman run --rm --pull=never --no-healthcheck --network none "$IMAGE" config > "$WORK/config.toml" 2>&1 \
  || { cat "$WORK/config.toml" >&2; fail "valet config in the image"; }
grep -q '^listen = "0.0.0.0:8080"' "$WORK/config.toml" || fail "image does not listen on 0.0.0.0:8080"

# --- run against PostgreSQL ------------------------------------------------------------------
t=$(now)
"${PG[@]}" -c "CREATE DATABASE $DB" >/dev/null
DB_CREATED=1
PGPASSWORD_PART=${PGPASSWORD:+:$PGPASSWORD}
DATABASE_URL="postgres://postgres$PGPASSWORD_PART@$DB_HOST:5432/$DB"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
SECRET=$(head -c 32 /dev/urandom | base64)
# --no-healthcheck: the image's HEALTHCHECK probes port 8080, these containers listen on PORT
# (and podman would try to start a systemd timer for it); the HEALTHCHECK is tested below.
ENVS=(--no-healthcheck --add-host "$DB_HOST:127.0.0.1"
  -e VALET_SECRET="$SECRET" -e VALET_DATABASE_URL="$DATABASE_URL"
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
# The HEALTHCHECK's command inside the container (no curl there), on this run's port and
# through a host name.
podman exec "$CONTAINER" /usr/local/bin/valet health --url "http://localhost:$PORT/readyz" >/dev/null \
  || fail "valet health inside the container"

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

# Non-root, seen from the host: real, effective, saved and file-system ids of its process.
PID=$(podman inspect -f '{{.State.Pid}}' "$CONTAINER")
IDS=$(awk '$1 == "Uid:" || $1 == "Gid:" { print $2, $3, $4, $5 }' "/proc/$PID/status" | tr '\n' ' ')
[[ $IDS == "10001 10001 10001 10001 10001 10001 10001 10001 " ]] || fail "container process uids/gids: $IDS"
UID_IN=${IDS%% *}
USERS=$(podman top "$CONTAINER" user group | tail -n +2 | tr -s ' ' | sort -u | tr '\n' ';')
[[ $USERS == "valet valet;" ]] || fail "container processes run as: $USERS"
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

# --- its defaults and its own HEALTHCHECK: SQLite in /var/lib/valet, no network ---------------
t=$(now)
# podman's own timer for the check needs systemd (not running here: it logs errors, which go
# to a file); the check is run by hand below.
podman run -d --pull=never --network none --name "$SQLITE_CONTAINER" "$IMAGE" >/dev/null 2>"$WORK/sqlite.log" \
  || { cat "$WORK/sqlite.log" >&2; fail "podman run on the defaults"; }
LOGS_OF=$SQLITE_CONTAINER
CHECK=$(podman inspect -f '{{join .Config.Healthcheck.Test " "}}' "$SQLITE_CONTAINER")
[[ $CHECK == "$HEALTHCHECK_CMD" ]] || fail "the container's health check is '$CHECK', not the image's"
HEALTH=none
for _ in $(seq 1 50); do
  # Runs the image's HEALTHCHECK command now.
  podman healthcheck run "$SQLITE_CONTAINER" >/dev/null 2>&1 && { HEALTH=healthy; break; }
  [[ $(podman inspect -f '{{.State.Running}}' "$SQLITE_CONTAINER") == true ]] || fail "container on its defaults exited"
  sleep 0.2
done
[[ $HEALTH == healthy ]] || fail "HEALTHCHECK never passed"
HEALTH=$(podman inspect -f '{{.State.Health.Status}}' "$SQLITE_CONTAINER")
[[ $HEALTH == healthy ]] || fail "health status '$HEALTH'"
podman diff "$SQLITE_CONTAINER" > "$WORK/diff.txt"
grep -qx 'A /var/lib/valet/valet.db' "$WORK/diff.txt" && grep -qx 'A /var/lib/valet/valet.db.secret' "$WORK/diff.txt" \
  || { cat "$WORK/diff.txt" >&2; fail "no valet.db and valet.db.secret in /var/lib/valet"; }
podman stop -t 10 "$SQLITE_CONTAINER" >/dev/null 2>>"$WORK/sqlite.log"
EXIT=$(podman inspect -f '{{.State.ExitCode}}' "$SQLITE_CONTAINER")
[[ $EXIT == 0 ]] || fail "exit code $EXIT after SIGTERM (SQLite)"
took "$t" sqlite-healthcheck

log "image $(awk -v s="$SIZE" 'BEGIN { printf "%.1f MB", s / 1e6 }'), uid $UID_IN, token active, stopped with exit 0 in $((stop_ns / 1000000)) ms, HEALTHCHECK $HEALTH"
