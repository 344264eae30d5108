"""Observe the live GitLab tree: a shape pass over list pages, and a deep pass per object.

GitLab's REST API has no bulk read of SAML links, variables or protections, so observation
has two depths:

* the **shape pass** reads the control-plane group and the list pages of its descendant groups
  and of its projects (``include_subgroups``): ``1 + ceil(groups/100) + ceil(projects/100)``
  requests, whatever the number of objects. It finds missing, moved, renamed, archived and
  pending-deletion objects and attribute drift.
* the **deep pass** reads, for each selected managed object, its SAML links and variables
  (groups: 2 requests) or its protected branches and tags (projects: 2 requests, plus 1 for
  protected environments where production environments are wanted, plus 1 for the template
  project's branch head).

Objects that do not exist yet are never deep-read: what Konfig creates it writes whole.
"""

from __future__ import annotations

import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from konfig.compile.state import GitLabTree
from konfig.gitlab import features
from konfig.gitlab.api import ApiError, GitLabApi
from konfig.gitlab.features import FeatureGate, FeatureUnavailable
from konfig.gitlab.model import (
    BranchProtection,
    GroupDetails,
    Observed,
    ObservedGroup,
    ObservedProject,
    ProjectDetails,
    digest_from_message,
    environment_levels,
    tag_levels,
    variable_from_api,
)

DeepSelector = Callable[[str], bool]


class AdoptionError(ApiError):
    """The adopted parent group is missing or invisible to the token. Konfig never creates it
    (GitLab.com refuses API-created top-level groups:
    https://docs.gitlab.com/api/groups/#create-a-group)."""


def control_plane_path(tree: GitLabTree) -> str | None:
    """Full path of the control-plane group (the tree's scope), if the tree has one."""
    group = next((g for g in tree.groups if g.kind == "ControlPlane"), None)
    return group.full_path if group else None


def deep_all(_path: str) -> bool:
    return True


def deep_none(_path: str) -> bool:
    return False


def deep_slice(period: int, round_: int) -> DeepSelector:
    """Select a deterministic ``1/period`` slice of objects for resync number ``round_``: every
    object is deep-read once every ``period`` resyncs (crc32 of its path, so the slice is
    stable across processes)."""
    period = max(1, period)

    def selector(path: str) -> bool:
        return zlib.crc32(path.lower().encode()) % period == round_ % period

    return selector


def observe(api: GitLabApi, tree: GitLabTree, *, deep: DeepSelector,
            gates: dict[str, FeatureGate], max_workers: int = 8) -> Observed:
    """Read the live state of ``tree``'s scope (the control-plane group and below).

    Raises :class:`AdoptionError` when neither the control-plane group nor the adopted parent
    group can be read, and :class:`~konfig.gitlab.api.ApiError` when a shape read fails
    (nothing is planned from a partial view of the tree). Deep-read failures of one object are
    recorded in ``notes`` and that object is treated as not deep-read.
    """
    cp_path = control_plane_path(tree)
    scope = api.get_group(cp_path) if cp_path else None
    if scope is None:
        root = api.get_group(tree.root_full_path)
        if root is None:
            raise AdoptionError(
                f"parent group {tree.root_full_path!r} not found or not visible to the token: "
                "Konfig adopts it and never creates it", 404)
        return Observed(root_id=root["id"], root_full_path=tree.root_full_path)

    observed = Observed(root_id=scope["parent_id"], root_full_path=tree.root_full_path)
    cp = ObservedGroup.from_api(scope)
    observed.groups[cp.full_path.lower()] = cp
    for data in api.list_descendant_groups(cp.id):
        group = ObservedGroup.from_api(data)
        observed.groups[group.full_path.lower()] = group
    for data in api.list_group_projects(cp.id):
        project = ObservedProject.from_api(data)
        observed.projects[project.path_with_namespace.lower()] = project

    _deep_pass(api, tree, observed, deep, gates, max_workers)
    return observed


def _deep_pass(api: GitLabApi, tree: GitLabTree, observed: Observed, deep: DeepSelector,
               gates: dict[str, FeatureGate], max_workers: int) -> None:
    jobs: list[Callable[[], None]] = []
    for group in tree.groups:
        obs = observed.groups.get(group.full_path.lower())
        if obs and obs.marked and not obs.marked_for_deletion and deep(group.full_path):
            jobs.append(lambda g=obs: _read_group(api, observed, g, gates))
    for project in tree.projects:
        obs = observed.projects.get(project.path_with_namespace.lower())
        if obs and obs.marked and not obs.importing and not obs.marked_for_deletion \
                and deep(project.path_with_namespace):
            jobs.append(lambda p=obs, d=project: _read_project(api, observed, p, d, gates))
    if not jobs:
        return
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="konfig-observe") as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()


def _read_group(api: GitLabApi, observed: Observed, group: ObservedGroup,
                gates: dict[str, FeatureGate]) -> None:
    try:
        try:
            links = gates[features.SAML].call(lambda: api.list_saml_links(group.id))
            saml: dict[str, int] | None = {link["name"]: link["access_level"] for link in links}
        except FeatureUnavailable as err:
            observed.unavailable[err.feature] = err.reason
            saml = None
        variables = {(v.key, v.environment_scope): v
                     for v in map(variable_from_api, api.list_group_variables(group.id))}
    except ApiError as err:
        observed.notes.append(f"could not read group {group.full_path}: {err}")
        return
    observed.group_details[group.full_path.lower()] = GroupDetails(saml, variables)


def _read_project(api: GitLabApi, observed: Observed, project: ObservedProject, desired,
                  gates: dict[str, FeatureGate]) -> None:
    try:
        branches = {b["name"]: BranchProtection.from_api(b)
                    for b in api.list_protected_branches(project.id)}
        tags = {t["name"]: tag_levels(t) for t in api.list_protected_tags(project.id)}
        environments = None
        if desired.protected_environments:
            try:
                environments = {e["name"]: environment_levels(e) for e in
                                gates[features.PROTECTED_ENVIRONMENTS].call(
                                    lambda: api.list_protected_environments(project.id))}
            except FeatureUnavailable as err:
                observed.unavailable[err.feature] = err.reason
        digest = None
        if desired.kind == "workload-template" and not project.empty_repo:
            head = api.get_branch(project.id, desired.default_branch)
            digest = digest_from_message((head or {}).get("commit", {}).get("message")) or ""
    except ApiError as err:
        observed.notes.append(f"could not read project {project.path_with_namespace}: {err}")
        return
    observed.project_details[project.path_with_namespace.lower()] = ProjectDetails(
        branches, tags, environments, digest)
