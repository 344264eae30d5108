"""The Platform definition: a folder and subgroup under the control plane."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from konfig.model.common import (
    Budget, Definition, DisplayName, GroupBinding, KonfigModel, PlatformMetadata, ServiceName,
)


class PlatformSpec(KonfigModel):
    display_name: DisplayName | None = Field(
        default=None, description="GCP folder display name (3-30 characters); defaults to the name."
    )
    services: list[ServiceName] | None = Field(
        default=None, description="APIs allowed below; a subset of the control plane's."
    )
    groups: list[GroupBinding] = Field(default_factory=list)
    budget: Budget | None = Field(
        default=None,
        description="Monthly budget over these projects; owner groups are alerted at 50/90/100 % "
        "of actual and forecasted spend.",
    )


class Platform(Definition):
    """A platform (spec/definitions.md, "Platform")."""

    KIND = "Platform"
    kind: Literal["Platform"] = "Platform"
    metadata: PlatformMetadata  # type: ignore[valid-type]
    spec: PlatformSpec = Field(default_factory=PlatformSpec)
