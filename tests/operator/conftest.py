"""Fixtures: a Kubernetes API emulator on 127.0.0.1 with Konfig's and Config Connector's CRDs,
and the real kubernetes client (through konfig.kube.client) pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from konfig.kube import crds as konfig_crds
from konfig.kube.client import KubeClient, RetrySettings
from konfig.kube.kinds import shipped_kcc_crds
from konfig.sandbox.kube_api import KubeEmulator


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator(fake_config_connector=True) as emulator:
        emulator.install_crds([*shipped_kcc_crds(), *konfig_crds.all_crds()])
        yield emulator


@pytest.fixture
def client(kube: KubeEmulator) -> Iterator[KubeClient]:
    c = KubeClient.connect(server=kube.url, retry=RetrySettings(attempts=2, initial=0.05))
    yield c
    c.close()


def writes(kube: KubeEmulator) -> list:
    """Requests that changed something (everything but reads and watches)."""
    return [r for r in kube.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]
