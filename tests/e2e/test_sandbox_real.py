"""``konfig sandbox --cluster real``: the sandbox on etcd, kube-apiserver and
kube-controller-manager of tests/cluster, started and removed by the command."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.cluster import ensure_built
from tests.e2e.conftest import ROOT


def sandbox(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "cli.py"), "sandbox", str(ROOT / "definitions"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})


def test_the_sandbox_converges_on_the_real_cluster():
    ensure_built()
    done = sandbox("--cluster", "real")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "cluster (https://127.0.0.1:" in done.stdout
    assert "ecommerce-prod" in done.stdout


def test_without_the_binaries_it_says_how_to_build_them(tmp_path):
    done = sandbox("--cluster", "real", env={"KONFIG_CACHE": str(tmp_path)})
    assert done.returncode == 2
    assert "python -m tests.cluster build" in done.stdout
