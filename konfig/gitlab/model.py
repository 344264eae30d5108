"""Data of the GitLab adapter: Konfig's policy for what it writes, the observed tree, and the
workload template's files. Pure: no I/O except :func:`load_template_files` reading a folder.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from konfig.compile.state import (
    GITLAB_MARKER_TEXT,
    GITLAB_MARKER_TOPIC,
    GitLabGroup,
    GitLabProject,
    GroupVariable,
)

# -- Konfig's policy for what it writes ------------------------------------------------------

#: Protected branch ``main``: Maintainers push, Developers (and up) merge, no force push.
#: Access levels: https://docs.gitlab.com/api/protected_branches/#valid-access-levels
BRANCH_PUSH_LEVEL = 40
BRANCH_MERGE_LEVEL = 30
#: Protected tags ``v*`` (releases promote to production): Maintainers create.
TAG_CREATE_LEVEL = 40
#: Protected production environments: Maintainers deploy.
#: https://docs.gitlab.com/api/protected_environments/#valid-access-levels
ENVIRONMENT_DEPLOY_LEVEL = 40
#: Group CI/CD variables with this prefix are Konfig's on a managed group; others (a team's
#: own) are left alone.
OWNED_VARIABLE_PREFIX = "KONFIG_"
#: Trailer of the commit that pushes the workload template; holds the digest of its files.
TEMPLATE_DIGEST_TRAILER = "Konfig-Template-Digest"
TEMPLATE_DIGEST_RE = re.compile(rf"^{TEMPLATE_DIGEST_TRAILER}: ([0-9a-f]{{16,64}})\s*$", re.M)


def marked_description(description: str) -> str:
    """The description Konfig writes: the desired one, ending with the marker text."""
    description = (description or "").strip()
    if GITLAB_MARKER_TEXT in description:
        return description
    return f"{description} {GITLAB_MARKER_TEXT}".strip()


def desired_topics(project: GitLabProject) -> tuple[str, ...]:
    """The project's topics, with the marker topic always among them."""
    topics = tuple(project.topics)
    return topics if GITLAB_MARKER_TOPIC in topics else (*topics, GITLAB_MARKER_TOPIC)


def group_is_marked(description: str | None) -> bool:
    return GITLAB_MARKER_TEXT in (description or "")


def project_is_marked(topics: tuple[str, ...], description: str | None) -> bool:
    return GITLAB_MARKER_TOPIC in topics or GITLAB_MARKER_TEXT in (description or "")


def depth_below(path: str, root: str) -> int:
    """How many segments ``path`` is below ``root`` (``acme/cp/x`` below ``acme`` is 2)."""
    return path.count("/") - root.count("/")


# -- observed state ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ObservedGroup:
    """A group as listed by ``GET /groups/:id/descendant_groups``."""

    id: int
    full_path: str
    name: str
    path: str
    parent_id: int | None
    description: str
    visibility: str
    marked_for_deletion: bool = False

    @property
    def marked(self) -> bool:
        return group_is_marked(self.description)

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "ObservedGroup":
        return cls(
            id=data["id"], full_path=data["full_path"], name=data["name"], path=data["path"],
            parent_id=data.get("parent_id"), description=data.get("description") or "",
            visibility=data.get("visibility", "private"),
            marked_for_deletion=bool(data.get("marked_for_deletion_on")),
        )


@dataclass(frozen=True)
class ObservedProject:
    """A project as listed by ``GET /groups/:id/projects?include_subgroups=true``."""

    id: int
    path_with_namespace: str
    name: str
    path: str
    namespace_id: int
    description: str
    visibility: str
    topics: tuple[str, ...]
    archived: bool
    empty_repo: bool
    import_status: str
    marked_for_deletion: bool = False

    @property
    def marked(self) -> bool:
        return project_is_marked(self.topics, self.description)

    @property
    def importing(self) -> bool:
        return self.import_status in ("scheduled", "started")

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "ObservedProject":
        return cls(
            id=data["id"], path_with_namespace=data["path_with_namespace"], name=data["name"],
            path=data["path"], namespace_id=data["namespace"]["id"],
            description=data.get("description") or "",
            visibility=data.get("visibility", "private"),
            topics=tuple(data.get("topics") or data.get("tag_list") or ()),
            archived=bool(data.get("archived")), empty_repo=bool(data.get("empty_repo")),
            import_status=data.get("import_status") or "none",
            marked_for_deletion=bool(data.get("marked_for_deletion_on")
                                     or data.get("marked_for_deletion_at")),
        )


@dataclass(frozen=True)
class BranchProtection:
    """Role levels of a protected branch (user- and group-specific entries are ignored)."""

    push: tuple[int, ...]
    merge: tuple[int, ...]
    allow_force_push: bool = False

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> "BranchProtection":
        return cls(_role_levels(data.get("push_access_levels")),
                   _role_levels(data.get("merge_access_levels")),
                   bool(data.get("allow_force_push")))


DESIRED_BRANCH = BranchProtection((BRANCH_PUSH_LEVEL,), (BRANCH_MERGE_LEVEL,), False)


def _role_levels(entries: Any) -> tuple[int, ...]:
    return tuple(sorted(e["access_level"] for e in entries or ()
                        if not e.get("user_id") and not e.get("group_id")
                        and not e.get("deploy_key_id")))


