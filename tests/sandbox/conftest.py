"""Fixtures for the sandbox emulators: a running Kubernetes API emulator and real clients."""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes.client
import pytest

from konfig.sandbox.kube_api import KubeEmulator


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    """A started emulator on an ephemeral port (bookmarks every 0.2 s so tests see them fast)."""
    with KubeEmulator(bookmark_interval=0.2) as emulator:
        yield emulator


@pytest.fixture
def api_client(kube: KubeEmulator) -> Iterator[kubernetes.client.ApiClient]:
    """The real kubernetes client, configured for the emulator's URL."""
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=kube.url))
    yield client
    client.close()


@pytest.fixture
def core(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client: kubernetes.client.ApiClient) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(api_client)
