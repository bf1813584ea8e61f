# Valet's container image: a release build in a Rust toolchain image, then only what the binary
# needs at run time (its shared libraries, the CA bundle, the documented config file) in an
# otherwise empty image, run as an unprivileged user. About 23 MB.
#
#   docker build -t valet .
#   docker build --build-arg RUST_IMAGE=rust:1.95-slim-bookworm -t valet .   # pin the toolchain
#
# RUST_IMAGE must be a Debian bookworm image with cargo on PATH and gcc / libc6-dev installed
# (aws-lc-rs and the bundled SQLite compile C code; gcc brings binutils' strip) and
# ca-certificates (its bundle is copied into the image), as rust:1-slim-bookworm has.
# scripts/container-test.sh passes a local image made from the host's toolchain, because no
# registry is reachable on the CI machines. See docs/deploy.md.

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

# 3. The runtime image's whole file system, assembled under /rootfs. Why an empty image
#    (`FROM scratch`) plus the libraries glibc's loader needs, rather than a static musl
#    binary: the musl target cannot be installed for the toolchain the build machines use, and
#    a glibc binary copied with exactly the libraries `ldd` names (libc, libm, libgcc_s and the
#    loader itself, taken from this same bookworm image) runs the same code Debian's would.
#    No shell and no package manager: nothing in the image runs one (ENTRYPOINT and
#    HEALTHCHECK are exec form, `valet health` does the health check's GET), and what is not
#    there cannot be used by an intruder. The binary is stripped here, not through Cargo.toml:
#    the release profile keeps its symbols for profiling the benchmarks.
#    The user: uid/gid 10001, outside the range Debian gives to system and login accounts, so
#    it matches no user of the host or of a mounted volume by accident; named in /etc/passwd
#    so that HOME is /var/lib/valet and process listings show "valet". Host names: glibc 2.34
#    and later have the files and dns lookups built in (no libnss_* to copy), nsswitch.conf
#    says to use them; /etc/hosts and /etc/resolv.conf come from the container runtime.
FROM builder AS rootfs
# Every key with its built-in default; VALET_* variables override it (env beats the file).
COPY config/valet.toml /rootfs/etc/valet/valet.toml
RUN set -eu \
 && install -d -m 0755 /rootfs/usr/local/bin /rootfs/etc/ssl/certs \
 && install -s -m 0755 /usr/local/bin/valet /rootfs/usr/local/bin/valet \
 && ldd /usr/local/bin/valet | tee /tmp/ldd.txt \
 && if grep -q 'not found' /tmp/ldd.txt; then echo 'missing shared library' >&2; exit 1; fi \
 && for lib in $(grep -o '/[^ ]*' /tmp/ldd.txt); do cp -L --parents "$lib" /rootfs; done \
 && install -m 0644 /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ \
 && printf '%s\n' 'root:x:0:0:root:/root:/sbin/nologin' \
      'valet:x:10001:10001:Valet:/var/lib/valet:/sbin/nologin' \
      'nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin' > /rootfs/etc/passwd \
 && printf '%s\n' 'root:x:0:' 'valet:x:10001:' 'nogroup:x:65534:' > /rootfs/etc/group \
 && printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' > /rootfs/etc/nsswitch.conf \
 && chmod 0644 /rootfs/etc/valet/valet.toml \
 && install -d -o 10001 -g 10001 -m 0750 /rootfs/var/lib/valet \
 && install -d -m 1777 /rootfs/tmp

FROM scratch

# Owners and modes come along: /var/lib/valet is 10001's, /tmp is 1777, the rest root's.
COPY --from=rootfs /rootfs /

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
