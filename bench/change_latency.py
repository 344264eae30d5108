"""Benchmark: latency and cost of one Workload change, at several organisation sizes.

For generated organisations of N domains × 3 environments × 5 workloads (``bench/plan.py``'s
``generate``), in-process: the Kubernetes API emulator (fake Config Connector on), the fake
GitLab and the real kopf operator (see ``konfig sandbox``). After the first convergence, each
round changes one environment variable of one Workload instance (a different domain each
time, as CI would with ``kubectl apply``) and measures, until the RunService carries it:

* latency: from the write of the Workload to the RunService's update (median and p95, s);
* requests and writes the API server saw from that write until the operator is idle again
  (watches and Events excluded; writes excluding the Workload write itself and its status).

With ``--bad`` one invalid Workload (an unknown template) sits in domain 0 throughout
(blast radius: the other domains' changes must land as fast).

    python bench/change_latency.py --domains 10 100 --changes 20
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

RUN = "run.cnrm.cloud.google.com/v1beta1"
#: The workload changed: one with ``visibility: domain`` (bench/plan.py makes svc-1 external
#: and svc-2 platform-wide; a change of those also marks the control-plane unit, whose load
#: balancers route to them, and costs a pass over everything: ``--workload svc-1``).
WORKLOAD = "svc-3"


def _env(sandbox, namespace: str, name: str) -> dict:
    live = sandbox.kube.get(RUN, "RunService", namespace, name)
    containers = (live or {}).get("spec", {}).get("template", {}).get("containers") or [{}]
    return {e["name"]: e.get("value") for e in containers[0].get("env") or []}


def measure(path: Path, changes: int, bad: bool, timeout: float,
            workload: str = WORKLOAD) -> dict:
    from konfig.kube.custom_resources import custom_resources
    from konfig.load import load_definitions
    from konfig.operator.sandbox import Sandbox

    logging.getLogger("kopf").setLevel(logging.ERROR)
    logging.getLogger("konfig").setLevel(logging.ERROR)
    defs = load_definitions(path)
    sandbox = Sandbox(defs, config={"workers": 8, "requeue_max": 2.0, "debounce": 0.05}).start()
    try:
        started = time.monotonic()
        assert sandbox.apply(defs).ok
        converged = sandbox.wait_converged(timeout, poll=0.5)
        cold = time.monotonic() - started
        crs = {(r["kind"], r["metadata"]["namespace"], r["metadata"]["name"]): r
               for r in custom_resources(defs)}
        domains = sorted(defs.domains)
        if bad:
            broken = dict(crs[("Workload", f"{domains[0]}-dev", "svc-1")])
            spec = json.loads(json.dumps(broken["spec"]))
            spec["resources"][0]["template"] = "no-such-template"
            sandbox.client.apply({**broken, "spec": spec}, field_manager="konfig")
        loop = sandbox.operator.loop
        latencies, requests, writes = [], [], []
        for i in range(changes):
            domain = domains[(i + 1) % len(domains)] if bad and len(domains) > 1 else \
                domains[i % len(domains)]
            key = ("Workload", f"{domain}-dev", workload)
            cr = crs[key]
            spec = json.loads(json.dumps(cr["spec"]))
            # sorts last: see tests/operator/test_replicas.py on the emulator's env merge
            spec["env"] = {**spec.get("env", {}), "ZZ_ROUND": str(i)}
            deadline = time.monotonic() + 30
            while not loop.idle and time.monotonic() < deadline:
                time.sleep(0.05)
            sandbox.kube.clear_requests()
            t0 = time.monotonic()
            sandbox.client.apply({**cr, "spec": spec}, field_manager="konfig")
            while _env(sandbox, key[1], key[2]).get("ZZ_ROUND") != str(i):
                if time.monotonic() - t0 > 60:
                    raise SystemExit(f"change {i} not applied within 60 s")
                time.sleep(0.01)
            latencies.append(time.monotonic() - t0)
            time.sleep(0.1)
            while not loop.idle or loop.busy:
                time.sleep(0.02)
            seen = [r for r in sandbox.kube.requests if "watch" not in r.query
                    and not r.path.endswith("/events")]
            requests.append(len(seen))
            writes.append(sum(1 for r in seen if r.method in ("POST", "PUT", "PATCH", "DELETE")
                              and "/konfig.dev/" not in r.path))
        latencies.sort()
        p95 = latencies[min(len(latencies) - 1, int(round(0.95 * (len(latencies) - 1))))]
        return {"domains": len(domains), "workloads": len(defs.workloads),
                "cold_s": round(cold, 1), "ready": converged.ready,
                "median_s": round(statistics.median(latencies), 3), "p95_s": round(p95, 3),
                "requests": statistics.median(requests), "writes": statistics.median(writes),
                "max_writes": max(writes)}
    finally:
        sandbox.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, nargs="*", default=[10, 100])
    parser.add_argument("--changes", type=int, default=20)
    parser.add_argument("--bad", action="store_true")
    parser.add_argument("--workload", default=WORKLOAD)
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.changes, args.bad, args.timeout,
                                 args.workload)))
        return
    from plan import generate

    rows = []
    for n in args.domains:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp), n)
            cmd = [sys.executable, __file__, "--child", tmp, "--changes", str(args.changes),
                   "--timeout", str(args.timeout), "--workload", args.workload] + (
                       ["--bad"] if args.bad else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=False)
            lines = [line for line in out.stdout.splitlines() if line.startswith("{")]
            if out.returncode or not lines:
                raise SystemExit(f"{n} domains failed:\n{out.stderr[-3000:]}")
            rows.append(json.loads(lines[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    print("| domains | workloads | invalid workload present | median (s) | p95 (s) "
          "| requests per change | writes per change | cold convergence (s) |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['domains']} | {r['workloads']} | {'yes' if args.bad else 'no'} "
              f"| {r['median_s']} | {r['p95_s']} | {r['requests']:g} | {r['writes']:g} "
              f"| {r['cold_s']} |")


if __name__ == "__main__":
    main()
