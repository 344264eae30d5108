"""The real cluster behind the interface :class:`konfig.operator.sandbox.Sandbox` uses of its
cluster (the emulator's ``get``/``list``/``delete``/``wait``/``kubeconfig_path``), so the same
scenarios run on either. Reads and writes go through the real ``kubernetes`` client as the
cluster's admin."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from konfig.kube.client import KubeClient, RetrySettings

from tests.cluster.server import Cluster


class RealKube:
    """A started :class:`~tests.cluster.server.Cluster` seen as a sandbox cluster. With
    ``owned`` the sandbox's ``start``/``stop`` start and stop the cluster; otherwise the
    cluster outlives it (a test fixture's)."""

    #: Polling period of :meth:`wait` (the real server has no in-process change hook).
    POLL = 0.02

    def __init__(self, cluster: Cluster, *, owned: bool = False) -> None:
        self.cluster = cluster
        self.owned = owned
        self._client: KubeClient | None = None

    @property
    def client(self) -> KubeClient:
        if self._client is None:
            self._client = KubeClient.connect(str(self.cluster.kubeconfig),
                                              retry=RetrySettings(attempts=3, initial=0.05))
        return self._client

    @property
    def url(self) -> str:
        return self.cluster.server

    @property
    def connection(self) -> dict[str, Any]:
        """How the operator and ``konfig apply`` reach it (``OperatorConfig`` fields)."""
        return {"kubeconfig": str(self.cluster.kubeconfig)}

    def start(self) -> str:
        if self.owned:
            self.cluster.start()
        return self.url

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.owned:
            self.cluster.stop()

    def install_crds(self, crds: Iterable[dict[str, Any]]) -> None:
        """Install the CRDs the cluster does not serve yet."""
        served = {c["metadata"]["name"] for c in self.cluster.request(
            "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions")["items"]}
        missing = [c for c in crds if c["metadata"]["name"] not in served]
        if missing:
            self.cluster.install_crds(missing)

    def kubeconfig_path(self, directory: str | Path) -> Path:
        """A copy of the admin kubeconfig as ``<directory>/kubeconfig.yaml``."""
        target = Path(directory) / "kubeconfig.yaml"
        shutil.copy(self.cluster.kubeconfig, target)
        return target

    def get(self, api_version: str, kind: str, namespace: str | None, name: str
            ) -> dict[str, Any] | None:
        info = self.client.kinds.get(api_version, kind)
        return self.client.get(info, namespace if info.namespaced else None, name)

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        """Objects of a kind (in one namespace, or all), sorted by namespace and name."""
        items = self.client.list(self.client.kinds.get(api_version, kind), namespace=namespace,
                                 label_selector=label_selector)
        return sorted(items, key=lambda o: (o["metadata"].get("namespace") or "", o["metadata"]["name"]))

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str,
               propagation: str | None = None) -> None:
        info = self.client.kinds.get(api_version, kind)
        self.client.delete(info, namespace if info.namespaced else None, name,
                           propagation=propagation or "Background")

    def wait(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll ``predicate()`` until truthy; returns its value. Raises TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"condition not met within {timeout}s")
            time.sleep(self.POLL)
