"""The definitions API (konfig.dev/v1alpha1) as strict pydantic v2 models.

These classes are the single source of the schema: validation, ``konfig schema`` (JSON Schema
for editors) and the CRDs' OpenAPI schemas all come from them.
"""

from __future__ import annotations

from konfig.model.common import API_VERSION, Definition, GroupBinding, Role
from konfig.model.controlplane import ControlPlane, Environment, parse_duration
from konfig.model.domain import Domain
from konfig.model.platform import Platform
from konfig.model.template import AccessMode, ResourceTemplate
from konfig.model.workload import Workload

#: kind → model class, in hierarchy order.
KINDS: dict[str, type[Definition]] = {
    "ControlPlane": ControlPlane,
    "Platform": Platform,
    "Domain": Domain,
    "Workload": Workload,
    "ResourceTemplate": ResourceTemplate,
}

__all__ = [
    "API_VERSION",
    "KINDS",
    "AccessMode",
    "ControlPlane",
    "Definition",
    "Domain",
    "Environment",
    "GroupBinding",
    "Platform",
    "ResourceTemplate",
    "Role",
    "Workload",
    "parse_duration",
]
