"""Name conversions between Kubernetes (KRM) and Terraform spellings.

KRM fields are lowerCamelCase and Terraform's snake_case; the rules follow upstream
``pkg/text`` of Config Connector (``AsSnakeCase`` / ``SnakeCaseToLowerCamelCase``), so that
``clusterIpv4Cidr`` <-> ``cluster_ipv4_cidr`` and ``locationID`` -> ``location_id``.
"""

from __future__ import annotations

import re

_CAPITALISED_WORD = re.compile(r"(.)([A-Z][a-z]+)")
_WORD_START = re.compile(r"([a-z0-9])([A-Z])")
_NOT_IDENT = re.compile(r"[^A-Za-z0-9_]")


def camel_to_snake(name: str) -> str:
    """``diskSizeGb`` -> ``disk_size_gb``, ``locationID`` -> ``location_id``: upstream
    ``text.AsSnakeCase`` exactly (its two regular expressions, then lower case)."""
    name = _CAPITALISED_WORD.sub(r"\1_\2", name)
    return _WORD_START.sub(r"\1_\2", name).lower()


def snake_to_camel(name: str) -> str:
    """``node_config.service_account`` -> ``nodeConfig.serviceAccount`` (each dotted segment)."""
    return ".".join(_segment_to_camel(part) for part in name.split("."))


def _segment_to_camel(segment: str) -> str:
    head, *rest = segment.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def kebab(name: str) -> str:
    """``force_destroy`` -> ``force-destroy`` (directive annotation suffixes)."""
    return name.replace("_", "-")


def terraform_name(*parts: str) -> str:
    """A Terraform resource name from KRM names: every character outside ``[A-Za-z0-9_]``
    becomes ``_`` (upstream ``KRMNameToTerraformID`` turns ``cc-cli`` into ``cc_cli``), parts
    are joined with ``__`` (unambiguous, since KRM names hold no ``_``), and a leading digit
    gets a ``_`` prefix because Terraform identifiers must start with a letter or ``_``."""
    name = "__".join(_NOT_IDENT.sub("_", part) for part in parts if part)
    return f"_{name}" if name[:1].isdigit() else name
