#!/usr/bin/env python3
"""Valet's benchmark suite (issue 15): every endpoint against its physical limit and a peer.

Run through bench/run.sh, which builds the binaries and installs the tools first. For each
store (SQLite, PostgreSQL) it starts the release `valet serve`, provisions through the CLI,
and drives each scenario: oha (keep-alive) where one fixed request serves, the project's own
generator (examples/loadgen.rs) where every request needs a fresh credential. Each row has
req/s, p50, p99, p99.9, errors, the server's CPU (cores busy, from /proc/PID/stat) and its
peak RSS during the scenario (VmHWM, reset before each scenario through /proc/PID/clear_refs).

In the same run: `openssl speed -multi 2` per signature algorithm, an Argon2id hash-rate probe
at the configured parameters (examples/argon2_rate.rs), Valet's own /healthz rate (the HTTP
floor), PostgreSQL's own rate on a refresh's statements (pgbench: the ceiling of refresh on
PostgreSQL), and node-oidc-provider (bench/peer) on the shared scenarios. With BENCH_SCALE=1 each
store is then seeded (bench/seed.py: 1 M users, 100 k clients, 1 M refresh tokens) and the
scenarios run again; their p99 is compared with the empty store's.

Environment (defaults in brackets): VALET_BIN [target/release/valet], LOADGEN_BIN
[target/release/examples/loadgen], ARGON2_BIN [target/release/examples/argon2_rate],
BENCH_SECONDS [20], BENCH_WARMUP [3], BENCH_CONCURRENCY [64], BENCH_STORES ["sqlite postgres"],
BENCH_SCENARIOS [all], BENCH_PEER [1], BENCH_SCALE [0], BENCH_SEED_ARGS [""],
BENCH_ADMIN_URL [postgres://postgres@127.0.0.1:5432/postgres], BENCH_DB_QUERY [""] (appended
to each bench database's URL, e.g. `?sslmode=disable`), BENCH_OUT [bench/results.json].
"""

import base64
import contextlib
import json
import os
import pathlib
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Absolute: each server runs in its own working directory.
VALET = os.path.abspath(os.environ.get("VALET_BIN", f"{ROOT}/target/release/valet"))
LOADGEN = os.path.abspath(os.environ.get("LOADGEN_BIN", f"{ROOT}/target/release/examples/loadgen"))
ARGON2 = os.path.abspath(os.environ.get("ARGON2_BIN", f"{ROOT}/target/release/examples/argon2_rate"))
SECONDS = int(os.environ.get("BENCH_SECONDS", "20"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "3"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "64"))
STORES = os.environ.get("BENCH_STORES", "sqlite postgres").split()
ONLY = set(os.environ.get("BENCH_SCENARIOS", "").split())
PEER = os.environ.get("BENCH_PEER", "1") == "1"
SCALE = os.environ.get("BENCH_SCALE", "0") == "1"
ADMIN_URL = os.environ.get("BENCH_ADMIN_URL", "postgres://postgres@127.0.0.1:5432/postgres")
OUT = os.environ.get("BENCH_OUT", f"{ROOT}/bench/results.json")
AUDIENCE = "https://contacts.example.com"
REDIRECT = "http://127.0.0.1:9/cb"
USER, PASSWORD = "bench-user", "bench-password-1"
FORM = "application/x-www-form-urlencoded"
CC_BODY = f"grant_type=client_credentials&audience={urllib.parse.quote_plus(AUDIENCE)}"
PASSWORD_USERS = 64
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Argon2 parameters of config/valet.toml, which the bench server runs with.
ARGON2_PARAMS = (19456, 2, 1)


def log(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=10):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def basic(client):
    q = urllib.parse.quote_plus
    raw = f"{q(client['client_id'])}:{q(client['client_secret'])}"
    return "Basic " + base64.b64encode(raw.encode()).decode()


# ------------------------------------------------------------------------------ the process
def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def reset_peak_rss(pid):
    # "5" resets VmHWM to the current RSS (proc(5), clear_refs).
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


