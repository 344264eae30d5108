"""Crash safety: ``konfig operator`` killed (SIGKILL) in the middle of a pass, then restarted,
converges with no duplicates; probes and metrics answer over HTTP."""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import urllib.request

from konfig.compile import compile_definitions
from konfig.load import load_definitions
from konfig.model import API_VERSION
from konfig.operator.sandbox import SANDBOX_TOKEN, object_counts

from tests.e2e.conftest import ROOT

SERVICES = "serviceusage.cnrm.cloud.google.com/v1beta1"


def test_operator_killed_mid_reconcile_restarts_and_converges(tree, sandbox_for, tmp_path):
    sandbox = sandbox_for(tree, operator=False)
    defs = load_definitions(tree)
    state = compile_definitions(defs)
    env = {**os.environ, "KUBECONFIG": str(sandbox.kube.kubeconfig_path(tmp_path)),
           "GITLAB_TOKEN": SANDBOX_TOKEN, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "operator.log").open("wb")  # a file, not a pipe nobody reads until the end
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), "operator", f"--gitlab-url={sandbox.gitlab.url}",
         "--resync-interval=1h", "--health-port=0", "--metrics-port=0", "--standalone",
         "--log-level=info"],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log)
    try:
        sandbox.apply(defs, state=state)
        total = len(state.kubernetes)
        # Kill it once part, not all, of the objects exist: in the middle of its first pass
        # (project services are applied halfway through; polled every 20 ms).
        sandbox.kube.wait(lambda: len(sandbox.kube.list(SERVICES, "Service")) >= 20, timeout=60)
        process.send_signal(signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        log.close()
        logs = (tmp_path / "operator.log").read_text()
    assert 0 < sum(object_counts(sandbox).values()) < total, "the kill did not land mid-pass"
    assert any(line.startswith("{") and json.loads(line).get("message") for line in logs.splitlines()), \
        "the operator logs JSON lines"

    operator = sandbox.start_operator()
    converged = sandbox.wait_converged(40)
    assert converged.ready, converged.not_ready[:5]
    assert object_counts(sandbox) == collections.Counter(o["kind"] for o in state.kubernetes)
    for resource in sandbox.resources():
        assert resource["metadata"]["finalizers"].count("konfig.dev/finalizer") == 1
    projects = [f"{g}/{p}" for g, ps in sandbox.gitlab_tree().items() for p in ps]
    assert sorted(projects) == sorted(p.path_with_namespace for p in state.gitlab.projects)
    run = sandbox.kube.get("run.cnrm.cloud.google.com/v1beta1", "RunService", "ecommerce-dev", "cart")
    assert len(run["metadata"]["ownerReferences"]) == 1
    assert run["metadata"]["ownerReferences"][0]["uid"] == sandbox.kube.get(
        API_VERSION, "Workload", "ecommerce-dev", "cart")["metadata"]["uid"]

    # Probes and metrics of the restarted operator.
    base = f"http://127.0.0.1:{operator.health_port}"
    assert json.load(urllib.request.urlopen(f"{base}/healthz")) == {"alive": True}
    assert json.load(urllib.request.urlopen(f"{base}/readyz")) == {"ready": True}
    metrics = urllib.request.urlopen(f"http://127.0.0.1:{operator.metrics_port}/metrics").read().decode()
    assert 'konfig_reconciles_total{outcome="ok",trigger="startup"} 1.0' in metrics
    assert "konfig_objects_applied_total" in metrics and "konfig_objects_managed" in metrics
