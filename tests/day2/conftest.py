"""Fixtures for the day-2 adapter tests: the Kubernetes API emulator with the Konfig CRDs and
Config Connector's IAMPolicyMember CRD installed, the real kubernetes client pointed at it, and
the organisation of :mod:`tests.day2.org` created in it."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from ruamel.yaml import YAML

import konfig
from konfig.kube.crds import all_crds
from konfig.sandbox.kube_api import KubeEmulator

from . import org

KCC_CRDS = Path(konfig.__file__).parent / "data" / "kcc" / "crds"
IAM_POLICY_MEMBER_CRD = KCC_CRDS / (
    "apiextensions.k8s.io_v1_customresourcedefinition_iampolicymembers.iam.cnrm.cloud.google.com.yaml"
)
SYSTEM = "konfig-system"


class Cluster:
    """The emulator, a real client, and shortcuts to seed and read Konfig objects."""

    def __init__(self, kube: KubeEmulator, api_client: kubernetes.client.ApiClient) -> None:
        self.kube = kube
        self.api_client = api_client
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.events = kubernetes.client.EventsV1Api(api_client)

    def namespace(self, name: str) -> None:
        if self.kube.get("v1", "Namespace", None, name) is None:
            self.core.create_namespace({"metadata": {"name": name}})

    def put(self, obj: dict[str, Any], namespace: str) -> dict[str, Any]:
        plural = obj["kind"].lower() + "s"
        return self.custom.create_namespaced_custom_object("konfig.dev", "v1alpha1", namespace, plural,
                                                          copy.deepcopy(obj))

    def seed(self, control_plane: dict | None = None, *domains: dict) -> None:
        """konfig-system with the ControlPlane, Platform retail and Domains (shop and stores by
        default); a namespace per domain environment."""
        self.namespace(SYSTEM)
        self.put(control_plane or org.control_plane(), SYSTEM)
        self.put(org.platform(), SYSTEM)
        for domain in domains or (org.domain(), org.stores()):
            self.put(domain, SYSTEM)
            for env in domain["spec"].get("environments") or ["dev", "stage", "prod"]:
                self.namespace(f"{domain['metadata']['name']}-{env}")

    def workload(self, domain: str, env: str, image: str, *, ready: str = "True", observe: bool = True,
                 reported_image: str | None = None, name: str = "checkout") -> dict[str, Any]:
        """Create the Workload in ``<domain>-<env>`` and, with ``observe``, write the status the
        operator would (its image, observedGeneration, Ready)."""
        namespace = f"{domain}-{env}"
        created = self.put(org.workload(domain, image, name=name), namespace)
        if not observe:
            return created
        generation = created["metadata"]["generation"]
        status = {"image": reported_image or image, "observedGeneration": generation,
                  "conditions": [{"type": "Ready", "status": ready, "reason": "Reconciled",
                                  "message": "applied", "observedGeneration": generation,
                                  "lastTransitionTime": "2025-03-01T00:00:00Z"}]}
        return self.custom.patch_namespaced_custom_object_status(
            "konfig.dev", "v1alpha1", namespace, "workloads", name, {"status": status})

    def get(self, plural: str, namespace: str, name: str, group: str = "konfig.dev",
            version: str = "v1alpha1") -> dict[str, Any] | None:
        try:
            return self.custom.get_namespaced_custom_object(group, version, namespace, plural, name)
        except kubernetes.client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def members(self) -> list[dict[str, Any]]:
        return self.custom.list_namespaced_custom_object(
            "iam.cnrm.cloud.google.com", "v1beta1", SYSTEM, "iampolicymembers")["items"]

    def events_about(self, namespace: str, name: str) -> list[Any]:
        return [e for e in self.events.list_namespaced_event(namespace).items if e.regarding.name == name]


@pytest.fixture
def kube() -> Iterator[KubeEmulator]:
    with KubeEmulator() as emulator:
        emulator.install_crds(all_crds())
        emulator.install_crds([YAML(typ="safe").load(IAM_POLICY_MEMBER_CRD.read_text())])
        yield emulator


@pytest.fixture
def cluster(kube: KubeEmulator) -> Iterator[Cluster]:
    client = kubernetes.client.ApiClient(kubernetes.client.Configuration(host=kube.url))
    yield Cluster(kube, client)
    client.close()


@pytest.fixture
def seeded(cluster: Cluster) -> Cluster:
    cluster.seed()
    return cluster
