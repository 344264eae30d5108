"""The Domain definition: a folder, a subgroup, and one project and namespace per environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from konfig.model.common import (
    Budget,
    DnsLabel,
    Definition,
    DomainMetadata,
    EnvironmentName,
    GroupBinding,
    KonfigModel,
    ServiceName,
)


class DomainSpec(KonfigModel):
    platform: DnsLabel
    display_name: str | None = None
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


class Domain(Definition):
    """A domain (spec/definitions.md, "Domain")."""

    KIND = "Domain"
    kind: Literal["Domain"] = "Domain"
    metadata: DomainMetadata  # type: ignore[valid-type]
    spec: DomainSpec