class Valet:
    """One `valet serve` on a store, with the CLI against the same store."""

    def __init__(self, database_url, workdir, alg="RS256", extra_env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.env = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "RUST_LOG": "warn",
            "VALET_DATABASE_URL": database_url,
            "VALET_LISTEN": f"127.0.0.1:{self.port}",
            "VALET_ISSUER": self.base,
            "VALET_SECRET": SECRET,
            "VALET_TOKENS__SIGNING_ALG": alg,
            # One client at full speed is what is measured, not the flood limits
            # (bench/flood.sh measures those).
            "VALET_RATE_LIMIT__PER_CLIENT": "0",
            # The code scenario mints its codes first, then redeems them: they must outlive
            # the minting (still single-use, still bound to their PKCE challenge).
            "VALET_TOKENS__CODE_TTL": "10m",
            **(extra_env or {}),
        }
        self.proc = None

    def start(self):
        """Start and wait for /readyz; returns seconds from spawn to the first 200."""
        started = time.perf_counter()
        self.log = open(f"{self.workdir}/server-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [VALET, "serve"], cwd=self.workdir, env=self.env,
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"valet exited early; see {self.log.name}")
            try:
                status, _ = http("GET", f"{self.base}/readyz", timeout=1)
                if status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            if time.perf_counter() - started > 60:
                raise SystemExit("valet not ready within 60 s")
            time.sleep(0.002)

    def stop(self):
        """SIGTERM, as a container runtime sends it; a server that has not exited within
        30 s is killed and reported (a finding, not a crash of the suite)."""
        if self.proc and self.proc.poll() is None:
            started = time.perf_counter()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                kept = shutil.copy(self.log.name, tempfile.gettempdir())
                log(f"WARNING: valet did not exit within 30 s of SIGTERM; log kept at {kept}")
                STOP_FAILURES.append(kept)
            else:
                log(f"  stopped in {time.perf_counter() - started:.1f} s")
        self.proc = None

    def cli(self, *args, stdin=None):
        done = subprocess.run(
            [VALET, *args], cwd=self.workdir, env=self.env, input=stdin,
            capture_output=True, text=True,
        )
        if done.returncode != 0:
            raise SystemExit(f"valet {' '.join(args)} failed: {done.stderr}")
        return done.stdout


SECRET = secrets.token_hex(24)
STOP_FAILURES = []


# ------------------------------------------------------------------------------ load tools
def oha(url, method="GET", headers=(), body=None, concurrency=CONCURRENCY, seconds=SECONDS,
        rate=None):
    args = ["oha", "--no-tui", "--output-format", "json", "-c", str(concurrency), "-m", method,
            "--wait-ongoing-requests-after-deadline"]
    for h in headers:
        args += ["-H", h]
    if body is not None:
        args += ["-d", body]
    if rate:
        args += ["-q", str(rate)]
    if WARMUP:
        subprocess.run(args + ["-z", f"{WARMUP}s", url], capture_output=True, check=True)
    out = subprocess.run(args + ["-z", f"{seconds}s", url], capture_output=True, check=True)
    d = json.loads(out.stdout)
    codes = {str(k): v for k, v in (d.get("statusCodeDistribution") or {}).items()}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    total = sum(codes.values())
    errors = sum(v for k, v in (d.get("errorDistribution") or {}).items()
                 if "deadline" not in k.lower())
    p = d.get("latencyPercentiles") or {}
    ms = lambda key: (p.get(key) or float("nan")) * 1000
    return {
        "rps": d["summary"]["requestsPerSec"] * (ok / total if total else 0.0),
        "p50_ms": ms("p50"), "p99_ms": ms("p99"), "p999_ms": ms("p99.9"),
        "errors": errors + total - ok,
        "first_errors": [f"status {k}: {v}" for k, v in codes.items() if not k.startswith("2")]
        + list((d.get("errorDistribution") or {}).keys())[:3],
    }


def loadgen_env(valet, setup_file, scenario, concurrency=CONCURRENCY, **extra):
    """examples/loadgen.rs's environment for one scenario; `extra` overrides the defaults."""
    return {**os.environ, "LOADGEN_BASE": valet.base, "LOADGEN_SETUP": setup_file,
            "LOADGEN_SCENARIO": scenario, "LOADGEN_CONCURRENCY": str(concurrency),
            "LOADGEN_SECONDS": str(SECONDS), "LOADGEN_WARMUP": str(WARMUP),
            **{k: str(v) for k, v in extra.items()}}


