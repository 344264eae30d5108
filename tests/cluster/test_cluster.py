"""The test cluster itself: real authentication and RBAC, ServiceAccount tokens, namespace
lifecycle and garbage collection by kube-controller-manager, the Config Connector stand-in,
and ``python -m tests.cluster up`` failing fast and cleaning up."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import kubernetes.client
import kubernetes.config
import pytest

from tests.cluster import ClusterError, ToolchainError
from tests.cluster.build import ensure_built
from tests.cluster.fixtures import reset

ROOT = Path(__file__).resolve().parents[2]


def api(kubeconfig: Path) -> kubernetes.client.ApiClient:
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


def test_identities_are_authenticated_and_authorised_by_rbac(kube_cluster, tmp_path):
    with api(kube_cluster.kubeconfig) as admin:
        names = [n.metadata.name for n in kubernetes.client.CoreV1Api(admin).list_namespace().items]
        assert "kube-system" in names
    alice = kube_cluster.kubeconfig_for("alice@example.com", ["devs"], path=tmp_path / "alice")
    with api(alice) as client:
        with pytest.raises(kubernetes.client.ApiException) as denied:
            kubernetes.client.CoreV1Api(client).list_namespace()
        assert denied.value.status == 403
        assert "alice@example.com" in denied.value.body
    kube_cluster.request("POST", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "devs-view"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                        "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}]})
    try:
        with api(alice) as client:  # the authoriser sees the binding within moments (its cache)
            deadline = time.monotonic() + 10
            while True:
                try:
                    kubernetes.client.CoreV1Api(client).list_namespaced_config_map("default")
                    break
                except kubernetes.client.ApiException as err:
                    assert err.status == 403 and time.monotonic() < deadline
                    time.sleep(0.1)
    finally:
        kube_cluster.request("DELETE", "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/devs-view")
    with pytest.raises(ClusterError, match="401"):
        kube_cluster.request("GET", "/api/v1/namespaces", token="not-a-token")


def test_service_account_tokens_namespace_deletion_and_garbage_collection(kube_cluster, tmp_path):
    request = kube_cluster.request
    request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t1"}})
    request("POST", "/api/v1/namespaces/t1/serviceaccounts",
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "robot"}})
    token = kube_cluster.service_account_token("t1", "robot")
    review = request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                     {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}, token=token)
    assert review["status"]["userInfo"]["username"] == "system:serviceaccount:t1:robot"
    # Garbage collection: a dependent goes once its owner is gone.
    owner = request("POST", "/api/v1/namespaces/t1/configmaps",
                    {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}})
    request("POST", "/api/v1/namespaces/t1/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dependent", "ownerReferences": [
            {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}]}})
    request("DELETE", "/api/v1/namespaces/t1/configmaps/owner")
    deadline = time.monotonic() + 30
    while any(c["metadata"]["name"] == "dependent"
              for c in request("GET", "/api/v1/namespaces/t1/configmaps")["items"]):
        assert time.monotonic() < deadline, "the garbage collector did not delete the dependent"
        time.sleep(0.2)
    # Namespace lifecycle: deleting the namespace deletes its contents, then it.
    request("DELETE", "/api/v1/namespaces/t1")
    deadline = time.monotonic() + 60
    while "t1" in {n["metadata"]["name"] for n in request("GET", "/api/v1/namespaces")["items"]}:
        assert time.monotonic() < deadline, "the namespace controller did not delete t1"
        time.sleep(0.2)


def test_reset_empties_the_cluster_at_once(kube_cluster):
    request = kube_cluster.request
    request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t3"}})
    request("POST", "/api/v1/namespaces/t3/configmaps", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "held", "finalizers": ["example.com/hold"]}})
    started = time.monotonic()
    reset(kube_cluster)
    assert time.monotonic() - started < 10
    assert "t3" not in {n["metadata"]["name"] for n in request("GET", "/api/v1/namespaces")["items"]}
    left = [c["metadata"]["name"] for c in request("GET", "/api/v1/configmaps")["items"]
            if c["metadata"]["namespace"] == "t3"]
    assert not left
    assert request("GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"], "CRDs stay"


def test_the_stand_in_marks_config_connector_objects_ready(kube_cluster):
    request = kube_cluster.request
    request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "t2"}})
    base = "/apis/storage.cnrm.cloud.google.com/v1beta1/namespaces/t2/storagebuckets"
    for name, annotations in (("ok", {}), ("broken", {"sandbox.konfig.dev/cnrm-fail": "quota exceeded"})):
        request("POST", base, {"apiVersion": "storage.cnrm.cloud.google.com/v1beta1", "kind": "StorageBucket",
                               "metadata": {"name": name, "annotations": annotations},
                               "spec": {"location": "EU"}})
    deadline = time.monotonic() + 30
    while True:
        got = {b["metadata"]["name"]: (b.get("status") or {}) for b in request("GET", base)["items"]}
        if all(s.get("conditions") for s in got.values()):
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
    assert got["ok"]["conditions"][0]["status"] == "True" and got["ok"]["observedGeneration"] == 1
    assert got["broken"]["conditions"][0] | {"lastTransitionTime": None} == {
        "type": "Ready", "status": "False", "reason": "UpdateFailed", "message": "quota exceeded",
        "lastTransitionTime": None}


def test_up_fails_fast_on_a_taken_port(tmp_path):
    ensure_built()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "tests.cluster", "up", "--kubeconfig",
                               str(tmp_path / "k"), "--port", str(port)], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is taken" in done.stderr
    assert not (tmp_path / "k").exists()


def test_up_prints_ready_and_cleans_up_on_sigterm(tmp_path):
    kubeconfig = tmp_path / "k"
    process = subprocess.Popen([sys.executable, "-m", "tests.cluster", "up", "--kubeconfig", str(kubeconfig),
                                "--bare"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "ready\n"
        with api(kubeconfig) as client:
            assert kubernetes.client.VersionApi(client).get_code().git_version.startswith("v1.")
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not kubeconfig.exists()


def test_the_build_says_what_is_missing_without_go(tmp_path, monkeypatch):
    monkeypatch.setenv("KONFIG_CACHE", str(tmp_path))  # nothing built here
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ToolchainError, match="`go` is not on PATH"):
        ensure_built(log=lambda line: None)
    assert os.environ["PATH"] == "/nonexistent"
