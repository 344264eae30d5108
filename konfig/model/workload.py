"""The Workload definition: one deployable unit, its identity, resources and runtime."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from konfig.model import names
from konfig.model.common import (
    DnsLabel,
    Definition,
    EnvironmentName,
    KonfigModel,
    WorkloadMetadata,
)

Visibility = Literal["domain", "platform", "controlplane", "external"]
Runtime = Literal["cloudrun", "gke", "dataflow"]
EnvVarName = Annotated[str, StringConstraints(pattern=names.ENV_VAR_RE.pattern)]
ResourceName = Annotated[
    str, StringConstraints(pattern=names.DNS_LABEL, max_length=names.MAX_RESOURCE_NAME)
]
#: Kubernetes quantities, e.g. "1", "500m", "512Mi".
Quantity = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi)?$")]


HealthPath = Annotated[str, StringConstraints(pattern=r"^/[-a-zA-Z0-9_./?=&]*$")]


class Container(KonfigModel):
    port: int = Field(default=8080, ge=1, le=65535)
    cpu: Quantity = "1"
    memory: Quantity = "512Mi"
    command: list[str] | None = None
    args: list[str] | None = None
    health_path: HealthPath | None = Field(
        default=None,
        description="HTTP path answering 200 when healthy (GKE readiness and liveness probes); "
        "without it the probes open a TCP connection to the port.",
    )


class Scaling(KonfigModel):
    min: int = Field(default=0, ge=0, le=1000)
    max: int = Field(default=10, ge=1, le=1000)
    cpu_target: int = Field(
        default=70, ge=10, le=100,
        description="GKE: average CPU use, in percent of the requests, the autoscaler aims at.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "Scaling":
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must not exceed max ({self.max})")
        return self


#: URL map path rules: at most 1,024 characters, a ``*`` only as the last character after a
#: ``/``. Konfig adds ``/*`` itself. Source: https://cloud.google.com/load-balancing/docs/url-map-concepts#wildcards-regx-dynamic
MAX_INGRESS_PATH = 1000


def ingress_path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a workload's route on a load balancer, or ``None``."""
    if path == "/":
        return "'/' would take every request of the load balancer; name a path such as /shop"
    if path.endswith("/"):
        return f"{path!r} ends with '/'; write it without the trailing slash"
    if "//" in path:
        return f"{path!r} has an empty segment ('//')"
    if any(segment in (".", "..") for segment in path.split("/")):
        return f"{path!r} has a '.' or '..' segment; paths are taken literally, not resolved"
    return None


class Ingress(KonfigModel):
    visibility: Visibility = "domain"
    path: Annotated[
        str, StringConstraints(pattern=r"^/[-a-zA-Z0-9_./]*$", max_length=MAX_INGRESS_PATH)
    ] | None = Field(
        default=None,
        description="Path on the environment's load balancer; defaults to "
        "/<platform>/<domain>/<workload>. Letters, digits, '-', '_', '.' and '/'.",
    )

    @field_validator("path")
    @classmethod
    def _routable(cls, value: str | None) -> str | None:
        problem = ingress_path_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


class ResourceRequest(KonfigModel):
    """A resource the workload owns: rendered from ``template`` and bound with ``access``."""

    name: ResourceName
    template: DnsLabel
    access: DnsLabel
    params: dict[str, Any] = Field(default_factory=dict)


class Dependency(KonfigModel):
    """Another workload this one calls; the target's visibility must admit the caller."""

    workload: DnsLabel
    domain: DnsLabel | None = Field(default=None, description="Defaults to the caller's domain.")


class ContainerPatch(KonfigModel):
    port: int | None = Field(default=None, ge=1, le=65535)
    cpu: Quantity | None = None
    memory: Quantity | None = None
    command: list[str] | None = None
    args: list[str] | None = None
    health_path: HealthPath | None = None


class ScalingPatch(KonfigModel):
    min: int | None = Field(default=None, ge=0, le=1000)
    max: int | None = Field(default=None, ge=1, le=1000)
    cpu_target: int | None = Field(default=None, ge=10, le=100)


#: Dataflow parameter names as Flex Templates declare them (metadata.json ``parameters[].name``).
ParameterName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]


