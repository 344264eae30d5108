"""A real Kubernetes control plane for the tests: etcd, kube-apiserver (TLS, token and client
certificate authentication, RBAC) and kube-controller-manager (namespace lifecycle, garbage
collection, ServiceAccounts and their tokens), built from their Go modules once per machine
(:mod:`tests.cluster.build`) and run as child processes on 127.0.0.1
(:mod:`tests.cluster.server`). With Konfig's CRDs and the Config Connector CRDs installed, a
stand-in marks Config Connector objects Ready (:mod:`tests.cluster.kcc`): that, and only that,
is simulated.

From a shell::

    python -m tests.cluster build                  # once per machine (minutes), then cached
    python -m tests.cluster up --kubeconfig /tmp/k # prints `ready`; Ctrl-C stops and cleans up
    KUBECONFIG=/tmp/k kubectl get ns

In tests (fixtures of :mod:`tests.cluster.fixtures`, registered in tests/conftest.py):

* ``real_cluster`` (session scope, one cluster per pytest-xdist worker): a started
  :class:`Cluster` with the CRDs and the stand-in. Its API:

  - ``cluster.kubeconfig``: path of the admin kubeconfig (``system:masters``); ``cluster.server``
    (``https://127.0.0.1:PORT``), ``cluster.ca_path``;
  - ``cluster.kubeconfig_for(user, groups=())``: a kubeconfig for any named identity (a client
    certificate minted on the spot), e.g. a domain's CI service account email;
  - ``cluster.service_account_token(namespace, name)``: a ServiceAccount's token (TokenRequest);
  - ``cluster.request(method, path, body)``: one admin call, parsed JSON.

* ``kube_cluster`` (function scope): the same cluster, emptied for the test: every namespace
  and custom resource a previous test made is gone (finalizers released), so tests start
  from a cluster holding only the CRDs and Kubernetes' own objects.
"""

from __future__ import annotations

from typing import Any, Iterable

from tests.cluster.build import Binaries, ToolchainError, binaries, ensure_built
from tests.cluster.server import ADMIN, Cluster, ClusterError, Identity

__all__ = ["ADMIN", "Binaries", "Cluster", "ClusterError", "Identity", "ToolchainError",
           "binaries", "ensure_built", "konfig_cluster", "shipped_crds"]


def shipped_crds() -> list[dict[str, Any]]:
    """Konfig's CRDs and the Config Connector CRDs Konfig ships (konfig/data/kcc/crds)."""
    from konfig.kube import crds as konfig_crds
    from konfig.kube.kinds import shipped_kcc_crds

    return [*shipped_kcc_crds(), *konfig_crds.all_crds()]


def konfig_cluster(*, port: int | None = None, identities: Iterable[Identity] = (),
                   crds: bool = True, config_connector: bool = True) -> Cluster:
    """A (not yet started) :class:`Cluster` set up for Konfig: the shipped CRDs and the
    Config Connector stand-in, unless turned off."""
    return Cluster(port=port, identities=identities, crds=shipped_crds() if crds else (),
                   config_connector=config_connector and crds)
