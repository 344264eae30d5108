"""Shared building blocks of the definitions API (konfig.dev/v1alpha1)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints
from pydantic.alias_generators import to_camel

from konfig.errors import Location
from konfig.model import names
from konfig.yamlsource import nearest_line

API_VERSION = "konfig.dev/v1alpha1"

DnsLabel = Annotated[str, StringConstraints(pattern=names.DNS_LABEL)]
EnvironmentName = Annotated[
    str, StringConstraints(pattern=names.DNS_LABEL, max_length=names.MAX_ENVIRONMENT_NAME)
]
ServiceName = Annotated[str, StringConstraints(pattern=names.SERVICE_NAME_RE.pattern)]
GroupEmail = Annotated[str, StringConstraints(pattern=names.GROUP_EMAIL_RE)]
#: A container image reference (``registry/path:tag@sha256:...``, names.IMAGE_REFERENCE_RE).
ImageReference = Annotated[str, StringConstraints(pattern=names.IMAGE_REFERENCE_RE, max_length=255)]
#: A SAML group name safe for GitLab and CI (names.SAML_GROUP_NAME_RE).
SamlGroupName = Annotated[str, StringConstraints(pattern=names.SAML_GROUP_NAME_RE, max_length=255)]
#: A display name that also names a GitLab group (names.GITLAB_NAME_RE).
DisplayName = Annotated[str, StringConstraints(pattern=names.GITLAB_NAME_RE, max_length=255)]

Role = Literal["viewer", "developer", "maintainer", "owner"]


class KonfigModel(BaseModel):
    """Base of every definitions model: strict (unknown fields are errors), camelCase in YAML,
    immutable once loaded."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        str_strip_whitespace=False,
    )


class GroupBinding(KonfigModel):
    """An identity-provider group and the role it holds at this level and below."""

    group: GroupEmail = Field(description="Identity-provider group, in email form.")
    role: Role = Field(description="viewer | developer | maintainer | owner (see the role table).")
    saml_group_name: SamlGroupName | None = Field(
        default=None,
        description="SAML group name in GitLab; defaults to the part of the email before '@'. "
        "Printable, without quotes, backslashes, backticks, '$' or newlines.",
    )

    @property
    def saml_name(self) -> str:
        return self.saml_group_name or names.saml_group_name(self.group)


#: ISO 4217 currency codes are three capital letters. The budget's currency must be the billing
#: account's own currency, or the Budget API refuses it.
#: Source: https://cloud.google.com/billing/docs/reference/budget/rest/v1/billingAccounts.budgets
CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class Budget(KonfigModel):
    """A monthly cost guard post over a domain's (or a platform's) projects: owner groups are
    alerted at 50, 90 and 100 % of actual and of forecasted spend."""

    monthly: float = Field(gt=0, le=1e12, description="Amount per calendar month, in `currency`.")
    currency: CurrencyCode = Field(
        description="ISO 4217 code (USD, EUR); must be the billing account's currency."
    )


def _metadata_model(kind: str, max_length: int) -> type[KonfigModel]:
    class Metadata(KonfigModel):
        name: Annotated[str, StringConstraints(pattern=names.DNS_LABEL, max_length=max_length)] = (
            Field(description=f"Lowercase DNS label, at most {max_length} characters.")
        )
        labels: dict[str, str] = Field(default_factory=dict)
        annotations: dict[str, str] = Field(default_factory=dict)

    Metadata.__name__ = Metadata.__qualname__ = f"{kind}Metadata"
    return Metadata


ControlPlaneMetadata = _metadata_model("ControlPlane", names.MAX_CONTROL_PLANE_NAME)
PlatformMetadata = _metadata_model("Platform", names.MAX_PLATFORM_NAME)
DomainMetadata = _metadata_model("Domain", names.MAX_DOMAIN_NAME)
WorkloadMetadata = _metadata_model("Workload", names.MAX_WORKLOAD_NAME)
TemplateMetadata = _metadata_model("ResourceTemplate", 63)


class Definition(KonfigModel):
    """A Kubernetes-style definition: ``apiVersion``, ``kind``, ``metadata``, ``spec``.

    Each instance remembers where it was loaded from (:attr:`source`), and a map from field
    paths to lines (:meth:`locate`), so that problems found after validation still point to
    ``file:line: field``.
    """

    KIND: ClassVar[str] = ""
    api_version: Literal["konfig.dev/v1alpha1"] = Field(API_VERSION, alias="apiVersion")

    _source: Location = PrivateAttr(default_factory=Location)
    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    @property
    def name(self) -> str:
        return self.metadata.name  # type: ignore[attr-defined]

    @property
    def source(self) -> Location:
        return self._source

    def bind_source(self, source: Location, lines: dict[str, int]) -> None:
        """Attach the document's location and its field-path → line map (set by the loader)."""
        self._source = source
        self._lines = lines

    def locate(self, field_path: str) -> Location:
        """Location of ``field_path`` (``spec.resources[1].template``), falling back to the
        nearest parent path that has a line, then to the document start."""
        return self._source.at(field_path, nearest_line(self._lines, field_path, self._source.line))

    def to_document(self) -> dict[str, Any]:
        """The definition as a YAML/JSON-ready dict, camelCase, defaults omitted."""
        doc = self.model_dump(by_alias=True, exclude_defaults=True, mode="json")
        return {"apiVersion": API_VERSION, "kind": self.KIND, **doc}
