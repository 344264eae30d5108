"""Fixtures: the GCP fakes on ephemeral 127.0.0.1 ports, real google-cloud clients wired to
them, and a control plane built by hand."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML

from konfig.gcp.clients import Endpoints, connect
from konfig.gcp.target import BootstrapTarget
from konfig.model.controlplane import ControlPlane
from konfig.sandbox.fake_container import FakeContainer
from konfig.sandbox.fake_iam import FakeIam
from konfig.sandbox.fake_resourcemanager import FakeResourceManager

ORG = "organizations/123456789012"
BILLING = "012345-6789AB-CDEF01"

WRITE_RPCS = frozenset(
    {
        "CreateFolder",
        "CreateProject",
        "UpdateProject",
        "SetIamPolicy",
        "BatchEnableServices",
        "UpdateProjectBillingInfo",
        "CreateServiceAccount",
        "DisableServiceAccount",
        "EnableServiceAccount",
        "CreateCluster",
        "UpdateCluster",
        "SetAddonsConfig",
        "SetLabels",
    }
)

CONTROL_PLANE_YAML = f"""\
apiVersion: konfig.dev/v1alpha1
kind: ControlPlane
metadata: {{name: acme}}
spec:
  gcp:
    parent: {ORG}
    billingAccount: {BILLING}
    defaultRegion: us-central1
    projectIdPrefix: acme-
  gitlab: {{url: https://gitlab.example.com, parentGroup: acme}}
  environments:
    - {{name: dev}}
    - {{name: prod, production: true}}
"""


class Fakes:
    """Both fakes, wired as in GCP: enabling Compute Engine creates its default account."""

    def __init__(self) -> None:
        self.iam = FakeIam().start()
        self.rm = FakeResourceManager(
            operation_polls=2, on_service_enabled=self.iam.on_service_enabled
        ).start()
        self.gke = FakeContainer(operation_polls=2).start()

    @property
    def endpoints(self) -> Endpoints:
        return Endpoints(
            resource_manager=self.rm.endpoint,
            service_usage=self.rm.endpoint,
            billing=self.rm.endpoint,
            iam=self.iam.target,
            container=self.gke.endpoint,
        )

    @property
    def env(self) -> dict[str, str]:
        return {
            "KONFIG_GCP_RESOURCEMANAGER_ENDPOINT": self.rm.endpoint,
            "KONFIG_GCP_SERVICEUSAGE_ENDPOINT": self.rm.endpoint,
            "KONFIG_GCP_BILLING_ENDPOINT": self.rm.endpoint,
            "KONFIG_GCP_IAM_ENDPOINT": self.iam.target,
            "KONFIG_GCP_CONTAINER_ENDPOINT": self.gke.endpoint,
            "KONFIG_GCP_BACKOFF_SECONDS": "0.01",
        }

    def writes(self) -> list[str]:
        """Calls, to either fake, that change state."""
        return [c for c in self.rm.calls + self.iam.calls + self.gke.calls if c in WRITE_RPCS]

    def stop(self) -> None:
        self.rm.stop()
        self.iam.stop()
        self.gke.stop()


@pytest.fixture
def fakes():
    started = Fakes()
    yield started
    started.stop()


@pytest.fixture
def clients(fakes):
    built = connect(fakes.endpoints, backoff_seconds=0.01)
    yield built
    built.close()


@pytest.fixture
def control_plane() -> ControlPlane:
    return ControlPlane.model_validate(YAML(typ="safe").load(CONTROL_PLANE_YAML))


@pytest.fixture
def target(control_plane) -> BootstrapTarget:
    return BootstrapTarget.from_control_plane(control_plane)
