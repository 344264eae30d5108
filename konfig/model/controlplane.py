"""The ControlPlane definition: the root of one organisation's tree."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator

from konfig.model import names
from konfig.model.common import (
    ControlPlaneMetadata,
    Definition,
    EnvironmentName,
    DisplayName,
    GroupBinding,
    ImageReference,
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
    url: Annotated[str, StringConstraints(pattern=r"^https?://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~/-]*)?$")]
    parent_group: Annotated[str, StringConstraints(pattern=names.GITLAB_PATH)] = Field(
        description="Existing group (full path); adopted, never created."
    )
    cli_image: ImageReference | None = Field(
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

    privileged_access_manager: bool = Field(
        default=False,
        description="The organisation uses Privileged Access Manager: render break-glass as PAM "
        "entitlements at every level (requested with `gcloud pam grants create`) instead of "
        "time-conditioned IAM bindings made by `konfig break-glass request`.",
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


#: A DNS host name: lowercase labels of letters, digits and hyphens, at least two of them,
#: at most 253 characters. Source: RFC 1035 section 2.3.1, RFC 1123 section 2.1.
HOSTNAME_RE = r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"
#: Konfig prefixes ``<env>.`` and ``internal.<env>.`` (at most 18 characters) to the host.
MAX_HOSTNAME = 253 - 18
Hostname = Annotated[str, StringConstraints(pattern=HOSTNAME_RE, max_length=MAX_HOSTNAME)]


def parse_ipv4_network(text: str) -> ipaddress.IPv4Network:
    """``"10.10.0.0/16"`` → the network. Raises ``ValueError`` in plain words for anything that
    is not an IPv4 network address with a prefix length (host bits set, IPv6, no prefix)."""
    if "/" not in text:
        raise ValueError(f"{text!r} needs a prefix length, e.g. {text}/16")
    try:
        return ipaddress.IPv4Network(text, strict=True)
    except ipaddress.AddressValueError:
        raise ValueError(f"{text!r} is not an IPv4 range") from None
    except ipaddress.NetmaskValueError:
        raise ValueError(f"{text!r} has an invalid prefix length") from None
    except ValueError:
        base = ipaddress.IPv4Network(text, strict=False)
        raise ValueError(f"{text!r} has host bits set; the range starts at {base}") from None


class EnvironmentNetwork(KonfigModel):
    """The network of one environment (spec/definitions.md, "Networking")."""

    cidr: str | None = Field(
        default=None,
        description="Private IPv4 range of the environment's network, /8 to /19, split into "
        "its subnets, proxy-only subnets and private services access range (docs/networking.md). "
        "Defaults to a stable range per environment name.",
    )
    project_id: str | None = Field(
        default=None,
        description="Host project to create or adopt; defaults to '<prefix>net-<environment>'.",
    )

    @field_validator("cidr")
    @classmethod
    def _private_range(cls, value: str | None) -> str | None:
        if value is None:
            return value
        network = parse_ipv4_network(value)
        if not network.is_private or network.is_loopback or network.is_link_local:
            raise ValueError(
                f"{value!r} is not a private range (use RFC 1918: 10.0.0.0/8, 172.16.0.0/12, "
                "192.168.0.0/16, or RFC 6598: 100.64.0.0/10)"
            )
        return value


class NetworkSettings(KonfigModel):
    environments: dict[EnvironmentName, EnvironmentNetwork] = Field(default_factory=dict)


class EnvironmentIngress(KonfigModel):
    host: Hostname | None = Field(
        default=None, description="External host of this environment, replacing the default."
    )


class IngressSettings(KonfigModel):
    host: Hostname | None = Field(
        default=None,
        description="External host: production environments use it as is, the others "
        "'<env>.<host>'. Required as soon as a workload is external.",
    )
    environments: dict[EnvironmentName, EnvironmentIngress] = Field(default_factory=dict)
class RawKccService(KonfigModel):
    """One Config Connector API group domains may use as raw manifests (``Domain.spec.rawKcc``),
    the service it needs, and the roles its Config Connector service account then gets on the
    domain environment's project (predefined roles only: basic roles are refused)."""

    api_group: str = Field(pattern=r"^[a-z0-9]+\.cnrm\.cloud\.google\.com$",
                           description="e.g. monitoring.cnrm.cloud.google.com")
    service: ServiceName
    roles: list[str] = Field(min_length=1, description="e.g. roles/monitoring.editor")


class TemplatePolicySettings(KonfigModel):
    """Explicit exceptions to the template policy (docs/resource-templates.md, "Policy"):
    visible in the definitions repository's diff, so a reviewer sees every widening."""

    extra_roles: list[Annotated[str, StringConstraints(pattern=r"^roles/[A-Za-z0-9_.]+$")]] = Field(
        default_factory=list,
        description="Roles access modes may name although the policy refuses them (never "
        "basic roles).",
    )
    extra_kinds: list[Annotated[str, StringConstraints(pattern=r"^([a-z0-9]+/)?[A-Z][A-Za-z0-9]*$")]] = Field(
        default_factory=list,
        description="Konfig-owned Config Connector kinds templates may render (Kind or "
        "group/Kind, e.g. serviceusage/ServiceIdentity); never IAM kinds.",
    )

    extra_projects: list[Annotated[str, StringConstraints(pattern=r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")]] = Field(
        default_factory=list,
        description="Projects rendered objects may refer to besides their own (e.g. a topic "
        "another team publishes to, for a subscription).",
    )

    @field_validator("extra_roles")
    @classmethod
    def _no_basic(cls, value: list[str]) -> list[str]:
        basic = sorted(set(value) & BASIC_ROLES)
        if basic:
            raise ValueError(f"{', '.join(basic)}: basic roles cannot be allowed")
        return value

    @field_validator("extra_kinds")
    @classmethod
    def _no_iam(cls, value: list[str]) -> list[str]:
        iam = [k for k in value if k.startswith("iam/") or k.startswith("IAM")]
        if iam:
            raise ValueError(f"{', '.join(iam)}: IAM kinds are never rendered by templates "
                             "(Konfig derives bindings from access modes)")
        return value


class ControlPlaneSpec(KonfigModel):
    display_name: DisplayName | None = None
    gcp: GcpSettings
    gitlab: GitLabSettings
    environments: list[Environment] = Field(min_length=1)
    services: list[ServiceName] = Field(default_factory=list)
    groups: list[GroupBinding] = Field(default_factory=list)
    break_glass: BreakGlass = Field(default_factory=BreakGlass)
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    ingress: IngressSettings = Field(default_factory=IngressSettings)
    raw_kcc: list[RawKccService] = Field(
        default_factory=list,
        description="Config Connector API groups domains may use directly (Domain.spec.rawKcc).")
    policy: TemplatePolicySettings = Field(default_factory=TemplatePolicySettings)


class ControlPlane(Definition):
    """The root of the tree (spec/definitions.md, "ControlPlane")."""

    KIND = "ControlPlane"
    kind: Literal["ControlPlane"] = "ControlPlane"
    metadata: ControlPlaneMetadata  # type: ignore[valid-type]
    spec: ControlPlaneSpec

    @property
    def environment_names(self) -> list[str]:
        return [e.name for e in self.spec.environments]
