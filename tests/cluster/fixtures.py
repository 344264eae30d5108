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


def reset(cluster: Cluster, *, timeout: float = 30.0) -> None:
    """Remove every non-system namespace and everything in it (finalizers or not), and wait
    until the API server no longer serves them. Cluster-scoped objects a test made
    (ClusterRoles, say) are the test's to remove.

    Deleting namespaces through the API would take the namespace controller 5 s of grace and
    then a sweep of all 150-odd resource types, about 12 s per test here; the cluster is
    ours and throwaway, so the keys go straight from etcd (see :meth:`Cluster.wipe_namespaces`)."""
    doomed = [n["metadata"]["name"] for n in cluster.request("GET", "/api/v1/namespaces")["items"]
              if n["metadata"]["name"] not in SYSTEM_NAMESPACES]
    if not doomed:
        return
    # Controllers that had not yet seen the namespaces go (the root CA publisher, the
    # ServiceAccount controller) may write into them once more: wipe until a scan finds nothing.
    deadline = time.monotonic() + timeout
    while True:
        wiped = cluster.wipe_namespaces(doomed)
        left = [n["metadata"]["name"] for n in cluster.request("GET", "/api/v1/namespaces")["items"]
                if n["metadata"]["name"] in doomed]
        if not wiped and not left:
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"namespaces still served {timeout:.0f}s after their removal: {left}")
        time.sleep(0.1)
