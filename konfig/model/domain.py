"""The Domain definition: a folder, a subgroup, and one project and namespace per environment."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from konfig.model.common import (
    Budget,
    DisplayName,
    DnsLabel,
    Definition,
    DomainMetadata,
    EnvironmentName,
    GroupBinding,
    KonfigModel,
    ServiceName,
)


class RawKccManifest(KonfigModel):
    """A plain Config Connector manifest the domain keeps beside Konfig (the escape hatch for
    kinds no ResourceTemplate covers): applied into each listed environment's namespace
    (all of the domain's by default) with Konfig's labels, its project pinned, under the
    guardrails of docs/gitops.md ("Raw Config Connector")."""

    manifest: dict[str, Any] = Field(
        description="The Config Connector object (apiVersion *.cnrm.cloud.google.com); "
                    "metadata.namespace and the project are set by Konfig.")
    environments: list[EnvironmentName] | None = Field(
        default=None, description="Environments it is applied in (default: all the domain's).")


class DomainSpec(KonfigModel):
    platform: DnsLabel
    display_name: DisplayName | None = None
    environments: list[EnvironmentName] | None = Field(
        default=None, description="A subset of the control plane's environments, in its order."
    )
    services: list[ServiceName] | None = None
    groups: list[GroupBinding] = Field(default_factory=list)
    workloads: list[DnsLabel] = Field(
        default_factory=list, description="GitLab projects to create from the workload template."
    )
    project_ids: dict[EnvironmentName, str] = Field(
        default_factory=dict, description="Per-environment project ID overrides (adoption)."
    )
    budget: Budget | None = Field(
        default=None,
        description="Monthly budget over these projects; owner groups are alerted at 50/90/100 % "
        "of actual and forecasted spend.",
    )
    raw_kcc: list[RawKccManifest] = Field(
        default_factory=list,
        description="Plain Config Connector manifests, for kinds the control plane's "
                    "spec.rawKcc allow-list names.")


class Domain(Definition):
    """A domain (spec/definitions.md, "Domain")."""

    KIND = "Domain"
    kind: Literal["Domain"] = "Domain"
    metadata: DomainMetadata  # type: ignore[valid-type]
    spec: DomainSpec
