"""The ResourceTemplate definition: a platform-owned golden path for one kind of resource.

A template turns ``{name, access, params}`` from a workload into Config Connector objects.
Values come from CEL expressions written as ``${...}`` inside strings (as kro does): a string
that is exactly one ``${expr}`` takes the expression's type, otherwise each ``${expr}`` is
interpolated as text. Nothing is text-templated at the file level.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from konfig.model.common import Definition, DnsLabel, KonfigModel, TemplateMetadata

RoleName = Annotated[str, StringConstraints(pattern=r"^roles/[A-Za-z0-9_.]+$")]
EnvKey = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]*$")]


class AccessMode(KonfigModel):
    """Roles granted to the workload's service account for one access mode.

    ``bindTo`` names the template resource (by ``id``) that carries the IAM binding, or
    ``project`` when GCP has no resource-level IAM for the role (e.g. Cloud SQL client).
    """

    roles: list[RoleName] = Field(min_length=1)
    bind_to: str | None = Field(default=None, description="Resource id, or 'project'.")
    source: str | None = Field(default=None, description="Where the role choice is documented.")


class TemplateResource(KonfigModel):
    """One Config Connector manifest with ``${...}`` expressions, identified by ``id``."""

    id: DnsLabel
    template: dict[str, Any]
    include_when: list[str] = Field(
        default_factory=list, description="CEL conditions; the object is rendered if all are true."
    )

    @field_validator("template")
    @classmethod
    def _manifest(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in value:
                raise ValueError(f"manifest needs {key}")
        return value


class ResourcePatch(KonfigModel):
    id: DnsLabel
    template: dict[str, Any]


class TemplateVariant(KonfigModel):
    """Per-environment overrides: parameter defaults and patches merged into resources by id."""

    params: dict[str, Any] = Field(default_factory=dict)
    resources: list[ResourcePatch] = Field(default_factory=list)


class ResourceTemplateSpec(KonfigModel):
    description: str | None = None
    parameters: dict[str, Any] = Field(
        default_factory=lambda: {"type": "object"},
        description="JSON Schema of params; defaults fill in missing values.",
    )
    access: dict[DnsLabel, list[RoleName] | AccessMode] = Field(min_length=1)
    bind_to: str | None = Field(
        default=None, description="Default IAM target for all access modes (resource id or 'project')."
    )
    env: dict[EnvKey, str] = Field(default_factory=dict)
    resources: list[TemplateResource] = Field(min_length=1)
    environments: dict[str, TemplateVariant] = Field(
        default_factory=dict,
        description="Keys are environment names, or 'production' / 'nonproduction' for any "
        "environment so flagged. Named environments apply after the production variants.",
    )
    services: list[str] = Field(
        default_factory=list, description="APIs the rendered objects need (must be enabled)."
    )

    @model_validator(mode="after")
    def _targets(self) -> "ResourceTemplateSpec":
        ids = [r.id for r in self.resources]
        if len(set(ids)) != len(ids):
            raise ValueError("resource ids must be unique")
        for mode in self.access.values():
            target = mode.bind_to if isinstance(mode, AccessMode) else None
            target = target or self.bind_to
            if target and target != "project" and target not in ids:
                raise ValueError(f"bindTo {target!r} is not a resource id of this template")
        return self

    def access_mode(self, name: str) -> AccessMode:
        """The access mode ``name`` in its full form (roles and IAM target)."""
        mode = self.access[name]
        if isinstance(mode, list):
            mode = AccessMode(roles=mode)
        target = mode.bind_to or self.bind_to or self.resources[0].id
        return mode.model_copy(update={"bind_to": target})


class ResourceTemplate(Definition):
    """A resource template (spec/definitions.md, "ResourceTemplate")."""

    KIND = "ResourceTemplate"
    kind: Literal["ResourceTemplate"] = "ResourceTemplate"
    metadata: TemplateMetadata  # type: ignore[valid-type]
    spec: ResourceTemplateSpec
