"""The one pipeline every entry point runs: load → cross-references → template checks and
policy → compile (render every workload's resources, policy on every rendered object) → CRD
schema check of every Config Connector object.

``konfig validate``, ``konfig plan``, ``konfig apply`` and the operator all call
:func:`desired_state` (the CLI through :func:`load_and_compile`), so a green ``validate`` means
``plan`` and ``apply`` succeed on the same definitions. Every problem points at the YAML that
caused it (the workload, domain or template file, line and field), never at a compiled object.
Pure core: no I/O beyond the loader reading the given tree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from konfig.compile import compile_definitions
from konfig.compile.state import LABEL_DOMAIN, LABEL_PLATFORM, LABEL_WORKLOAD, DesiredState, object_key
from konfig.definitions import Definitions
from konfig.errors import DefinitionError, Location, Problem

if TYPE_CHECKING:
    from konfig.compile.context import CompileFacts


def load_and_compile(path: str | Path, *, check_schemas: bool = True) -> tuple[Definitions, DesiredState]:
    """Load the definitions under ``path`` and run :func:`desired_state` on them. Raises
    :class:`DefinitionError` with every problem, ``FileNotFoundError`` for a missing path."""
    from konfig.load import load_definitions

    defs = load_definitions(path)
    return defs, desired_state(defs, check_schemas=check_schemas)


def desired_state(
    defs: Definitions, facts: "CompileFacts | None" = None, *, check_schemas: bool = True
) -> DesiredState:
    """Compile ``defs`` (with ``facts``, what a shell observed of the live system, see
    :func:`~konfig.compile.compile_definitions`) and check every rendered Config Connector
    object against its CRD (``konfig/data/kcc/crds``; unknown fields are errors, since
    Kubernetes would drop them).

    Raises :class:`DefinitionError` with every problem, each located at the definition that
    produced the object (a template's field for rendered objects)."""
    state = compile_definitions(defs, facts)
    if check_schemas:
        problems = schema_problems(defs, state)
        if problems:
            raise DefinitionError(problems)
    return state


def schema_problems(defs: Definitions, state: DesiredState) -> list[Problem]:
    """CRD violations of ``state``'s Config Connector objects, located in the YAML."""
    from konfig.kcc_schema import validate_object

    problems = []
    by_key = {object_key(obj): obj for obj in state.kubernetes}
    for key, obj in by_key.items():
        if not key[0].endswith(".cnrm.cloud.google.com"):
            continue
        for message in validate_object(obj):
            path, _, detail = message.partition(": ")
            problems.append(_located(defs, state.origins, obj, path, detail or message))
    return problems


def _located(defs: Definitions, origins: Mapping, obj: dict[str, Any], path: str, detail: str) -> Problem:
    key = object_key(obj)
    what = f"{key[1]} {key[3]}"
    origin = origins.get(key)
    if origin is not None:
        definition, prefix, who = origin
        if prefix.startswith("spec.resources["):  # a template's manifest: the field in it
            field = f"{prefix}.{path}" if path and not path.startswith("<") else prefix
            return Problem(definition.locate(field), f"{detail} (rendered {what}, {who})")
        return Problem(definition.locate(prefix), f"{path}: {detail} (rendered {what}, {who})")
    return Problem(locate_object(defs, origins, obj), f"{path}: {detail} (rendered {what})")


def locate_object(defs: Definitions, origins: Mapping, obj: dict[str, Any]) -> Location:
    """The YAML an object comes from: its recorded origin, else the definition its
    ``konfig-*`` labels name (workload, domain, platform), else the control plane."""
    origin = origins.get(object_key(obj))
    if origin is not None:
        definition, prefix, _ = origin
        return definition.locate(prefix)
    labels = (obj.get("metadata") or {}).get("labels") or {}
    domain, workload = labels.get(LABEL_DOMAIN), labels.get(LABEL_WORKLOAD)
    if domain and workload and (domain, workload) in defs.workloads:
        return defs.workloads[(domain, workload)].locate("metadata.name")
    if domain in defs.domains:
        return defs.domains[domain].locate("metadata.name")
    platform = labels.get(LABEL_PLATFORM)
    if platform in defs.platforms:
        return defs.platforms[platform].locate("metadata.name")
    return defs.control_plane.locate("metadata.name")


__all__ = ["desired_state", "load_and_compile", "locate_object", "schema_problems"]
