"""The compiler: validated definitions → :class:`DesiredState`. Pure: no I/O, deterministic.

One module per concern: :mod:`.hierarchy` (folders, projects, APIs), :mod:`.access` (roles and
identities), :mod:`.namespaces` (cluster namespaces, contexts, RBAC), :mod:`.workloads`
(service accounts, template resources, runtimes), :mod:`.kms` (CMEK keys in production),
:mod:`.budgets` (billing budgets and their alerts), :mod:`.breakglass` (PAM entitlements),
:mod:`.gitlab` (the GitLab tree).
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import TYPE_CHECKING

from konfig.compile.state import DesiredState, KubeObject, object_key
from konfig.definitions import Definitions
from konfig.errors import DefinitionError

if TYPE_CHECKING:
    from konfig.compile.context import CompileFacts

#: Apply order: namespaces and their contexts first, then RBAC, then Config Connector objects
#: from the top of the hierarchy down, bindings last (they reference the rest).
_KIND_ORDER = {
    "Namespace": 0,
    "ConfigConnectorContext": 1,
    "ServiceAccount": 2,
    "Role": 2,
    "RoleBinding": 3,
    "Folder": 4,
    "Project": 5,
    "Service": 6,
    "IAMServiceAccount": 7,
    "IAMPolicyMember": 9,
}


def apply_order(obj: KubeObject) -> tuple:
    """Sort key giving a safe apply order and a stable total order."""
    group, kind, namespace, name = object_key(obj)
    return (_KIND_ORDER.get(kind, 8), namespace, group, kind, name)


def compile_definitions(defs: Definitions, facts: "CompileFacts | None" = None) -> DesiredState:
    """Compile ``defs`` into the desired state of GCP (Config Connector objects), the
    control-plane cluster and GitLab. Deterministic: equal inputs (definitions and ``facts``,
    what a shell observed of the live system) give equal outputs.

    Raises :class:`~konfig.errors.DefinitionError` with every problem found while rendering
    (template expressions, parameters, duplicate object names).
    """
    from konfig.compile.access import compile_access
    from konfig.compile.breakglass import compile_break_glass
    from konfig.compile.budgets import compile_budgets
    from konfig.compile.context import CompileContext, CompileFacts
    from konfig.compile.gitlab import compile_gitlab
    from konfig.compile.hierarchy import compile_hierarchy
    from konfig.compile.ingress import compile_ingress, network_views
    from konfig.compile.kms import compile_kms
    from konfig.compile.namespaces import compile_namespaces
    from konfig.compile.network import compile_network
    from konfig.compile.runtimes import compile_dataflow_agents
    from konfig.compile.uptime import compile_uptime
    from konfig.compile.rawkcc import compile_raw_kcc
    from konfig.compile.workloads import compile_workloads

    ctx = CompileContext(defs, facts=facts or CompileFacts())
    problems: list = []
    objects: list[KubeObject] = []
    with _gc_paused():
        for step in (compile_namespaces, compile_hierarchy, compile_access, compile_network,
                     compile_ingress, compile_kms, compile_budgets, compile_break_glass,
                     compile_uptime, compile_dataflow_agents, compile_workloads, compile_raw_kcc):
            try:
                objects += step(ctx)
            except DefinitionError as err:  # report every step's problems in one run
                problems += err.problems
    if problems:
        raise DefinitionError(problems)
    _check_unique(objects, ctx)
    objects.sort(key=apply_order)
    if not ctx.project_number:
        ctx.notes.append(
            "spec.gcp.projectNumber is not set: CI Workload Identity bindings and the "
            "KONFIG_WIF_PROVIDER variable are left out until it is (run `konfig bootstrap`)."
        )
    return DesiredState(
        control_plane=ctx.cp_name,
        kubernetes=tuple(objects),
        gitlab=compile_gitlab(ctx),
        notes=tuple(sorted(set(ctx.notes))),
        networks=network_views(ctx),
        origins=ctx.origins,
    )


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector while building hundreds of thousands of small,
    acyclic dicts: its generation scans would otherwise cost ~20% of a large compile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _check_unique(objects: list[KubeObject], ctx) -> None:
    from konfig.errors import DefinitionError, Problem
    from konfig.pipeline import locate_object

    first: dict[tuple, KubeObject] = {}
    problems = []
    for obj in objects:
        key = object_key(obj)
        if key in first:
            group, kind, namespace, name = key
            for which in (first[key], obj):
                problems.append(Problem(
                    locate_object(ctx.defs, {}, which),  # by labels: both share one key
                    f"two definitions render the same {kind} {namespace + '/' if namespace else ''}"
                    f"{name} (names derived from domain, environment and workload collide); "
                    "rename one of them"))
        else:
            first[key] = obj
    if problems:
        raise DefinitionError(problems)


__all__ = ["DesiredState", "apply_order", "compile_definitions"]
