"""Benchmark: `konfig plan` time and peak memory for organisations of growing size.

Generates organisations of N domains × 3 environments × 5 workloads (each workload with a
bucket and a Pub/Sub topic, every fifth with a Cloud SQL database; per domain one external and
one platform workload, so both load balancers of every environment route N paths each), writes
them as YAML, and
measures, each size in a fresh process: load + validate, compile, and the CRD schema check of
every Config Connector object; peak memory is the process's maximum resident set size.

    python bench/plan.py                 # sizes 10, 100, 300, 1000 domains
    python bench/plan.py --sizes 50 200  # other sizes

Prints a Markdown table (the README's). Target: 1,000 domains under 20 s and 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS_PER_DOMAIN = 5
DOMAINS_PER_PLATFORM = 50
DIGEST = "0" * 64


def generate(root: Path, domains: int) -> None:
    """Write an organisation of ``domains`` domains into ``root``."""
    platforms = max(1, -(-domains // DOMAINS_PER_PLATFORM))
    (root / "control-plane.yaml").write_text(f"""\
apiVersion: konfig.dev/v1alpha1
kind: ControlPlane
metadata: {{name: bench}}
spec:
  gcp: {{parent: organizations/1234567890, billingAccount: 012345-6789AB-CDEF01,
        defaultRegion: us-central1, projectIdPrefix: b-, projectNumber: "1234567890"}}
  gitlab: {{url: https://gitlab.example.com, parentGroup: bench}}
  environments: [{{name: dev}}, {{name: stage}}, {{name: prod, production: true}}]
  services: [run.googleapis.com, sqladmin.googleapis.com, storage.googleapis.com, pubsub.googleapis.com]
  groups: [{{group: admins@example.com, role: owner}}]
  ingress: {{host: api.example.com}}
""")
    docs = []
    for p in range(platforms):
        docs.append(f"""\
apiVersion: konfig.dev/v1alpha1
kind: Platform
metadata: {{name: platform-{p}}}
spec: {{groups: [{{group: p{p}-leads@example.com, role: maintainer}}]}}
""")
    (root / "platforms.yaml").write_text("---\n".join(docs))
    for d in range(domains):
        platform = f"platform-{d // DOMAINS_PER_PLATFORM}"
        names = [f"svc-{w}" for w in range(WORKLOADS_PER_DOMAIN)]
        docs = [f"""\
apiVersion: konfig.dev/v1alpha1
kind: Domain
metadata: {{name: domain-{d}}}
spec:
  platform: {platform}
  groups: [{{group: d{d}-devs@example.com, role: developer}}, {{group: d{d}-oncall@example.com, role: owner}}]
  workloads: [{", ".join(names)}]
"""]
        for w, name in enumerate(names):
            sql = "\n    - {name: db, template: cloudsql-postgres, access: readwrite}" if w == 0 else ""
            dep = "\n  dependencies: [{workload: svc-0}]" if w else ""
            # One external and one platform workload per domain: both load balancers, a route
            # each, and the rest reached by their own URL.
            visibility = {1: "external", 2: "platform"}.get(w, "domain")
            docs.append(f"""\
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata: {{name: {name}}}
spec:
  platform: {platform}
  domain: domain-{d}
  image: us-docker.pkg.dev/b-bench-cp/domain-{d}/{name}@sha256:{DIGEST}
  ingress: {{visibility: {visibility}}}
  resources:
    - {{name: files, template: storage-bucket, access: write}}
    - {{name: events, template: pubsub-topic, access: publish}}{sql}{dep}
""")
        (root / f"domain-{d}.yaml").write_text("---\n".join(docs))


def measure(domains: int) -> dict:
    """Generate and plan one size in this process; return timings (s) and peak RSS (MiB)."""
    sys.path.insert(0, str(ROOT))
    from konfig.compile import compile_definitions
    from konfig.kcc_schema import validate_objects
    from konfig.load import load_definitions

    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp), domains)
        t0 = time.perf_counter()
        defs = load_definitions(tmp)
        t1 = time.perf_counter()
        state = compile_definitions(defs)
        t2 = time.perf_counter()
        bad = len(validate_objects(state.kubernetes))
        t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {"domains": domains, "workloads": len(defs.workloads), "objects": len(state.kubernetes),
            "load": t1 - t0, "compile": t2 - t1, "schemas": t3 - t2, "total": t3 - t0,
            "peak_mib": peak, "invalid": bad}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 100, 300, 1000])
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.one)))
        return
    print("| domains | workloads | Kubernetes objects | load + validate (s) | compile (s) "
          "| CRD check (s) | total (s) | peak RSS (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, "--one", str(size)], check=True,
                             capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        assert r["invalid"] == 0, f"{r['invalid']} objects failed their CRD schema"
        print(f"| {r['domains']} | {r['workloads']} | {r['objects']} | {r['load']:.2f} | "
              f"{r['compile']:.2f} | {r['schemas']:.2f} | {r['total']:.2f} | {r['peak_mib']:.0f} |",
              flush=True)


if __name__ == "__main__":
    main()
