"""pytest fixtures of the real test cluster (see :mod:`tests.cluster`). Registered by
tests/conftest.py; pytest-xdist runs each worker in its own process, so the session-scoped
cluster is one per worker and nothing is shared between workers."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, ClusterError, konfig_cluster

#: Namespaces the API server itself keeps; everything else a test made is removed.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})


@pytest.fixture(scope="session")
def real_cluster() -> Iterator[Cluster]:
    """The started cluster of this worker (built first if needed: see tests/cluster/build.py)."""
    with konfig_cluster() as cluster:
        yield cluster


@pytest.fixture
def kube_cluster(real_cluster: Cluster) -> Iterator[Cluster]:
    """The worker's cluster, emptied of what earlier tests left."""
    reset(real_cluster)
    yield real_cluster
    if real_cluster.exited():
        raise ClusterError(f"{', '.join(real_cluster.exited())} exited during the test")


def reset(cluster: Cluster, *, timeout: float = 90.0) -> None:
    """Remove every custom resource's finalizers and every non-system namespace, and wait
    until the namespace controller has deleted them (and with them everything inside).
    Cluster-scoped objects a test made (ClusterRoles, say) are the test's to remove."""
    from konfig.kube.crds import GROUP, NAMES, VERSION

    for names in NAMES.values():
        base = f"/apis/{GROUP}/{VERSION}"
        for item in cluster.request("GET", f"{base}/{names.plural}")["items"]:
            meta = item["metadata"]
            if meta.get("finalizers"):
                try:
                    cluster.request("PATCH", f"{base}/namespaces/{meta['namespace']}/{names.plural}/"
                                    f"{meta['name']}", {"metadata": {"finalizers": None}},
                                    content_type="application/merge-patch+json")
                except ClusterError as err:
                    if " 404 " not in str(err):
                        raise
    doomed = [n["metadata"]["name"] for n in cluster.request("GET", "/api/v1/namespaces")["items"]
              if n["metadata"]["name"] not in SYSTEM_NAMESPACES]
    for name in doomed:
        if not _is_terminating(cluster, name):
            try:
                cluster.request("DELETE", f"/api/v1/namespaces/{name}")
            except ClusterError as err:
                if " 404 " not in str(err):
                    raise
    deadline = time.monotonic() + timeout
    while True:
        left = [n["metadata"]["name"] for n in cluster.request("GET", "/api/v1/namespaces")["items"]
                if n["metadata"]["name"] not in SYSTEM_NAMESPACES]
        if not left:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"namespaces still terminating after {timeout:.0f}s: {left}")
        time.sleep(0.2)


def _is_terminating(cluster: Cluster, name: str) -> bool:
    try:
        namespace = cluster.request("GET", f"/api/v1/namespaces/{name}")
    except ClusterError:
        return True
    return bool(namespace["metadata"].get("deletionTimestamp"))
