#!/usr/bin/env python3
"""Argon2 memory under password floods (SPEC §7; issue 11, finding 2).

Starts the release `valet serve` on a fresh SQLite store with the default Argon2 parameters
(19 MiB, 2 passes, 1 lane; `password_hash.max_concurrent` = 0, one per core), provisions a
client allowed the password grant, and sends 3 bursts of 64 parallel password-grant requests
for unknown usernames (each one costs a full Argon2 check against the dummy hash; distinct
usernames, so the login limiter refuses none of them). It samples the server's RSS
(/proc/PID/status VmRSS) every 50 ms and prints, per burst, RSS before, the peak during, and
RSS right after, then RSS 10 s after the last burst.

Target: peak <= 64 MB + max_concurrent x m_cost, and back to idle + 10 % within 10 s.

Usage: bench/argon2_memory.py            (builds target/release/valet if VALET_BIN is unset)
Environment: VALET_BIN, BENCH_BURSTS (3), BENCH_PARALLEL (64), BENCH_MAX_CONCURRENT (0),
BENCH_SERVER_ENV (extra "NAME=value NAME=value" for the server, e.g. MALLOC_ARENA_MAX=2),
BENCH_WARMUP (0: that many sequential logins, then 10 s, before the idle figure, for the idle
of a server that has served requests rather than a cold one).
"""

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

AUDIENCE = "https://contacts.example.com"
MIB = 1024 * 1024


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    binary = os.environ.get("VALET_BIN")
    if not binary:
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=root, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(root, "target"))
        binary = os.path.join(target, "release", "valet")
    bursts = int(os.environ.get("BENCH_BURSTS", "3"))
    parallel = int(os.environ.get("BENCH_PARALLEL", "64"))
    max_concurrent = os.environ.get("BENCH_MAX_CONCURRENT", "0")

    work = tempfile.mkdtemp(prefix="valet-argon2-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "VALET_DATABASE_URL": f"sqlite://{work}/valet.db",
        "VALET_LISTEN": f"127.0.0.1:{port}",
        "VALET_ISSUER": base,
        "VALET_SECRET": secrets.token_hex(24),
        "VALET_PASSWORD_HASH__MAX_CONCURRENT": max_concurrent,
        "RUST_LOG": "warn",
    }
    for pair in os.environ.get("BENCH_SERVER_ENV", "").split():
        name, _, value = pair.partition("=")
        env[name] = value
    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([binary, "serve"], cwd=work, env=env, stdout=log, stderr=log)
    try:
        for _ in range(300):
            try:
                if urllib.request.urlopen(base + "/readyz", timeout=2).status == 200:
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(0.1)
        else:
            sys.exit("valet did not become ready")

        def cli(*args):
            out = subprocess.run([binary, *args], cwd=work, env=env, check=True,
                                 capture_output=True, text=True)
            return out.stdout

        cli("api", "create", "--identifier", AUDIENCE, "--name", "Contacts",
            "--scope", "read:contacts")
        client = json.loads(cli("client", "create", "--name", "bench", "--grant-type",
                                "password", "--scope", "read:contacts", "--audience",
                                AUDIENCE, "--json"))
        auth = base64.b64encode(
            f"{urllib.parse.quote(client['client_id'], safe='')}:"
            f"{urllib.parse.quote(client['client_secret'], safe='')}".encode()).decode()
        time.sleep(2)  # let startup settle before the idle figure

        statuses = {}
        lock = threading.Lock()

        def login(username):
            body = urllib.parse.urlencode({
                "grant_type": "password", "username": username,
                "password": "not the password", "audience": AUDIENCE}).encode()
            request = urllib.request.Request(base + "/token", data=body, headers={
                "Authorization": "Basic " + auth,
                "Content-Type": "application/x-www-form-urlencoded"})
            try:
                status = urllib.request.urlopen(request, timeout=120).status
            except urllib.error.HTTPError as e:
                status = e.code
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

        warmup = int(os.environ.get("BENCH_WARMUP", "0"))
        if warmup:
            for i in range(warmup):
                login(f"warmup-{i}")
            time.sleep(10)
        idle = rss_bytes(server.pid)
        if warmup:
            print(f"warm-up: {warmup} sequential logins, then 10 s")
        print(f"max_concurrent={max_concurrent} (0: one per core, {os.cpu_count()} here), "
              f"m_cost=19 MiB, {bursts} bursts of {parallel}")
        print(f"idle RSS: {idle / MIB:.1f} MiB")
        overall_peak = idle
        for burst in range(bursts):
            before = rss_bytes(server.pid)
            threads = [threading.Thread(target=login, args=(f"nobody-{burst}-{i}",))
                       for i in range(parallel)]
            started = time.monotonic()
            for t in threads:
                t.start()
            peak = before
            while any(t.is_alive() for t in threads):
                peak = max(peak, rss_bytes(server.pid))
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            after = rss_bytes(server.pid)
            overall_peak = max(overall_peak, peak)
            print(f"burst {burst + 1}: before {before / MIB:.1f} MiB, peak {peak / MIB:.1f} MiB, "
                  f"after {after / MIB:.1f} MiB ({elapsed:.1f} s)")
        time.sleep(10)
        settled = rss_bytes(server.pid)
        print(f"10 s after the last burst: {settled / MIB:.1f} MiB "
              f"(idle + {100 * (settled - idle) / idle:.0f} %)")
        print(f"responses: {statuses}")
        print(f"peak over all bursts: {overall_peak / MIB:.1f} MiB")
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
