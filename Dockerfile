# Valet's container image: a release build in a Rust toolchain image, then only the binary
# (and the documented config file) in debian:bookworm-slim, run as an unprivileged user.
#
#   docker build -t valet .
#   docker build --build-arg RUST_IMAGE=rust:1.95-slim-bookworm -t valet .   # pin the toolchain
#
# RUST_IMAGE must be a Debian bookworm image with cargo on PATH and gcc / libc6-dev installed
# (aws-lc-rs and the bundled SQLite compile C code). scripts/container-test.sh passes a local
# image made from the host's toolchain, because no registry is reachable on the CI machines.
# See docs/deploy.md.

ARG RUST_IMAGE=rust:1-slim-bookworm

FROM ${RUST_IMAGE} AS builder
WORKDIR /build

# 1. Dependencies only, cached as a layer until Cargo.toml or Cargo.lock changes: build the
#    locked dependency graph against stub sources (the crate has both a library and a binary).
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo '// stub for dependency caching' > src/lib.rs \
 && echo 'fn main() {}' > src/main.rs \
 && cargo build --release --locked --bin valet \
 && rm -rf src

# 2. The real sources. Everything compiled in: migrations (sqlx::migrate!) and templates
#    (include_str!). `touch` makes cargo rebuild the crate over the stub's artifacts even when
#    COPY keeps older modification times.
COPY src ./src
COPY migrations ./migrations
COPY templates ./templates
RUN touch src/lib.rs src/main.rs \
 && cargo build --release --locked --bin valet \
 && install -m 0755 target/release/valet /usr/local/bin/valet

FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# uid/gid 10001: outside the range Debian gives to system and login accounts, so it matches
# no user of the host or of a mounted volume by accident.
RUN groupadd --system --gid 10001 valet \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/valet --no-create-home \
      --shell /usr/sbin/nologin valet \
 && install -d -o valet -g valet -m 0750 /var/lib/valet

COPY --from=builder /usr/local/bin/valet /usr/local/bin/valet
# Every key with its built-in default; VALET_* variables override it (env beats the file).
COPY config/valet.toml /etc/valet/valet.toml

ENV VALET_CONFIG=/etc/valet/valet.toml \
    VALET_LISTEN=0.0.0.0:8080

# The working directory is where the default store (sqlite://valet.db) and, with SQLite and
# no VALET_SECRET, its generated valet.db.secret land: mount a named volume here to keep
# them (no VOLUME instruction, so a PostgreSQL deployment gets no stray anonymous volume).
WORKDIR /var/lib/valet
USER 10001:10001

EXPOSE 8080

# The image has no curl or wget (on purpose): `valet health` does the one GET it takes.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s \
  CMD ["/usr/local/bin/valet", "health", "--url", "http://127.0.0.1:8080/readyz"]

# valet handles SIGTERM as PID 1: /readyz turns 503 for http.shutdown_delay, in-flight
# requests get http.drain_timeout (8s), then it exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/valet"]
CMD ["serve"]
