"""Benchmark: time from ``konfig apply`` to a converged control plane.

For the example organisation (``definitions/``) and a generated organisation of 200 domains
(``bench/plan.py``'s ``generate``), in-process: the Kubernetes API emulator (fake Config
Connector on), the fake GitLab, and the real kopf operator (see ``konfig sandbox``). Measures:

* apply: ``konfig apply`` (Namespaces and custom resources, server-side apply);
* converged: from the start of apply until every custom resource reports Ready for its
  generation, i.e. every object is applied and Ready (Config Connector kinds) or applied.

    python bench/converge.py                  # example org and 200 domains
    python bench/converge.py --domains 50     # another generated size
    python bench/converge.py --cluster real   # on etcd + kube-apiserver + kube-controller-manager
                                              # (tests/cluster; its Config Connector stand-in)

Prints a Markdown table. Each size runs in a fresh process (clean memory, clean emulator).
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def server_peak_rss_mib(kube) -> int | None:
    """Peak RSS (VmHWM) of the real cluster's processes together, or None on the emulator."""
    cluster = getattr(kube, "cluster", None)
    if cluster is None:
        return None
    total = 0
    for child in cluster._children:
        status = Path(f"/proc/{child.process.pid}/status").read_text()
        total += int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")))
    return round(total / 1024)


def measure(path: Path, timeout: float, cluster: str = "emulator") -> dict:
    from konfig.compile import compile_definitions
    from konfig.load import load_definitions
    from konfig.operator.sandbox import Sandbox, real_cluster_kube

    logging.getLogger("kopf").setLevel(logging.ERROR)
    logging.getLogger("konfig").setLevel(logging.ERROR)
    defs = load_definitions(path)
    state = compile_definitions(defs)
    kube = real_cluster_kube() if cluster == "real" else None
    sandbox = Sandbox(defs, config={"workers": 8, "requeue_max": 2.0}, kube=kube).start()
    try:
        started = time.monotonic()
        applied = sandbox.apply(defs, state=state)
        applied_at = time.monotonic() - started
        converged = sandbox.wait_converged(timeout, poll=0.5)
        total = time.monotonic() - started
        passes = sandbox.operator.loop.passes if sandbox.operator else []
        first = next((p for p in passes if p.kube and p.kube.counts().get("created")), None)
        return {
            "domains": len(defs.domains), "workloads": len(defs.workloads),
            "resources": len(converged.resources), "objects": len(state.kubernetes),
            "gitlab": len(state.gitlab.groups) + len(state.gitlab.projects),
            "apply_s": round(applied_at, 2), "converged_s": round(total, 2),
            "ready": converged.ready, "apply_ok": applied.ok,
            "apply_failures": [r.describe() for r in applied.results
                               if r.action in ("failed", "conflict")][:3],
            "first_pass_s": round(first.duration, 2) if first else None,
            "passes": len(passes),
            "pass_detail": [(p.trigger, round(p.duration, 1), p.not_ready, p.status_writes,
                             round(p.kube.duration, 1) if p.kube else None,
                             round(p.gitlab.duration, 1) if p.gitlab else None)
                            for p in passes],
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "server_rss_mib": server_peak_rss_mib(sandbox.kube),
        }
    finally:
        sandbox.stop()


def run_child(label: str, path: Path, timeout: float, cluster: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(path), "--timeout", str(timeout),
                          "--cluster", cluster],
                         capture_output=True, text=True, check=False)
    lines = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode or not lines:
        raise SystemExit(f"{label} failed:\n{out.stderr[-3000:]}")
    return {"org": label, **json.loads(lines[-1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, nargs="*", default=[200])
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--cluster", choices=["emulator", "real"], default="emulator")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.timeout, args.cluster)))
        return
    from plan import generate

    rows = [run_child("example (definitions/)", ROOT / "definitions", args.timeout, args.cluster)]
    for n in args.domains:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp), n)
            rows.append(run_child(f"generated, {n} domains", Path(tmp), args.timeout, args.cluster))
    print("| organisation | cluster | domains | workloads | custom resources | cluster objects "
          "| GitLab groups+projects | konfig apply | first operator pass | apply → all Ready | passes "
          "| peak RSS | server peak RSS |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        ready = f"{r['converged_s']} s" if r["ready"] else f"not converged in {r['converged_s']} s"
        server = f"{r['server_rss_mib']} MiB" if r["server_rss_mib"] is not None else "—"
        print(f"| {r['org']} | {args.cluster} | {r['domains']} | {r['workloads']} | {r['resources']} "
              f"| {r['objects']} | {r['gitlab']} | {r['apply_s']} s | {r['first_pass_s']} s | {ready} "
              f"| {r['passes']} | {r['peak_rss_mib']} MiB | {server} |")


if __name__ == "__main__":
    main()
