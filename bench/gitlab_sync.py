"""Benchmark of the GitLab adapter against the fake GitLab server (127.0.0.1 only).

For organisations of growing size it measures, server-side (the fake's request log), the
requests and wall time of: a first sync (empty GitLab), a no-op full sync (shape + deep pass),
and a shape pass. Prints a markdown table.

    python bench/gitlab_sync.py            # sizes up to 1,000 groups / ~3,000 projects
    python bench/gitlab_sync.py --quick    # small sizes only

Targets (issue "GitLab mirror"): for 1,000 groups and 3,000 projects the first sync writes one
request per object to create (protections counted apart) and reads at most one per object; a
no-op full sync writes nothing and reads at most 2 per managed object; a shape pass needs under
60 requests (per_page=100).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from konfig.gitlab import GitLabSettings, RetryPolicy, connect, reconcile  # noqa: E402
from konfig.gitlab.model import TemplateFiles  # noqa: E402
from konfig.gitlab.testing import synthetic_tree  # noqa: E402
from konfig.sandbox.fake_gitlab import FakeGitLab  # noqa: E402

TOKEN = "bench-token"
TEMPLATE = TemplateFiles.of({".gitlab-ci.yml": b"include: ci/jobs.yml\n",
                             "ci/jobs.yml": b"build:\n  script: [make]\n",
                             "workload.yaml": b"kind: Workload\n"})
#: (platforms, domains per platform, workloads per domain)
SIZES = [(2, 4, 3), (3, 32, 3), (10, 99, 3)]
PROTECTION_KINDS = ("protected_branch", "protected_tag", "protected_environment")


def _counts(fake: FakeGitLab) -> tuple[int, int]:
    requests = fake.requests
    writes = sum(1 for r in requests if r.is_write)
    return len(requests) - writes, writes


def run_size(platforms: int, domains: int, workloads: int) -> list[dict]:
    tree = synthetic_tree(platforms, domains, workloads)
    groups, projects = len(tree.groups), len(tree.projects)
    sub_objects = sum(len(g.saml_group_links) + len(g.variables) for g in tree.groups)
    protections = sum(len(p.protected_branches) + len(p.protected_tags)
                      + len(p.protected_environments) for p in tree.projects)
    rows = []
    with FakeGitLab(import_delay=0.05) as fake:
        fake.add_token(TOKEN)
        fake.seed_group("acme")
        fake.set_custom_project_templates("acme", "acme/acme")
        settings = GitLabSettings(url=fake.url, token=TOKEN, import_poll=0.5,
                                  retry=RetryPolicy(initial=0.01, max_wait=0.5))
        client = connect(settings)
        for label, kwargs in (("first sync", {}), ("no-op full sync", {}),
                              ("shape pass", {"depth": "shape"})):
            fake.reset_log()
            started = time.perf_counter()
            report = reconcile(client, tree, settings=settings, template=TEMPLATE, **kwargs)
            wall = time.perf_counter() - started
            reads, writes = _counts(fake)
            assert report.ok, [r.describe() for r in report.failed][:5]
            object_writes = sum(1 for r in report.results if r.status == "done"
                                and r.change.kind not in PROTECTION_KINDS
                                and r.change.kind != "repository")
            protection_writes = writes - object_writes - sum(
                1 for r in report.results if r.change.kind == "repository")
            rows.append({
                "size": f"{groups} groups / {projects} projects",
                "pass": label, "reads": reads, "writes": writes,
                "object_writes": object_writes, "protection_writes": protection_writes,
                "reads_per_object": reads / (groups + projects),
                "reads_per_api_object": reads / (groups + projects + sub_objects + protections),
                "wall": wall,
            })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()
    sizes = SIZES[:2] if args.quick else SIZES
    print("| organisation | pass | reads | writes (objects + protections) | reads / group+project "
          "| reads / managed API object | wall (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for size in sizes:
        for row in run_size(*size):
            split = (f"{row['writes']} ({row['object_writes']} + {row['protection_writes']})"
                     if row["writes"] else "0")
            print(f"| {row['size']} | {row['pass']} | {row['reads']} | {split} | "
                  f"{row['reads_per_object']:.2f} | {row['reads_per_api_object']:.2f} | "
                  f"{row['wall']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
