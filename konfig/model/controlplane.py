"""The ControlPlane definition: the root of one organisation's tree."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from konfig.model import names
from konfig.model.common import (
    ControlPlaneMetadata,
    Definition,
    EnvironmentName,
    GroupBinding,
    KonfigModel,
    ServiceName,
)

DURATION_RE = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``"90m"`` → 5400. Accepts one integer and one unit of s, m, h or d; returns seconds.

    Raises ``ValueError`` for anything else.
    """
    match = DURATION_RE.match(text)
    if not match:
        raise ValueError(f"duration {text!r} must be a whole number and a unit (s, m, h, d)")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


class GcpSettings(KonfigModel):
    parent: Annotated[str, StringConstraints(pattern=r"^(organizations|folders)/[0-9]+$")] = Field(
        description="Where the control-plane folder is created: organizations/N or folders/N."
    )
    billing_account: Annotated[str, StringConstraints(pattern=names.BILLING_ACCOUNT_RE)]
    default_region: Annotated[str, StringConstraints(pattern=r"^[a-z]+-[a-z]+[0-9]+$")]
    project_id_prefix: Annotated[
        str, StringConstraints(pattern=r"^([a-z][-a-z0-9]*)?$", max_length=12)
    ] = ""
    project_id: str | None = Field(
        default=None, description="Control-plane project ID; defaults to '<prefix><name>-cp'."
    )
    project_number: Annotated[str, StringConstraints(pattern=r"^[0-9]{6,20}$")] | None = Field(
        default=None,
        description=(
            "Number of the control-plane project, printed by `konfig bootstrap`. Needed for the "
            "Workload Identity Federation principals of CI pipelines."
        ),
    )


class GitLabSettings(KonfigModel):
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]
    parent_group: Annotated[str, StringConstraints(pattern=names.GITLAB_PATH)] = Field(
        description="Existing group (full path); adopted, never created."
    )
    cli_image: str | None = Field(
        default=None,
        description="Container image with konfig, gcloud and kubectl, run by the workload "
        "pipelines' promotion jobs (KONFIG_CLI_IMAGE).",
    )


class Environment(KonfigModel):
    name: EnvironmentName
    production: bool = False


#: Roles owner groups get during break-glass when the control plane names none: the admin roles
#: of the services Konfig manages, plus acting as service accounts and reading logs. Basic roles
#: are impossible here: GCP refuses IAM conditions (the time limit) on roles/owner, editor and
#: viewer. Source: https://cloud.google.com/iam/docs/conditions-overview
DEFAULT_BREAK_GLASS_ROLES = (
    "roles/cloudsql.admin",
    "roles/datastore.owner",
    "roles/iam.serviceAccountUser",
    "roles/logging.admin",
    "roles/monitoring.editor",
    "roles/pubsub.admin",
    "roles/redis.admin",
    "roles/run.admin",
    "roles/secretmanager.admin",
    "roles/storage.admin",
)
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})


class BreakGlass(KonfigModel):
    max_duration: str = Field(default="4h", description="Longest grant, e.g. 4h (s, m, h, d).")
    roles: list[Annotated[str, StringConstraints(pattern=r"^roles/[A-Za-z0-9_.]+$")]] = Field(
        default_factory=lambda: list(DEFAULT_BREAK_GLASS_ROLES),
        description="Predefined or custom roles granted to owner groups during break-glass "
        "(time-bound by an IAM condition, so never a basic role).",
    )

    @field_validator("max_duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        if parse_duration(value) <= 0:
            raise ValueError("duration must be positive")
        return value

    @field_validator("roles")
    @classmethod
    def _no_basic_roles(cls, value: list[str]) -> list[str]:
        basic = sorted(set(value) & BASIC_ROLES)
        if basic:
            raise ValueError(
                f"{', '.join(basic)} cannot be time-bound: GCP refuses IAM conditions on basic "
                "roles (https://cloud.google.com/iam/docs/conditions-overview); list predefined roles"
            )
        return value

    @property
    def max_seconds(self) -> int:
        return parse_duration(self.max_duration)


class ControlPlaneSpec(KonfigModel):
    display_name: str | None = None
    gcp: GcpSettings
    gitlab: GitLabSettings
    environments: list[Environment] = Field(min_length=1)
    services: list[ServiceName] = Field(default_factory=list)
    groups: list[GroupBinding] = Field(default_factory=list)
    break_glass: BreakGlass = Field(default_factory=BreakGlass)


class ControlPlane(Definition):
    """The root of the tree (spec/definitions.md, "ControlPlane")."""

    KIND = "ControlPlane"
    kind: Literal["ControlPlane"] = "ControlPlane"
    metadata: ControlPlaneMetadata  # type: ignore[valid-type]
    spec: ControlPlaneSpec

    @property
    def environment_names(self) -> list[str]:
        return [e.name for e in self.spec.environments]
