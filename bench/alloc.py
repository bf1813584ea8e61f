#!/usr/bin/env python3
"""Allocations or instructions per request, under valgrind: the counts behind BENCHMARKS.md's
profiles 15 and 16, repeatable whatever else the machine is doing.

    python3 bench/alloc.py dhat|callgrind BIN SCENARIO N [ALG]

Provisions a fresh SQLite store through BIN's CLI (as bench/suite.py does), starts
`BIN serve` under `valgrind --tool=dhat` or `--tool=callgrind`, sends N requests of SCENARIO
(healthz, cc, introspection, userinfo) with `oha -n N -c 4`, stops the server with SIGINT and
prints valgrind's total: allocated blocks (dhat) or instructions (callgrind). Run it once
with N=0 and once with N requests; the difference divided by N is the cost per request.
"""

import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402


def main():
    if len(sys.argv) < 5:
        raise SystemExit(__doc__)
    tool, binary, scenario, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    alg = sys.argv[5] if len(sys.argv) > 5 else "RS256"
    if tool not in ("dhat", "callgrind"):
        raise SystemExit(__doc__)
    suite.VALET = os.path.abspath(binary)
    with suite.fresh_store("sqlite") as (workdir, url):
        valet = suite.Valet(url, workdir, alg=alg)
        valet.start()
        scenario = {"cc": "client_credentials"}.get(scenario, scenario)
        fixed = suite.fixed_requests(valet, suite.provision(valet, workdir))
        valet.stop()
        if scenario not in fixed:
            raise SystemExit(f"unknown scenario {scenario}")
        target, method, headers, body = fixed[scenario]
        request = ["-m", method, *(arg for h in headers for arg in ("-H", h)),
                   *(["-d", body] if body is not None else []), target]
        out = f"{workdir}/{tool}.out"
        with open(f"{workdir}/{tool}.log", "w") as log:
            server = subprocess.Popen(
                ["valgrind", f"--tool={tool}", f"--{tool}-out-file={out}", suite.VALET,
                 "serve"], cwd=workdir, env=valet.env, stdout=log, stderr=subprocess.STDOUT)
            started = time.monotonic()
            while True:
                try:
                    if suite.http("GET", f"{valet.base}/readyz", timeout=2)[0] == 200:
                        break
                except OSError:
                    pass
                if server.poll() is not None or time.monotonic() - started > 120:
                    raise SystemExit(f"valet under {tool} did not become ready")
                time.sleep(0.2)
            if n:
                subprocess.run(["oha", "--no-tui", "-n", str(n), "-c", "4", *request],
                               check=True, capture_output=True)
            server.send_signal(signal.SIGINT)
            server.wait()
        if tool == "dhat":
            text = open(f"{workdir}/{tool}.log").read()
            total = re.search(r"Total:\s+([\d,]+) bytes in ([\d,]+) blocks", text)
            print(f"{scenario} x {n}: {total.group(2)} blocks, {total.group(1)} bytes")
        else:
            total = re.search(r"totals: (\d+)", open(out).read())
            print(f"{scenario} x {n}: {int(total.group(1)):,} instructions")


if __name__ == "__main__":
    main()