class Dataflow(KonfigModel):
    """The Flex Template a ``runtime: dataflow`` workload runs. Its launcher image is
    ``spec.image`` (built once by CI, promoted by digest); the job's parameters may name
    injected variables as ``$(NAME)`` (``$(STOCK_FEED_SUBSCRIPTION)``), resolved per
    environment."""

    mode: Literal["streaming", "batch"] = Field(
        description="streaming (runs until drained) or batch (runs once per launch)."
    )
    parameters: dict[ParameterName, str] = Field(default_factory=dict)
    machine_type: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)+$")] | None = None
    max_workers: int | None = Field(
        default=None, ge=1, le=1000, description="Defaults to spec.scaling.max."
    )


class DataflowPatch(KonfigModel):
    parameters: dict[ParameterName, str] | None = None
    machine_type: Annotated[str, StringConstraints(pattern=r"^[a-z0-9]+(-[a-z0-9]+)+$")] | None = None
    max_workers: int | None = Field(default=None, ge=1, le=1000)


class WorkloadOverride(KonfigModel):
    """Per-environment overrides of spec fields, merged over the base spec."""

    image: str | None = None
    container: ContainerPatch | None = None
    scaling: ScalingPatch | None = None
    env: dict[EnvVarName, str] | None = None
    dataflow: DataflowPatch | None = None


IMAGE_RE = names.IMAGE_REFERENCE_RE  # registry/path:tag@sha256:digest (distribution grammar)


class WorkloadSpec(KonfigModel):
    platform: DnsLabel
    domain: DnsLabel
    runtime: Runtime = "cloudrun"
    image: Annotated[str, StringConstraints(pattern=IMAGE_RE, max_length=255)] | None = Field(
        default=None, description="Set by CI; digests (@sha256:) required after the first env."
    )
    container: Container = Field(default_factory=Container)
    scaling: Scaling = Field(default_factory=Scaling)
    ingress: Ingress = Field(default_factory=Ingress)
    env: dict[EnvVarName, str] = Field(default_factory=dict)
    resources: list[ResourceRequest] = Field(default_factory=list)
    dependencies: list[Dependency] = Field(default_factory=list)
    environments: dict[EnvironmentName, WorkloadOverride] = Field(default_factory=dict)
    dataflow: Dataflow | None = Field(
        default=None, description="runtime dataflow: the Flex Template job (mode, parameters)."
    )

    @field_validator("resources")
    @classmethod
    def _unique_resources(cls, value: list[ResourceRequest]) -> list[ResourceRequest]:
        seen: set[str] = set()
        for r in value:
            if r.name in seen:
                raise ValueError(f"resource name {r.name!r} is used twice")
            seen.add(r.name)
        return value


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "env":
            out[key] = _merge(out[key], value)
        elif key == "env" and isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = value
    return out


class Workload(Definition):
    """A workload (spec/definitions.md, "Workload")."""

    KIND = "Workload"
    kind: Literal["Workload"] = "Workload"
    metadata: WorkloadMetadata  # type: ignore[valid-type]
    spec: WorkloadSpec

    def spec_for(self, environment: str) -> WorkloadSpec:
        """The effective spec in ``environment``: the base spec with that environment's
        override deep-merged over it (``env`` maps are merged key by key).

        Raises ``pydantic.ValidationError`` if the merge is invalid (e.g. min > max).
        """
        override = self.spec.environments.get(environment)
        if override is None:
            return self.spec
        base = self.spec.model_dump(exclude={"environments"})
        patch = override.model_dump(exclude_none=True)
        return WorkloadSpec.model_validate(_merge(base, patch))


#: Who may call a workload, widest last (spec/definitions.md, "opinions": domain by default,
#: then platform, control plane, external).
VISIBILITY_ORDER: tuple[Visibility, ...] = ("domain", "platform", "controlplane", "external")


def visibility_admits(
    visibility: Visibility, *, target_platform: str, target_domain: str,
    caller_platform: str, caller_domain: str,
) -> bool:
    """Whether a workload with ``visibility`` in ``target_platform/target_domain`` may be
    called by a workload in ``caller_platform/caller_domain`` (one control plane)."""
    if visibility in ("controlplane", "external"):
        return True
    if visibility == "platform":
        return caller_platform == target_platform
    return caller_platform == target_platform and caller_domain == target_domain
