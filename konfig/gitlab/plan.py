"""Diff the desired GitLab tree against the observed one: a :class:`Plan` of changes.

Pure: no I/O. The rules, in short:

* Konfig never deletes a group or project. A managed project that is no longer desired is
  **archived**; a managed group that is no longer desired is kept (reported in the notes).
* An object is managed when it carries Konfig's marker (the ``konfig-managed`` topic or the
  ``[managed by Konfig]`` description tag). A desired path held by an unmarked object is a
  **conflict**: nothing in it or below it is changed.
* A managed group missing at its desired path but present, unique, at the same depth under
  another parent was **moved** (a domain that changed platform, or a move by hand): it is
  transferred back, with everything below it, instead of being created anew.
* A managed object pending deletion is **restored**; a desired project that is archived is
  **unarchived**; name, description, visibility and missing topics are **updated**.
* Sub-objects are compared only where the deep pass read them: SAML links (no update in the
  API: delete and recreate), ``KONFIG_*`` group variables (others are a team's own), and the
  protections Konfig wants (other protections are left alone).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator

from konfig.compile.state import GitLabGroup, GitLabProject, GitLabTree, GroupVariable
from konfig.gitlab import features
from konfig.gitlab.model import (
    BRANCH_MERGE_LEVEL,
    BRANCH_PUSH_LEVEL,
    DESIRED_BRANCH,
    ENVIRONMENT_DEPLOY_LEVEL,
    OWNED_VARIABLE_PREFIX,
    TAG_CREATE_LEVEL,
    Observed,
    ObservedGroup,
    ObservedProject,
    TemplateFiles,
    depth_below,
    desired_topics,
    marked_description,
)

#: Changes that create or reshape a group/project itself (they run before its sub-objects).
HEAD_ACTIONS = ("create", "restore", "move", "unarchive", "update", "archive")
HEAD_KINDS = ("group", "project")


@dataclass(frozen=True, eq=False)
class Change:
    """One write (or a refusal to write, ``action="conflict"``).

    ``kind`` is ``group``, ``project``, ``saml_link``, ``variable``, ``protected_branch``,
    ``protected_tag``, ``protected_environment`` or ``repository``; ``path`` the full path of
    the group or project it belongs to; ``name`` the sub-object (link name, ``KEY@scope``,
    branch, tag, environment). ``data`` carries what the apply step needs.
    """

    action: str
    kind: str
    path: str
    name: str = ""
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def is_head(self) -> bool:
        return self.kind in HEAD_KINDS and self.action in HEAD_ACTIONS

    @property
    def target(self) -> str:
        return f"{self.path} {self.name}".strip()

    def describe(self) -> str:
        label = self.kind.replace("_", " ")
        text = f"{self.action} {label} {self.target}"
        return f"{text}: {self.detail}" if self.detail else text


@dataclass
class Plan:
    """The changes one reconcile pass would make, in dependency-friendly order, and notes
    (kept groups, unavailable features, conflicts' consequences)."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def counts(self) -> Counter[str]:
        """Number of changes per action."""
        return Counter(c.action for c in self.changes)

    def render(self) -> list[str]:
        return [c.describe() for c in self.changes]


#: Name of the repository change that seeds the definitions repository (``konfig-control-plane``).
STARTER_FILES = "starter tree"


def diff(tree: GitLabTree, observed: Observed, template: TemplateFiles,
         starter: TemplateFiles | None = None) -> Plan:
    """The :class:`Plan` that makes ``observed`` match ``tree``. ``template`` is the workload
    template's files; ``starter`` the definitions repository's starter tree
    (``gitlab-templates/control-plane``), pushed only into an empty ``konfig-control-plane``
    repository: once it holds commits, its files are the platform team's and never rewritten."""
    return _Differ(tree, observed, template, starter).run()


class _Differ:
    def __init__(self, tree: GitLabTree, observed: Observed, template: TemplateFiles,
                 starter: TemplateFiles | None = None) -> None:
        self.tree = tree
        self.observed = observed
        self.template = template
        self.starter = starter or TemplateFiles.of({})
        self.groups = dict(observed.groups)
        self.projects = dict(observed.projects)
        self.plan = Plan()
        self.blocked: list[str] = []
        self.unavailable = dict(observed.unavailable)
        self.skipped_links = 0
        self.skipped_envs = 0

    # -- helpers ------------------------------------------------------------------------------

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.plan.changes.append(Change(*args, **kwargs))

    def is_blocked(self, path: str) -> bool:
        low = path.lower()
        return any(low == b or low.startswith(b + "/") for b in self.blocked)

    def relocate(self, old: str, new: str) -> None:
        """Re-key observed objects below a group moved from ``old`` to ``new`` (lower case)."""
        def moved(path: str) -> str | None:
            if path == old or path.startswith(old + "/"):
                return new + path[len(old):]
            return None

        for path in list(self.groups):
            target = moved(path)
            if target is not None:
                group = self.groups.pop(path)
                self.groups[target] = dataclasses.replace(group, full_path=target)
        for path in list(self.projects):
            target = moved(path)
            if target is not None:
                project = self.projects.pop(path)
                self.projects[target] = dataclasses.replace(project, path_with_namespace=target)

    def find_moved(self, group: GitLabGroup, desired_paths: set[str]) -> ObservedGroup | None:
        depth = depth_below(group.full_path, self.tree.root_full_path)
        candidates = [
            g for path, g in self.groups.items()
            if g.marked and path not in desired_paths and g.path.lower() == group.path.lower()
            and depth_below(path, self.tree.root_full_path) == depth
            and not self.is_blocked(path)
        ]
        if len(candidates) != 1:
            return None
        rivals = [d for d in self.tree.groups if d.path.lower() == group.path.lower()
                  and d.full_path.lower() not in self.groups
                  and depth_below(d.full_path, self.tree.root_full_path) == depth]
        return candidates[0] if len(rivals) == 1 else None

    # -- the pass -----------------------------------------------------------------------------

    def run(self) -> Plan:
        desired_groups = {g.full_path.lower() for g in self.tree.groups}
        for group in self.tree.groups:
            self.diff_group(group, desired_groups)
        for project in self.tree.projects:
            self.diff_project(project)
        self.archive_leftovers()
        self.keep_leftover_groups(desired_groups)
        self.explain()
        return self.plan

    def diff_group(self, group: GitLabGroup, desired_paths: set[str]) -> None:
        path = group.full_path.lower()
        if self.is_blocked(path):
            return
        obs = self.groups.get(path)
        if obs is None:
            moved = self.find_moved(group, desired_paths)
            if moved is not None:
                self.add("move", "group", group.full_path,
                         detail=f"from {moved.full_path} (transfer, with everything below it)",
                         data={"from": moved.full_path, "parent": group.parent_full_path,
                               "id": moved.id})
                self.relocate(moved.full_path.lower(), path)
                obs = self.groups[path]
        if obs is None:
            self.create_group(group)
            return
        if not obs.marked:
            self.conflict("group", group.full_path, obs.description)
            return
        if obs.marked_for_deletion:
            self.add("restore", "group", group.full_path, detail="was pending deletion")
        changes = {}
        for attr, want in (("name", group.name), ("description", marked_description(group.description)),
                           ("visibility", group.visibility)):
            have = getattr(obs, attr)
            if (have or "").strip() != want:
                changes[attr] = want
        if changes:
            self.add("update", "group", group.full_path, detail=_fields(obs, changes),
                     data=changes)
        details = self.observed.group_details.get(path)
        if details is not None:
            self.diff_links(group, details.saml_links)
            self.diff_variables(group, details.variables)

    def create_group(self, group: GitLabGroup) -> None:
        self.add("create", "group", group.full_path, detail=f"under {group.parent_full_path}",
                 data={"name": group.name, "path": group.path,
                       "description": marked_description(group.description),
                       "visibility": group.visibility, "parent": group.parent_full_path})
        self.diff_links(group, {})
        self.diff_variables(group, {})

    def diff_links(self, group: GitLabGroup, links: dict[str, int] | None) -> None:
        wanted = {link.saml_group_name: link.access_level for link in group.saml_group_links}
        if links is None or features.SAML in self.unavailable:
            self.skipped_links += len(wanted)
            return
        for name, level in sorted(wanted.items()):
            have = links.get(name)
            if have is None:
                self.add("create", "saml_link", group.full_path, name,
                         detail=f"access level {level}", data={"access_level": level})
            elif have != level:
                self.add("update", "saml_link", group.full_path, name,
                         detail=f"access level {have} -> {level} (delete and recreate)",
                         data={"access_level": level, "from": have})
        for name in sorted(set(links) - set(wanted)):
            self.add("delete", "saml_link", group.full_path, name,
                     detail=f"not in the definitions (access level {links[name]})")

    def diff_variables(self, group: GitLabGroup,
                       have: dict[tuple[str, str], GroupVariable]) -> None:
        wanted = {(v.key, v.environment_scope): v for v in group.variables}
        for key in sorted(wanted):
            want, current = wanted[key], have.get(key)
            name = f"{key[0]}@{key[1]}"
            if current is None:
                self.add("create", "variable", group.full_path, name,
                         detail=_variable_text(want), data={"variable": want})
            elif _variable_differs(current, want):
                self.add("update", "variable", group.full_path, name,
                         detail=_variable_delta(current, want), data={"variable": want})
        for key in sorted(set(have) - set(wanted)):
            if key[0].startswith(OWNED_VARIABLE_PREFIX):
                self.add("delete", "variable", group.full_path, f"{key[0]}@{key[1]}",
                         detail="not in the definitions",
                         data={"key": key[0], "scope": key[1]})

    def conflict(self, kind: str, path: str, description: str) -> None:
        self.blocked.append(path.lower())
        self.add("conflict", kind, path,
                 detail="exists without Konfig's marker; it and everything below it are left "
                        "untouched (add the marker to adopt it)",
                 data={"description": description})

    def diff_project(self, project: GitLabProject) -> None:
        path = project.path_with_namespace.lower()
        if self.is_blocked(project.namespace_full_path) or self.is_blocked(path):
            return
        obs = self.projects.get(path)
        if obs is None:
            self.create_project(project)
            return
        if not obs.marked:
            self.conflict("project", project.path_with_namespace, obs.description)
            return
        if obs.marked_for_deletion:
            self.add("restore", "project", project.path_with_namespace, detail="was pending deletion")
        if obs.archived:
            self.add("unarchive", "project", project.path_with_namespace,
                     detail="archived, but in the definitions")
        changes: dict[str, Any] = {}
        for attr, want in (("name", project.name),
                           ("description", marked_description(project.description)),
                           ("visibility", project.visibility)):
            if (getattr(obs, attr) or "").strip() != want:
                changes[attr] = want
        missing = [t for t in desired_topics(project) if t not in obs.topics]
        if missing:
            changes["topics"] = [*obs.topics, *missing]
        if changes:
            self.add("update", "project", project.path_with_namespace,
                     detail=_fields(obs, changes), data=changes)
        self.diff_repository(project, obs)
        details = self.observed.project_details.get(path)
        if details is not None:
            self.diff_protections(project, details.branches, details.tags, details.environments)

    def create_project(self, project: GitLabProject) -> None:
        data = {"kind": project.kind, "name": project.name, "path": project.path,
                "description": marked_description(project.description),
                "visibility": project.visibility, "topics": list(desired_topics(project)),
                "namespace": project.namespace_full_path,
                "default_branch": project.default_branch}
        detail = f"in {project.namespace_full_path}"
        if project.kind == "workload":
            template = self.template_project()
            data["template"] = template.path_with_namespace if template else None
            if template:
                detail += f", from {template.path_with_namespace}"
        self.add("create", "project", project.path_with_namespace, detail=detail, data=data)
        self.diff_protections(project, {}, {}, {})
        if project.kind == "workload-template" and self.template.files:
            self.add("create", "repository", project.path_with_namespace, "template files",
                     detail=f"{len(self.template.files)} files, digest {self.template.digest}",
                     data={"digest": self.template.digest})
        if project.kind == "control-plane":
            self.seed_definitions(project)

    def seed_definitions(self, project: GitLabProject) -> None:
        """Push the starter tree (README, pipeline) into the empty definitions repository."""
        if self.starter.files:
            self.add("create", "repository", project.path_with_namespace, STARTER_FILES,
                     detail=f"{len(self.starter.files)} files, digest {self.starter.digest}",
                     data={"digest": self.starter.digest})

    def template_project(self) -> GitLabProject | None:
        return next((p for p in self.tree.projects if p.kind == "workload-template"), None)

    def diff_repository(self, project: GitLabProject, obs: ObservedProject) -> None:
        if project.kind == "control-plane":
            if obs.empty_repo and not obs.importing:
                self.seed_definitions(project)
            return
        if not self.template.files:
            return  # nothing to push (no bundled template files)
        if obs.importing:
            self.plan.notes.append(f"{project.path_with_namespace}: import still "
                                   f"{obs.import_status}; its protections wait for the next pass")
            return
        if project.kind == "workload-template":
            details = self.observed.project_details.get(project.path_with_namespace.lower())
            if obs.empty_repo:
                self.add("create", "repository", project.path_with_namespace, "template files",
                         detail=f"{len(self.template.files)} files, digest {self.template.digest}",
                         data={"digest": self.template.digest})
            elif details is not None and details.template_digest != self.template.digest:
                self.add("update", "repository", project.path_with_namespace, "template files",
                         detail=f"digest {details.template_digest or 'unknown'} -> "
                                f"{self.template.digest}",
                         data={"digest": self.template.digest, "from": details.template_digest})
        elif project.kind == "workload" and obs.empty_repo:
            self.add("create", "repository", project.path_with_namespace, "initial commit",
                     detail="empty repository (import failed or never ran): push the template "
                            f"files ({len(self.template.files)})",
                     data={"digest": self.template.digest})

    def diff_protections(self, project: GitLabProject, branches: dict, tags: dict,
                         environments: dict | None) -> None:
        path = project.path_with_namespace
        for name in project.protected_branches:
            have = branches.get(name)
            data = {"push": BRANCH_PUSH_LEVEL, "merge": BRANCH_MERGE_LEVEL,
                    "allow_force_push": False}
            if have is None:
                self.add("create", "protected_branch", path, name,
                         detail="push: maintainers, merge: developers", data=data)
            elif have != DESIRED_BRANCH:
                self.add("update", "protected_branch", path, name,
                         detail=f"push {have.push}, merge {have.merge}, force push "
                                f"{have.allow_force_push} -> push (40,), merge (30,), no force "
                                "push (unprotect and protect)", data=data)
        for name in project.protected_tags:
            have = tags.get(name)
            if have is None:
                self.add("create", "protected_tag", path, name, detail="create: maintainers",
                         data={"create": TAG_CREATE_LEVEL})
            elif have != (TAG_CREATE_LEVEL,):
                self.add("update", "protected_tag", path, name,
                         detail=f"create {have} -> (40,) (unprotect and protect)",
                         data={"create": TAG_CREATE_LEVEL})
        if not project.protected_environments:
            return
        if environments is None or features.PROTECTED_ENVIRONMENTS in self.unavailable:
            self.skipped_envs += len(project.protected_environments)
            return
        for name in project.protected_environments:
            have = environments.get(name)
            if have is None:
                self.add("create", "protected_environment", path, name,
                         detail="deploy: maintainers", data={"deploy": ENVIRONMENT_DEPLOY_LEVEL})
            elif have != (ENVIRONMENT_DEPLOY_LEVEL,):
                self.add("update", "protected_environment", path, name,
                         detail=f"deploy {have} -> (40,) (unprotect and protect)",
                         data={"deploy": ENVIRONMENT_DEPLOY_LEVEL})

    def archive_leftovers(self) -> None:
        desired = {p.path_with_namespace.lower() for p in self.tree.projects}
        for path, obs in sorted(self.projects.items()):
            if path in desired or not obs.marked or self.is_blocked(path):
                continue
            if obs.archived or obs.marked_for_deletion:
                continue
            self.add("archive", "project", obs.path_with_namespace,
                     detail="no longer in the definitions (Konfig archives, never deletes)")

    def keep_leftover_groups(self, desired_paths: set[str]) -> None:
        for path, obs in sorted(self.groups.items()):
            if path not in desired_paths and obs.marked and not self.is_blocked(path):
                self.plan.notes.append(
                    f"group {obs.full_path} is no longer in the definitions; kept "
                    "(Konfig never deletes groups; its projects are archived)")

    def explain(self) -> None:
        for feature, reason in sorted(self.unavailable.items()):
            self.plan.notes.append(f"{features.REQUIREMENTS.get(feature, feature)} ({reason})")
        if self.skipped_links and features.SAML in self.unavailable:
            self.plan.notes.append(f"{self.skipped_links} SAML group links not managed")
        if self.skipped_envs and features.PROTECTED_ENVIRONMENTS in self.unavailable:
            self.plan.notes.append(f"{self.skipped_envs} protected environments not managed")
        for note in self.observed.notes:
            self.plan.notes.append(note)


def _fields(obs: Any, changes: dict[str, Any]) -> str:
    return ", ".join(f"{k}: {getattr(obs, k, None)!r} -> {v!r}" for k, v in changes.items())


def _variable_differs(have: GroupVariable, want: GroupVariable) -> bool:
    return (have.value, have.masked, have.protected, have.description or "") != \
        (want.value, want.masked, want.protected, want.description or "")


def _variable_text(v: GroupVariable) -> str:
    shown = "*****" if v.masked else repr(v.value)
    flags = [f for f, on in (("masked", v.masked), ("protected", v.protected)) if on]
    return f"= {shown}" + (f" ({', '.join(flags)})" if flags else "")


def _variable_delta(have: GroupVariable, want: GroupVariable) -> str:
    parts = []
    if have.value != want.value:
        parts.append("value changed" if want.masked or have.masked
                     else f"value {have.value!r} -> {want.value!r}")
    for attr in ("masked", "protected", "description"):
        if getattr(have, attr) != getattr(want, attr):
            parts.append(f"{attr} {getattr(have, attr)!r} -> {getattr(want, attr)!r}")
    return ", ".join(parts)