def loadgen(valet, setup_file, scenario, concurrency=CONCURRENCY, **extra):
    env = loadgen_env(valet, setup_file, scenario, concurrency, **extra)
    out = subprocess.run([LOADGEN], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"loadgen {scenario} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout)


def measured(pid, run):
    """Run a scenario, adding the server's CPU (cores busy) and peak RSS to its figures."""
    reset_peak_rss(pid)
    cpu0, t0 = cpu_seconds(pid), time.perf_counter()
    row = run()
    wall = time.perf_counter() - t0
    row["server_cores"] = (cpu_seconds(pid) - cpu0) / wall
    row["peak_rss_mib"] = status_kib(pid, "VmHWM") / 1024
    return row


# ------------------------------------------------------------------------------ limits
def openssl_sign_per_sec(alg):
    test, pattern = {
        "RS256": ("rsa2048", r"^rsa\s+2048 bits"),
        "ES256": ("ecdsap256", r"ecdsa.*nistp256"),
        "EdDSA": ("ed25519", r"EdDSA.*Ed25519"),
    }[alg]
    out = subprocess.run(["openssl", "speed", "-multi", "2", "-seconds", "5", test],
                         capture_output=True, text=True, check=True).stdout
    value = None
    for line in out.splitlines():
        fields = line.split()
        if re.search(pattern, line) and len(fields) >= 4 and re.fullmatch(r"[\d.]+", fields[-2]):
            value = float(fields[-2])  # "... sign verify sign/s verify/s"
    if value is None:
        raise SystemExit(f"could not read openssl speed {test}")
    return value


def argon2_rate():
    m, t, p = ARGON2_PARAMS
    out = subprocess.run([ARGON2, str(m), str(t), str(p), "10", str(os.cpu_count())],
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def machine_busy_seconds():
    """CPU time the whole machine has spent running something, from /proc/stat: user, nice,
    system, irq and softirq (not idle or iowait, nor steal, which is other machines' time;
    guest time is already in user)."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq = (
            int(x) for x in f.readline().split()[1:8])
    return (user + nice + system + irq + softirq) / CLK_TCK


REFRESH_LIMIT_TOKENS = 1_000_000
REFRESH_LIMIT_CLIENTS = 16


def postgres_refresh_rate():
    """PostgreSQL's own rate for the two statements of a refresh (read the token with its
    user; rotate it and insert its successor, one statement), as Valet sends them (sql.rs's
    text, prepared) over as many connections as Valet's pool (16), driven by pgbench: the
    ceiling of refresh on PostgreSQL on this machine, whatever Valet adds. The store holds
    1 M live tokens of 100 k users, 500 k grants and 1,000 clients; each pgbench client
    walks its own slice of them, so every pair rotates a live token (no draw repeats).
    Returns (pairs per second, PostgreSQL's CPU µs per pair: the machine's busy time less
    pgbench's, so anything else running counts too)."""
    import seed  # bench/seed.py: reads the statement texts out of src/store/sql.rs
    sql = seed.rust_sql_constants(pathlib.Path(ROOT, "src/store/sql.rs"))
    n, slice_ = REFRESH_LIMIT_TOKENS, REFRESH_LIMIT_TOKENS // REFRESH_LIMIT_CLIENTS
    now, later = int(time.time()), int(time.time()) + 86400
    # Token i: user i % 100k, grant i / 2, client i % 1000; its successor is token i + N.
    user, grant, client = "'u' || ({i} % 100000)", "'g' || ({i} / 2)", "'c' || ({i} % 1000)"
    with fresh_store("postgres") as (workdir, url):
        Valet(url, workdir).cli("migrate")
        subprocess.run(["psql", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", f"""
            INSERT INTO users (id, username, password_hash, created_at, updated_at)
              SELECT 'u' || i, 'user' || i, 'x', {now}, {now}
              FROM generate_series(0, 99999) i;
            INSERT INTO grants (grant_id, client_id, user_id, created_at, expires_at)
              SELECT {grant.format(i="i")}, {client.format(i="i")}, {user.format(i="i")},
                {now}, {later}
              FROM generate_series(0, {n - 1}, 2) i;
            INSERT INTO refresh_tokens (token_hash, family_id, grant_id, client_id, user_id,
                scope, audience, issued_at, expires_at, family_expires_at)
              SELECT int8send(i), 'f' || i, {grant.format(i="i")}, {client.format(i="i")},
                {user.format(i="i")}, 'offline_access read:contacts', '{AUDIENCE}',
                {now}, {later}, {later}
              FROM generate_series(0, {n - 1}) i;""", "-c", "VACUUM ANALYZE"],
            check=True, capture_output=True)
        args = ["int8send(:i)", str(now), f"int8send(:i + {n})", "'f' || :i", "int8send(:i)",
                grant.format(i=":i"), client.format(i=":i"), user.format(i=":i"),
                # pgbench would take ":contacts" in a literal for one of its variables
                "'offline_access read' || chr(58) || 'contacts'",
                f"'{AUDIENCE}'", "NULL", str(now), str(later), str(later), "NULL", "NULL"]
        bind = lambda text: re.sub(r"\$(\d+)", lambda m: args[int(m.group(1)) - 1], text)
        script = f"{workdir}/refresh.sql"
        with open(script, "w") as f:
            # pgbench keeps a client's variables from one transaction to the next: k counts.
            f.write("\\set k :k + 1\n")
            f.write(f"\\set i :client_id * {slice_} + :k % {slice_}\n")
            f.write(bind(sql["SELECT_REFRESH_AND_USER"]) + ";\n")
            f.write(bind(sql["ROTATE_REFRESH_THEN_INSERT"]) + ";\n")
        # PostgreSQL's CPU: the machine's busy time less pgbench's own (the backends exit
        # with pgbench's connections, taking their counters with them).
        children0 = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
        busy0 = machine_busy_seconds()
        out = subprocess.run(["pgbench", "-n", "-M", "prepared", "-c",
                              str(REFRESH_LIMIT_CLIENTS), "-j", "2", "-D", "k=-1",
                              "-T", str(SECONDS), "-f", script, url],
                             capture_output=True, text=True)
        pgbench_cpu = sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]) - children0
        cpu = machine_busy_seconds() - busy0 - pgbench_cpu
        if out.returncode != 0:
            raise SystemExit(f"pgbench failed: {out.stderr[-2000:]}")
        done = int(re.search(r"number of transactions actually processed: (\d+)",
                             out.stdout).group(1))
        rotated = int(subprocess.run(
            ["psql", "-qtA", url, "-c",
             "SELECT count(*) FROM refresh_tokens WHERE rotated_at IS NOT NULL"],
            check=True, capture_output=True, text=True).stdout)
        if rotated != done:
            raise SystemExit(f"{done} pairs but {rotated} rotations: a connection ran past its "
                             "slice of tokens (raise REFRESH_LIMIT_TOKENS)")
        rate = float(re.search(r"tps = ([\d.]+)", out.stdout).group(1))
        return rate, cpu / done * 1e6


# ------------------------------------------------------------------------------ one store
def provision(valet, workdir):
    valet.cli("api", "create", "--identifier", AUDIENCE, "--name", "Contacts",
              "--scope", "read:contacts create:contacts")
    service = json.loads(valet.cli(
        "client", "create", "--name", "bench-service", "--grant-type", "client_credentials",
        "--scope", "read:contacts", "--audience", AUDIENCE, "--json"))
    web = json.loads(valet.cli(
        "client", "create", "--name", "bench-web",
        "--grant-type", "authorization_code,refresh_token", "--redirect-uri", REDIRECT,
        "--scope", "openid profile offline_access read:contacts", "--audience", AUDIENCE,
        "--first-party", "--json"))
    app = json.loads(valet.cli(
        "client", "create", "--name", "bench-password", "--grant-type", "password",
        "--scope", "openid profile read:contacts", "--audience", AUDIENCE,
        "--first-party", "--json"))
    valet.cli("user", "create", "--username", USER, "--password-stdin", stdin=PASSWORD + "\n")
    # The password grant's signers: one user per connection, as the login limiter counts
    # concurrent attempts per user (bench-user-0 .. bench-user-63).
    for i in range(PASSWORD_USERS):
        valet.cli("user", "create", "--username", f"{USER}-{i}", "--password-stdin",
                  stdin=PASSWORD + "\n")
    setup = f"{workdir}/loadgen.json"
    with open(setup, "w") as f:
        json.dump({"web": {**web, "redirect_uri": REDIRECT}, "service": service, "app": app,
                   "audience": AUDIENCE, "username": USER, "password": PASSWORD}, f)
    return service, web, app, setup


def fixed_requests(valet, clients):
    """The scenarios whose every request is the same, as oha's (url, method, headers, body),
    with the tokens introspection and UserInfo present minted through the real grants."""
    service, _web, app, _setup = clients
    headers = [f"Authorization: {basic(service)}", f"Content-Type: {FORM}"]
    access = token(valet, service, {"grant_type": "client_credentials", "audience": AUDIENCE})
    user = token(valet, app, {"grant_type": "password", "username": USER,
                              "password": PASSWORD, "scope": "openid profile"})
    return {
        "healthz": (f"{valet.base}/healthz", "GET", [], None),
        "client_credentials": (f"{valet.base}/token", "POST", headers, CC_BODY),
        "introspection": (f"{valet.base}/introspect", "POST", headers,
                          "token=" + access["access_token"]),
        "userinfo": (f"{valet.base}/userinfo", "GET",
                     [f"Authorization: Bearer {user['access_token']}"], None),
    }


def token(valet, client, form):
    status, body = http("POST", f"{valet.base}/token", urllib.parse.urlencode(form).encode(),
                        {"Authorization": basic(client), "Content-Type": FORM})
    if status != 200:
        raise SystemExit(f"token request {form} failed: {status} {body[:300]}")
    return json.loads(body)


def wanted(name):
    return not ONLY or name in ONLY or name.split(":")[0] in ONLY


def run_store(store, limits, scale=False, workdir=None, database_url=None, clients=None):
    """Every scenario on one store; returns {scenario: row}."""
    rows = {}
    valet = Valet(database_url, workdir)
    valet.start()
    if clients is None:
        clients = provision(valet, workdir)
    *_, setup = clients
    pid = valet.proc.pid

    def scenario(name, run):
        if not wanted(name):
            return
        log(f"{store}{' (seeded)' if scale else ''}: {name}")
        rows[name] = measured(pid, run)
        r = rows[name]
        log(f"  {r['rps']:.0f}/s p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} "
            f"p99.9 {r['p999_ms']:.2f} ms, errors {r['errors']}, "
            f"cores {r['server_cores']:.2f}, peak RSS {r['peak_rss_mib']:.1f} MiB")
        if r["errors"]:
            log(f"  first errors: {r.get('first_errors')}")

    fixed = fixed_requests(valet, clients)
    scenario("healthz", lambda: oha(*fixed["healthz"]))
    scenario("discovery", lambda: oha(f"{valet.base}/.well-known/openid-configuration"))
    scenario("jwks", lambda: oha(f"{valet.base}/.well-known/jwks.json"))
    scenario("client_credentials:RS256", lambda: oha(*fixed["client_credentials"]))
    scenario("introspection", lambda: oha(*fixed["introspection"]))
    scenario("userinfo", lambda: oha(*fixed["userinfo"]))
    scenario("code_exchange", lambda: loadgen(valet, setup, "code", concurrency=16))
    scenario("refresh", lambda: loadgen(valet, setup, "refresh"))
    scenario("password", lambda: loadgen(valet, setup, "password",
                                         LOADGEN_USERS=PASSWORD_USERS))
    if not scale and wanted("password_isolation"):
        # client_credentials at a steady 200/s, alone and then beside a password flood: the
        # Argon2 pool must not take the runtime's threads (target: p99 < 2x alone).
        log(f"{store}: password_isolation")
        alone = oha(*fixed["client_credentials"], concurrency=4, rate=200)
        flood = subprocess.Popen(
            [LOADGEN], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=loadgen_env(valet, setup, "password", LOADGEN_USERS=PASSWORD_USERS,
                            LOADGEN_WARMUP=0, LOADGEN_SECONDS=SECONDS + WARMUP + 3))
        time.sleep(1)
        beside = oha(*fixed["client_credentials"], concurrency=4, rate=200)
        flood.wait()
        rows["password_isolation"] = {
            "alone_p99_ms": alone["p99_ms"], "beside_p99_ms": beside["p99_ms"],
            "ratio": beside["p99_ms"] / alone["p99_ms"], "errors": alone["errors"]
            + beside["errors"]}
        log(f"  client_credentials p99 alone {alone['p99_ms']:.2f} ms, beside a password "
            f"flood {beside['p99_ms']:.2f} ms")
    scenario("mixed", lambda: loadgen(valet, setup, "mixed"))
    valet.stop()

    if scale:
        return rows, clients
    for alg in ("ES256", "EdDSA"):
        name = f"client_credentials:{alg}"
        if not wanted(name):
            continue
        # A store's signing algorithm is that of its current key: a fresh store per algorithm.
        with fresh_store(store) as (alg_dir, alg_url):
            signer = Valet(alg_url, alg_dir, alg=alg)
            signer.start()
            alg_service, _, _, alg_setup = provision(signer, alg_dir)
            alg_headers = [f"Authorization: {basic(alg_service)}", f"Content-Type: {FORM}"]
            got = token(signer, alg_service,
                        {"grant_type": "client_credentials", "audience": AUDIENCE})
            header = json.loads(base64.urlsafe_b64decode(
                got["access_token"].split(".")[0] + "=="))
            if header["alg"] != alg:
                raise SystemExit(f"{alg} server signed with {header['alg']}")
            pid = signer.proc.pid
            scenario(name, lambda: oha(f"{signer.base}/token", "POST", alg_headers, CC_BODY))
            if alg == "ES256":
                # The fresh-credential scenarios with a signature that costs ~18 µs instead of
                # RS256's ~300 µs: what the server adds to the signing itself.
                scenario("code_exchange:ES256",
                         lambda: loadgen(signer, alg_setup, "code", concurrency=16))
                scenario("refresh:ES256", lambda: loadgen(signer, alg_setup, "refresh"))
            signer.stop()
    return rows, clients


@contextlib.contextmanager
def fresh_store(store):
    """A working directory and an empty store (a SQLite file in it, or a new PostgreSQL
    database), both removed afterwards."""
    workdir = tempfile.mkdtemp(prefix=f"valet-bench-{store}-")
    database = None
    try:
        if store == "sqlite":
            yield workdir, f"sqlite://{workdir}/valet.db"
        else:
            database = f"valet_bench_{secrets.token_hex(4)}"
            subprocess.run(["psql", "-q", ADMIN_URL, "-c", f"CREATE DATABASE {database}"],
                           check=True, capture_output=True)
            yield workdir, ADMIN_URL.rsplit("/", 1)[0] + "/" + database + os.environ.get("BENCH_DB_QUERY", "")
    finally:
        if database:
            subprocess.run(["psql", "-q", ADMIN_URL, "-c",
                            f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"],
                           capture_output=True)
        shutil.rmtree(workdir, ignore_errors=True)


def cold_start_and_idle():
    """Spawn to the first /readyz 200 on an empty SQLite store (median of 5), and RSS idle."""
    times, idle = [], None
    for i in range(5):
        with tempfile.TemporaryDirectory(prefix="valet-cold-") as d:
            v = Valet(f"sqlite://{d}/valet.db", d)
            times.append(v.start())
            if i == 0:
                time.sleep(3)
                idle = status_kib(v.proc.pid, "VmRSS") / 1024
            v.stop()
    return statistics.median(times) * 1000, idle


# ------------------------------------------------------------------------------ the peer
def run_peer(limits):
    peer_dir = f"{ROOT}/bench/peer"
    rows = {}
    for alg in ("RS256", "ES256", "EdDSA"):
        if not wanted(f"peer:client_credentials:{alg}") and not wanted("peer"):
            continue
        port = free_port()
        proc = subprocess.Popen(["node", "server.js"], cwd=peer_dir, text=True,
                                env={**os.environ, "PORT": str(port), "ALG": alg,
                                     "WORKERS": str(os.cpu_count())},
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        info = {}
        for line in proc.stdout:
            key, _, value = line.strip().partition(" ")
            info[key] = value
            if key == "READY":
                break
        base = f"http://127.0.0.1:{port}"
        client = {"client_id": "bench",
                  "client_secret": "bench-secret-0123456789abcdef0123456789abcdef"}
        headers = [f"Authorization: {basic(client)}", f"Content-Type: {FORM}"]
        # The peer issues no scope unless asked (it does not fall back to the client's).
        body = ("grant_type=client_credentials&scope=read%3Acontacts"
                f"&resource={urllib.parse.quote_plus(AUDIENCE)}")
        status, got = http("POST", f"{base}/token", body.encode(),
                           {"Authorization": basic(client), "Content-Type": FORM})
        if status != 200:
            raise SystemExit(f"peer token request failed: {status} {got[:300]}")
        # The primary and its workers (node's cluster module).
        pids = [proc.pid] + [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()]

        def both(run):
            for p in pids:
                reset_peak_rss(p)
            cpu0 = sum(cpu_seconds(p) for p in pids)
            t0 = time.perf_counter()
            row = run()
            row["server_cores"] = (sum(cpu_seconds(p) for p in pids) - cpu0) / (
                time.perf_counter() - t0)
            row["peak_rss_mib"] = sum(status_kib(p, "VmHWM") for p in pids) / 1024
            return row

        log(f"peer: client_credentials {alg}")
        rows[f"client_credentials:{alg}"] = both(lambda: oha(f"{base}/token", "POST", headers,
                                                             body))
        if alg == "RS256":
            log("peer: introspection (its own opaque token)")
            rows["introspection"] = both(lambda: oha(
                f"{base}/token/introspection", "POST", headers,
                "token=" + info["OPAQUE_TOKEN"]))
        proc.terminate()
        proc.wait(timeout=10)
    return rows


# ------------------------------------------------------------------------------ the report
TARGETS = [
    # (scenario, what, check(row, limits, store_rows) -> (value, ok))
    ("client_credentials:RS256", "≥ 0.85 × openssl rsa2048 sign/s",
     lambda r, l, s: (r["rps"] / l["openssl:RS256"], r["rps"] / l["openssl:RS256"] >= 0.85)),
    ("client_credentials:ES256", "≥ 0.5 × /healthz floor",
     lambda r, l, s: (r["rps"] / s["healthz"]["rps"], r["rps"] / s["healthz"]["rps"] >= 0.5)),
    ("client_credentials:EdDSA", "≥ 0.5 × /healthz floor",
     lambda r, l, s: (r["rps"] / s["healthz"]["rps"], r["rps"] / s["healthz"]["rps"] >= 0.5)),
    ("introspection", "≥ 20,000/s and ≥ 0.5 × floor",
     lambda r, l, s: (r["rps"] / s["healthz"]["rps"],
                      r["rps"] >= 20000 and r["rps"] / s["healthz"]["rps"] >= 0.5)),
    ("code_exchange", "p99 < 5 ms at c=16",
     lambda r, l, s: (r["p99_ms"], r["p99_ms"] < 5)),
    ("code_exchange:ES256", "p99 < 5 ms at c=16",
     lambda r, l, s: (r["p99_ms"], r["p99_ms"] < 5)),
    ("refresh", "≥ 5,000/s (PostgreSQL)",
     lambda r, l, s: (r["rps"], r["rps"] >= 5000)),
    ("refresh:ES256", "≥ 5,000/s (PostgreSQL)",
     lambda r, l, s: (r["rps"], r["rps"] >= 5000)),
    ("password", "≥ 0.8 × Argon2 rate",
     lambda r, l, s: (r["rps"] / l["argon2"], r["rps"] / l["argon2"] >= 0.8)),
    ("password_isolation", "client_credentials p99 beside it < 2× alone",
     lambda r, l, s: (r["ratio"], r["ratio"] < 2)),
]


def fmt(x, digits=0):
    return "—" if x is None or x != x else f"{x:,.{digits}f}"


def report(results):
    lines = [f"Valet benchmark suite, {results['when']}; {os.cpu_count()} cores; "
             f"{SECONDS} s per scenario after {WARMUP} s warm-up, c={CONCURRENCY} "
             f"(code exchange c=16)", ""]
    limits = results["limits"]
    lines.append("Limits: " + ", ".join(f"{k} {fmt(v)}/s" for k, v in limits.items()))
    if "postgres_refresh_cpu_us" in results:
        lines.append("postgres:refresh is PostgreSQL alone on a refresh's two statements "
                     f"(pgbench, {REFRESH_LIMIT_CLIENTS} connections, prepared): "
                     f"{results['postgres_refresh_cpu_us']:.0f} µs of its CPU each, the "
                     "ceiling of refresh on PostgreSQL here")
    if "cold_start_ms" in results:
        lines.append(f"Cold start to /readyz (SQLite, empty, median of 5): "
                     f"{results['cold_start_ms']:.0f} ms (target < 300); idle RSS "
                     f"{results['idle_rss_mib']:.1f} MiB (target < 20)")
    for store, rows in results["stores"].items():
        lines += ["", f"### {store}", "",
                  "| scenario | req/s | p50 ms | p99 ms | p99.9 ms | errors | server cores "
                  "| peak RSS MiB | target | value | met |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"]
        for name, r in rows.items():
            if name == "password_isolation":
                continue
            target = next((t for t in TARGETS if t[0] == name), None)
            what = value = met = ""
            if target and not (name.startswith("refresh") and store != "postgres"):
                try:
                    v, ok = target[2](r, limits, rows)
                    what, value, met = target[1], fmt(v, 2), "yes" if ok else "**no**"
                except KeyError as missing:
                    # A subset (BENCH_SCENARIOS) left out what the target is a ratio to.
                    what, value, met = target[1], "", f"not measured: {missing}"
            lines.append(
                f"| {name} | {fmt(r['rps'])} | {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} "
                f"| {fmt(r['p999_ms'], 2)} | {r['errors']} | {fmt(r['server_cores'], 2)} "
                f"| {fmt(r['peak_rss_mib'], 1)} | {what} | {value} | {met} |")
        iso = rows.get("password_isolation")
        if iso:
            lines.append(
                f"\nclient_credentials at 200/s: p99 {iso['alone_p99_ms']:.2f} ms alone, "
                f"{iso['beside_p99_ms']:.2f} ms beside a password flood: "
                f"{iso['ratio']:.2f}× (target < 2×)")
        seeded = results.get("seeded", {}).get(store)
        if seeded:
            lines += ["", f"Seeded store ({store}): p99 against the empty store's "
                      "(target ≤ 1.3×)", "", "| scenario | empty p99 ms | seeded p99 ms | "
                      "ratio | seeded req/s |", "|---|---:|---:|---:|---:|"]
            for name, r in seeded.items():
                if name in rows and "p99_ms" in r:
                    ratio = r["p99_ms"] / rows[name]["p99_ms"]
                    lines.append(f"| {name} | {fmt(rows[name]['p99_ms'], 2)} | "
                                 f"{fmt(r['p99_ms'], 2)} | {ratio:.2f} | {fmt(r['rps'])} |")
    peer = results.get("peer")
    if peer:
        lines += ["", "### Peer: node-oidc-provider (cluster, one worker per core)", "",
                  "| scenario | peer req/s | peer p99 ms | peer cores | Valet SQLite req/s "
                  "| ratio (target ≥ 2) |", "|---|---:|---:|---:|---:|---:|"]
        sqlite = results["stores"].get("sqlite", {})
        for name, r in peer.items():
            ours = sqlite.get(name, {}).get("rps")
            ratio = ours / r["rps"] if ours and r["rps"] else None
            lines.append(f"| {name} | {fmt(r['rps'])} | {fmt(r['p99_ms'], 2)} | "
                         f"{fmt(r['server_cores'], 2)} | {fmt(ours)} | {fmt(ratio, 2)} |")
    return "\n".join(lines)


def main():
    for tool in ("oha", "openssl", VALET, LOADGEN, ARGON2,
                 *(["pgbench", "psql"] if "postgres" in STORES else [])):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is required (bench/run.sh builds and installs them)")
    results = {"when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "limits": {},
               "stores": {}, "seeded": {}}
    limits = results["limits"]
    for alg in ("RS256", "ES256", "EdDSA"):
        log(f"limit: openssl speed -multi 2 for {alg}")
        limits[f"openssl:{alg}"] = openssl_sign_per_sec(alg)
    log("limit: Argon2id hashes/s on every core")
    limits["argon2"] = argon2_rate()
    if "postgres" in STORES and wanted("refresh"):
        log("limit: PostgreSQL alone on a refresh's statements (pgbench)")
        limits["postgres:refresh"], results["postgres_refresh_cpu_us"] = postgres_refresh_rate()
    if wanted("cold_start"):
        results["cold_start_ms"], results["idle_rss_mib"] = cold_start_and_idle()
    for store in STORES:
        with fresh_store(store) as (workdir, url):
            rows, clients = run_store(store, limits, workdir=workdir, database_url=url)
            results["stores"][store] = rows
            if SCALE:
                log(f"{store}: seeding (bench/seed.py)")
                subprocess.run([sys.executable, f"{ROOT}/bench/seed.py", "--database-url", url,
                                *os.environ.get("BENCH_SEED_ARGS", "").split()], check=True)
                results["seeded"][store], _ = run_store(
                    store, limits, scale=True, workdir=workdir, database_url=url,
                    clients=clients)
    if PEER:
        results["peer"] = run_peer(limits)
    results["stop_failures"] = STOP_FAILURES
    with open(OUT, "w") as f:
        json.dump(results, f, indent=1)
    text = report(results)
    print(text)
    errors = sum(r.get("errors", 0) for rows in results["stores"].values()
                 for r in rows.values())
    if errors:
        raise SystemExit(f"{errors} requests failed: see the table")


if __name__ == "__main__":
    main()