def tag_levels(data: Mapping[str, Any]) -> tuple[int, ...]:
    return _role_levels(data.get("create_access_levels"))


def environment_levels(data: Mapping[str, Any]) -> tuple[int, ...]:
    return _role_levels(data.get("deploy_access_levels"))


@dataclass(frozen=True)
class GroupDetails:
    """What the deep pass read on one group. ``saml_links`` is ``None`` when the instance does
    not offer SAML group links."""

    saml_links: Mapping[str, int] | None
    variables: Mapping[tuple[str, str], GroupVariable]


@dataclass(frozen=True)
class ProjectDetails:
    """What the deep pass read on one project. ``environments`` is ``None`` when not read (not
    wanted, or not offered by the tier); ``template_digest`` only for the template project."""

    branches: Mapping[str, BranchProtection]
    tags: Mapping[str, tuple[int, ...]]
    environments: Mapping[str, tuple[int, ...]] | None
    template_digest: str | None = None


@dataclass
class Observed:
    """The live tree under the control-plane group, keyed by lower-case full path.

    ``root_id`` is the adopted parent group's id. ``groups`` include the control-plane group
    itself. ``deep`` lists the paths whose details were read this time.
    """

    root_id: int
    root_full_path: str
    groups: dict[str, ObservedGroup] = field(default_factory=dict)
    projects: dict[str, ObservedProject] = field(default_factory=dict)
    group_details: dict[str, GroupDetails] = field(default_factory=dict)
    project_details: dict[str, ProjectDetails] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def variable_from_api(data: Mapping[str, Any]) -> GroupVariable:
    return GroupVariable(
        key=data["key"], value=data.get("value") or "",
        environment_scope=data.get("environment_scope") or "*",
        masked=bool(data.get("masked")), protected=bool(data.get("protected")),
        description=data.get("description") or "",
    )


def variable_payload(variable: GroupVariable) -> dict[str, Any]:
    """Body of a create/update variable request (``raw``: Konfig's values are literal)."""
    return {
        "key": variable.key, "value": variable.value, "variable_type": "env_var",
        "environment_scope": variable.environment_scope, "masked": variable.masked,
        "protected": variable.protected, "raw": True, "description": variable.description,
    }


# -- the workload template --------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateFiles:
    """The files of ``gitlab-templates/workload`` (relative POSIX path -> bytes) and their
    digest (sha256 over sorted paths and contents, 32 hex digits)."""

    files: Mapping[str, bytes]
    digest: str

    @classmethod
    def of(cls, files: Mapping[str, bytes]) -> "TemplateFiles":
        h = hashlib.sha256()
        for path in sorted(files):
            h.update(path.encode() + b"\0" + hashlib.sha256(files[path]).digest())
        return cls(dict(files), h.hexdigest()[:32])

    def actions(self, existing: set[str] | None = None) -> list[dict[str, Any]]:
        """Commit actions that make a branch hold exactly these files: ``create`` (or
        ``update`` when in ``existing``), and ``delete`` for ``existing`` files not here."""
        existing = existing or set()
        actions = []
        for path in sorted(self.files):
            action = {"action": "update" if path in existing else "create", "file_path": path}
            try:
                action.update(content=self.files[path].decode("utf-8"), encoding="text")
            except UnicodeDecodeError:
                action.update(content=base64.b64encode(self.files[path]).decode(),
                              encoding="base64")
            actions.append(action)
        actions += [{"action": "delete", "file_path": p} for p in sorted(existing - set(self.files))]
        return actions

    def commit_message(self, title: str) -> str:
        return f"{title}\n\n{TEMPLATE_DIGEST_TRAILER}: {self.digest}\n"


def load_template_files(directory: Path | None) -> TemplateFiles:
    """Every file below ``directory``, recursively (none if it is ``None`` or missing).
    Hidden VCS folders (``.git``) are skipped; other dotfiles such as ``.gitlab-ci.yml`` are
    kept."""
    files: dict[str, bytes] = {}
    if directory is not None and directory.is_dir():
        for path in sorted(directory.rglob("*")):
            rel = path.relative_to(directory)
            if path.is_file() and ".git" not in rel.parts and "__pycache__" not in rel.parts:
                files[rel.as_posix()] = path.read_bytes()
    return TemplateFiles.of(files)


def default_template_dir() -> Path | None:
    """``gitlab-templates/workload`` from the bundled files, or ``None`` if not shipped."""
    from konfig.resources import bundled_dir

    try:
        return bundled_dir("gitlab-templates") / "workload"
    except FileNotFoundError:
        return None


def default_control_plane_template_dir() -> Path | None:
    """``gitlab-templates/control-plane`` (the definitions repository's starter tree) from the
    bundled files, or ``None`` if not shipped."""
    from konfig.resources import bundled_dir

    try:
        return bundled_dir("gitlab-templates") / "control-plane"
    except FileNotFoundError:
        return None


def digest_from_message(message: str | None) -> str | None:
    match = TEMPLATE_DIGEST_RE.search(message or "")
    return match.group(1) if match else None


def groups_by_path(groups: tuple[GitLabGroup, ...]) -> dict[str, GitLabGroup]:
    return {g.full_path.lower(): g for g in groups}
