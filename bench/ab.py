#!/usr/bin/env python3
"""A/B of release binaries on one scenario: the drivers behind BENCHMARKS.md's profiles.

    python3 bench/ab.py STORE ALG SCENARIO ROUNDS BIN [BIN ...]

Each round runs every binary once, in the order given, each on a fresh store (a SQLite file
or a new PostgreSQL database, removed afterwards) provisioned through its own CLI, as
bench/suite.py does. STORE is sqlite or postgres; ALG the signing algorithm (RS256, ES256,
EdDSA); SCENARIO one of healthz, cc (client_credentials), introspection, userinfo, code
(code exchange at c=16), refresh, password, mixed. Prints each run and the medians per
binary. BENCH_SECONDS (default 10) and BENCH_WARMUP (default 2) as in suite.py; the
generators are suite.py's (oha, examples/loadgen.rs).
"""

import os
import statistics
import sys

os.environ.setdefault("BENCH_SECONDS", "10")
os.environ.setdefault("BENCH_WARMUP", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402


def runner(valet, clients, scenario):
    """A function that drives `scenario` against `valet` once and returns suite.py's row."""
    setup = clients[3]
    fixed = {"cc": "client_credentials", "healthz": "healthz",
             "introspection": "introspection", "userinfo": "userinfo"}
    if scenario in fixed:
        request = suite.fixed_requests(valet, clients)[fixed[scenario]]
        return lambda: suite.oha(*request)
    if scenario == "code":
        return lambda: suite.loadgen(valet, setup, "code", concurrency=16)
    if scenario == "password":
        return lambda: suite.loadgen(valet, setup, "password",
                                     LOADGEN_USERS=suite.PASSWORD_USERS)
    if scenario in ("refresh", "mixed"):
        return lambda: suite.loadgen(valet, setup, scenario)
    raise SystemExit(f"unknown scenario {scenario}")


def main():
    if len(sys.argv) < 6:
        raise SystemExit(__doc__)
    store, alg, scenario, rounds, binaries = (sys.argv[1], sys.argv[2], sys.argv[3],
                                              int(sys.argv[4]), sys.argv[5:])
    rows = {b: [] for b in binaries}
    for _ in range(rounds):
        for binary in binaries:
            suite.VALET = os.path.abspath(binary)
            with suite.fresh_store(store) as (workdir, url):
                valet = suite.Valet(url, workdir, alg=alg)
                valet.start()
                run = runner(valet, suite.provision(valet, workdir), scenario)
                row = suite.measured(valet.proc.pid, run)
                valet.stop()
            rows[binary].append(row)
            print(f"{binary}: {row['rps']:.0f}/s p50 {row['p50_ms']:.2f} p99 "
                  f"{row['p99_ms']:.2f} ms, cores {row['server_cores']:.2f}, "
                  f"errors {row['errors']}", flush=True)
    for binary, runs in rows.items():
        print(f"median {binary}: {statistics.median(r['rps'] for r in runs):.0f}/s, p99 "
              f"{statistics.median(r['p99_ms'] for r in runs):.2f} ms ({len(runs)} runs)")


if __name__ == "__main__":
    main()
