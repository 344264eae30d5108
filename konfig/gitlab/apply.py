"""Apply a :class:`~konfig.gitlab.plan.Plan`: the writes, in dependency order, in parallel.

Ordering: a group after its parent; a group's SAML links and variables after the group; a
project after its namespace group; workload projects after the workload-template project is
complete (created, protected, files pushed); a project's protections after its asynchronous
import finished (``import_status``), and an initial commit after the protections (so GitLab's
default-branch protection does not get there first).

Convergence after partial failure: every create tolerates "already exists" answers (a retried
write may have been applied before its answer was lost), adopting the object when it carries
Konfig's marker; so a rerun never duplicates anything. Nothing just written is read back,
except a project's ``import_status`` while GitLab imports it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from konfig.gitlab import features
from konfig.gitlab.api import AlreadyExists, ApiError, GitLabApi, NotFound
from konfig.gitlab.executor import FAILED, SKIPPED, Later, Outcome, Task, run_tasks
from konfig.gitlab.features import FeatureGate, FeatureUnavailable
from konfig.gitlab.model import (
    DESIRED_BRANCH,
    TAG_CREATE_LEVEL,
    Observed,
    TemplateFiles,
    group_is_marked,
    project_is_marked,
    variable_payload,
)
from konfig.gitlab.plan import STARTER_FILES, Change, Plan
from konfig.gitlab.report import ChangeResult
from konfig.gitlab.settings import GitLabSettings

IMPORT_DONE = "finished"
IMPORTING = ("scheduled", "started")


@dataclass
class _Progress:
    """A project Konfig just created: is GitLab still importing it, does it still need files."""

    id: int
    pending: bool
    created_at: float
    needs_commit: bool
    post_fork: bool = False
    polls: int = 0
    topics: tuple[str, ...] = ()
    from_template: bool = False


class _Context:
    """Shared, thread-safe state of one apply: ids known so far and created projects."""

    def __init__(self, api: GitLabApi, settings: GitLabSettings, observed: Observed,
                 gates: dict[str, FeatureGate], template: TemplateFiles,
                 control_plane: str | None, template_project: str | None,
                 starter: TemplateFiles | None = None) -> None:
        self.api, self.settings, self.gates, self.template = api, settings, gates, template
        self.starter = starter or TemplateFiles.of({})
        self.lock = threading.Lock()
        self.group_ids = {path: g.id for path, g in observed.groups.items()}
        self.group_ids[observed.root_full_path.lower()] = observed.root_id
        self.project_ids = {path: p.id for path, p in observed.projects.items()}
        self.progress: dict[str, _Progress] = {}
        self.control_plane = control_plane
        self.template_project = (template_project or "").lower()
        #: Protections (kind, name) known to be right on the template project in this pass: an
        #: import from the template copies them, so its workloads need no write for them.
        self.template_protected: set[tuple[str, str]] = set()
        details = observed.project_details.get(self.template_project)
        if details is not None:
            self.template_protected |= {("protected_branch", n) for n, b in
                                        details.branches.items() if b == DESIRED_BRANCH}
            self.template_protected |= {("protected_tag", n) for n, lv in details.tags.items()
                                        if lv == (TAG_CREATE_LEVEL,)}

    def group_id(self, path: str) -> int:
        with self.lock:
            found = self.group_ids.get(path.lower())
        if found is None:
            raise ApiError(f"group {path} does not exist (it was not created)")
        return found

    def project_id(self, path: str) -> int:
        with self.lock:
            found = self.project_ids.get(path.lower())
        if found is None:
            raise ApiError(f"project {path} does not exist (it was not created)")
        return found

    def remember_group(self, path: str, group_id: int) -> None:
        with self.lock:
            self.group_ids[path.lower()] = group_id

    def remember_project(self, path: str, project_id: int) -> None:
        with self.lock:
            self.project_ids[path.lower()] = project_id


def apply(api: GitLabApi, plan: Plan, observed: Observed, *, settings: GitLabSettings,
          gates: dict[str, FeatureGate], template: TemplateFiles,
          control_plane: str | None, template_project: str | None,
          starter: TemplateFiles | None = None) -> list[ChangeResult]:
    """Make the plan's writes; return one :class:`ChangeResult` per change, in plan order.
    ``starter`` holds the files of the definitions repository's first commit."""
    ctx = _Context(api, settings, observed, gates, template, control_plane, template_project,
                   starter)
    tasks, owners = _build_tasks(ctx, plan)
    outcomes = run_tasks(tasks, settings.max_in_flight)
    results: dict[int, ChangeResult] = {}
    for index, change in enumerate(plan.changes):
        outcome = outcomes[f"c{index}"]
        results[index] = ChangeResult(change, outcome.status, outcome.message)
    for key, index in owners.items():  # internal steps report through their change
        outcome = outcomes[key]
        current = results[index]
        if outcome.status in (FAILED, SKIPPED) and current.status == "done":
            results[index] = ChangeResult(current.change, FAILED, outcome.message)
        elif outcome.message and current.status == "done":
            message = "; ".join(m for m in (current.message, outcome.message) if m)
            results[index] = ChangeResult(current.change, current.status, message)
    return [results[i] for i in range(len(plan.changes))]


# -- task graph --------------------------------------------------------------------------------


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0].lower()


def _build_tasks(ctx: _Context, plan: Plan) -> tuple[list[Task], dict[str, int]]:
    tasks: list[Task] = []
    owners: dict[str, int] = {}
    last_head: dict[str, str] = {}
    by_path: dict[str, list[str]] = {}
    protections: dict[str, list[str]] = {}
    created_projects: dict[str, int] = {}
    deps: dict[str, list[str]] = {}

    for index, change in enumerate(plan.changes):
        key = f"c{index}"
        path = change.path.lower()
        by_path.setdefault(path, []).append(key)
        mine: list[str] = []
        if change.is_head:
            if path in last_head:
                mine.append(last_head[path])
            else:
                parent = (change.data.get("parent") or change.data.get("namespace")
                          or _parent(path)).lower()
                if parent in last_head:
                    mine.append(last_head[parent])
            last_head[path] = key
            if change.kind == "project" and change.action == "create":
                created_projects[path] = index
        elif path in last_head:
            mine.append(last_head[path])
        if change.kind.startswith("protected_"):
            protections.setdefault(path, []).append(key)
        deps[key] = mine

    # Workload projects wait for the complete template project when it changes in this pass.
    template_keys = by_path.get((ctx.template_project or "").lower(), [])
    for index, change in enumerate(plan.changes):
        key = f"c{index}"
        path = change.path.lower()
        if change.kind == "project" and change.action == "create" \
                and change.data.get("kind") == "workload":
            deps[key] += template_keys
        if path in created_projects and change.kind.startswith("protected_"):
            deps[key].append(f"await:{path}")
        if change.kind == "repository":
            deps[key] += protections.get(path, [])
        tasks.append(Task(key, _runner(ctx, change), tuple(deps[key])))

    for path, index in created_projects.items():
        create_key = f"c{index}"
        tasks.append(Task(f"await:{path}", lambda p=path: _await_import(ctx, p), (create_key,)))
        owners[f"await:{path}"] = index
        if plan.changes[index].data.get("kind") == "workload":
            tasks.append(Task(f"commit:{path}", lambda p=path: _initial_commit(ctx, p),
                              (f"await:{path}", *protections.get(path, []))))
            owners[f"commit:{path}"] = index
    return tasks, owners


def _runner(ctx: _Context, change: Change) -> Callable[[], Any]:
    handlers: dict[tuple[str, str], Callable[[_Context, Change], Any]] = {
        ("group", "create"): _create_group,
        ("group", "update"): lambda c, ch: c.api.update_group(c.group_id(ch.path), ch.data),
        ("group", "restore"): lambda c, ch: c.api.restore_group(c.group_id(ch.path)),
        ("group", "move"): _move_group,
        ("project", "create"): _create_project,
        ("project", "update"): lambda c, ch: c.api.update_project(c.project_id(ch.path), ch.data),
        ("project", "restore"): lambda c, ch: c.api.restore_project(c.project_id(ch.path)),
        ("project", "archive"): lambda c, ch: c.api.archive_project(c.project_id(ch.path)),
        ("project", "unarchive"): lambda c, ch: c.api.unarchive_project(c.project_id(ch.path)),
        ("saml_link", "create"): _create_link,
        ("saml_link", "update"): _replace_link,
        ("saml_link", "delete"): _delete_link,
        ("variable", "create"): _create_variable,
        ("variable", "update"): _update_variable,
        ("variable", "delete"): _delete_variable,
        ("protected_branch", "create"): _protect_branch,
        ("protected_branch", "update"): _protect_branch,
        ("protected_tag", "create"): _protect_tag,
        ("protected_tag", "update"): _protect_tag,
        ("protected_environment", "create"): _protect_environment,
        ("protected_environment", "update"): _protect_environment,
        ("repository", "create"): _push_files,
        ("repository", "update"): _push_files,
    }
    if change.action == "conflict":
        def refuse() -> None:
            raise ApiError(change.detail)
        return refuse
    handler = handlers[(change.kind, change.action)]

    def run() -> str | None:
        # A handler returns a note for the report, or whatever its API call answered (the
        # updated object, say), which is not a note: only text reaches the report's lines.
        outcome = handler(ctx, change)
        return outcome if isinstance(outcome, (str, Later)) else None
    return run


# -- groups ------------------------------------------------------------------------------------


def _create_group(ctx: _Context, change: Change) -> str | None:
    data = change.data
    payload = {"name": data["name"], "path": data["path"], "description": data["description"],
               "visibility": data["visibility"], "parent_id": ctx.group_id(data["parent"])}
    try:
        created = ctx.api.create_group(payload)
    except AlreadyExists as err:
        existing = ctx.api.get_group(change.path)
        if existing is None or not group_is_marked(existing.get("description")):
            raise ApiError(f"path {change.path} is taken by an object Konfig does not manage "
                           f"({err.message})", err.status) from err
        ctx.remember_group(change.path, existing["id"])
        return "already existed with Konfig's marker (an earlier write): adopted"
    ctx.remember_group(change.path, created["id"])
    return None


def _move_group(ctx: _Context, change: Change) -> None:
    group_id = change.data["id"]
    ctx.api.transfer_group(group_id, ctx.group_id(change.data["parent"]))
    ctx.remember_group(change.path, group_id)


def _create_link(ctx: _Context, change: Change) -> str | None:
    group_id, level = ctx.group_id(change.path), change.data["access_level"]
    gate = ctx.gates[features.SAML]
    try:
        gate.call(lambda: ctx.api.create_saml_link(group_id, change.name, level))
    except AlreadyExists:
        existing = ctx.api.get_saml_link(group_id, change.name)
        if existing and existing.get("access_level") == level:
            return "already present"
        _replace_link(ctx, change)
        return "replaced a link with another access level"
    return None


def _replace_link(ctx: _Context, change: Change) -> None:
    # SAML group links have no update endpoint: delete, then create.
    group_id = ctx.group_id(change.path)
    gate = ctx.gates[features.SAML]
    try:
        gate.call(lambda: ctx.api.delete_saml_link(group_id, change.name))
    except NotFound:
        pass
    gate.call(lambda: ctx.api.create_saml_link(group_id, change.name,
                                               change.data["access_level"]))


def _delete_link(ctx: _Context, change: Change) -> None:
    try:
        ctx.gates[features.SAML].call(
            lambda: ctx.api.delete_saml_link(ctx.group_id(change.path), change.name))
    except NotFound:
        pass


def _create_variable(ctx: _Context, change: Change) -> str | None:
    variable = change.data["variable"]
    group_id = ctx.group_id(change.path)
    try:
        ctx.api.create_group_variable(group_id, variable_payload(variable))
    except AlreadyExists:
        ctx.api.update_group_variable(group_id, variable.key, variable.environment_scope,
                                      variable_payload(variable))
        return "already existed: updated"
    return None


def _update_variable(ctx: _Context, change: Change) -> None:
    variable = change.data["variable"]
    ctx.api.update_group_variable(ctx.group_id(change.path), variable.key,
                                  variable.environment_scope, variable_payload(variable))


def _delete_variable(ctx: _Context, change: Change) -> None:
    try:
        ctx.api.delete_group_variable(ctx.group_id(change.path), change.data["key"],
                                      change.data["scope"])
    except NotFound:
        pass


# -- projects ----------------------------------------------------------------------------------


def _base_project(ctx: _Context, data: dict[str, Any]) -> dict[str, Any]:
    return {"name": data["name"], "path": data["path"],
            "namespace_id": ctx.group_id(data["namespace"]),
            "description": data["description"], "visibility": data["visibility"],
            "topics": data["topics"]}


def _create_project(ctx: _Context, change: Change) -> str | None:
    data = change.data
    now = time.monotonic()
    if data["kind"] != "workload":
        project, note = _create_or_adopt(ctx, change, lambda: ctx.api.create_project(
            _base_project(ctx, data)))
        ctx.progress[change.path.lower()] = _Progress(
            project["id"], project.get("import_status") in IMPORTING, now, False)
        return note
    mode = ctx.settings.creation_mode
    template = data.get("template")
    if mode in ("auto", "custom_template", "fork") and not template:
        raise ApiError("the tree has no workload-template project to create workloads from")
    if mode == "fork":
        return _fork_workload(ctx, change, now)
    if mode in ("auto", "custom_template"):
        try:
            return _templated_workload(ctx, change, now)
        except FeatureUnavailable as err:
            if mode == "custom_template":
                raise ApiError(f"custom project templates unavailable: {err.reason}") from err
    project, note = _create_or_adopt(ctx, change, lambda: ctx.api.create_project(
        _base_project(ctx, data)))
    ctx.progress[change.path.lower()] = _Progress(project["id"], False, now, _needs_files(project))
    return note


def _needs_files(project: dict[str, Any]) -> bool:
    return bool(project.get("empty_repo", True)) and project.get("import_status") not in IMPORTING


def _create_or_adopt(ctx: _Context, change: Change,
                     create: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    try:
        project = create()
        note = None
    except AlreadyExists as err:
        project = ctx.api.get_project(change.path)
        if project is None or not project_is_marked(tuple(project.get("topics") or ()),
                                                    project.get("description")):
            raise ApiError(f"path {change.path} is taken by an object Konfig does not manage "
                           f"({err.message})", err.status) from err
        note = "already existed with Konfig's marker (an earlier write): adopted"
    ctx.remember_project(change.path, project["id"])
    return project, note


def _templated_workload(ctx: _Context, change: Change, now: float) -> str | None:
    data = change.data
    payload = {**_base_project(ctx, data), "use_custom_template": True,
               "template_project_id": ctx.project_id(data["template"]),
               "group_with_project_templates_id": ctx.group_id(_parent(data["template"]))}

    def ignored(project: dict[str, Any]) -> str | None:
        # GitLab Free drops the template parameters and makes an empty project.
        if project.get("import_status") in (*IMPORTING, IMPORT_DONE):
            return None
        return "the instance ignored use_custom_template (GitLab Free)"

    gate = ctx.gates[features.CUSTOM_TEMPLATES]
    project, note = _create_or_adopt(ctx, change, lambda: gate.call(
        lambda: ctx.api.create_project(payload), ignored))
    status = project.get("import_status")
    imported = status in (*IMPORTING, IMPORT_DONE)
    ctx.progress[change.path.lower()] = _Progress(
        project["id"], status in IMPORTING, now,
        needs_commit=not imported and _needs_files(project), from_template=imported)
    return note


def _fork_workload(ctx: _Context, change: Change, now: float) -> str | None:
    data = change.data
    payload = {"namespace_id": ctx.group_id(data["namespace"]), "path": data["path"],
               "name": data["name"], "description": data["description"],
               "visibility": data["visibility"]}
    project, note = _create_or_adopt(ctx, change, lambda: ctx.api.fork_project(
        ctx.project_id(data["template"]), payload))
    ctx.progress[change.path.lower()] = _Progress(
        project["id"], project.get("import_status") in IMPORTING, now, False, post_fork=True,
        topics=tuple(data["topics"]))
    return note


def _await_import(ctx: _Context, path: str) -> "str | Later | None":
    """Wait (without a worker) until GitLab finished importing a project just created."""
    progress = ctx.progress.get(path)
    if progress is None or not progress.pending:
        return _after_fork(ctx, path, progress) if progress else None
    elapsed = time.monotonic() - progress.created_at
    first = ctx.settings.import_poll
    if progress.polls == 0 and elapsed < first:
        return Later(first - elapsed)
    if elapsed > ctx.settings.import_timeout:
        raise ApiError(f"import of {path} still running after {ctx.settings.import_timeout:.0f} s;"
                       " the next pass continues it")
    progress.polls += 1
    project = ctx.api.get_project(progress.id) or {}
    status = project.get("import_status")
    if status == IMPORT_DONE:
        progress.pending = False
        return _after_fork(ctx, path, progress)
    if status == "failed":
        progress.pending = False
        progress.needs_commit = bool(project.get("empty_repo", True))
        return (f"import failed ({project.get('import_error') or 'no reason given'}); "
                "pushing the template files instead")
    if status in IMPORTING:
        return Later(min(first * 2 ** progress.polls, 5.0))
    progress.pending = False
    progress.needs_commit = _needs_files(project)
    return None


def _after_fork(ctx: _Context, path: str, progress: _Progress) -> str | None:
    if not progress.post_fork:
        return None
    # A fork carries the template's topics, not ours, and stays linked to it: fix both.
    progress.post_fork = False
    ctx.api.update_project(progress.id, {"topics": list(progress.topics)})
    try:
        ctx.api.delete_fork_relation(progress.id)
    except NotFound:
        pass
    return "forked from the template; fork relationship removed"


def _initial_commit(ctx: _Context, path: str) -> str | None:
    progress = ctx.progress.get(path)
    if progress is None or not progress.needs_commit:
        return None
    _commit_files(ctx, progress.id, "Initial commit from the Konfig workload template",
                  existing=None)
    return "pushed the template files in an initial commit"


def _commit_files(ctx: _Context, project_id: int, title: str, existing: set[str] | None,
                  files: TemplateFiles | None = None) -> None:
    files = files or ctx.template
    if not files.files:
        return
    try:
        ctx.api.create_commit(project_id, "main", files.commit_message(title),
                              files.actions(existing))
    except AlreadyExists:
        if existing is not None:
            raise
        # A retried commit that had been applied: the files are there.


def _push_files(ctx: _Context, change: Change) -> str | None:
    project_id = ctx.project_id(change.path)
    if change.name == STARTER_FILES:  # the definitions repository: seeded once, when empty
        _commit_files(ctx, project_id, "Konfig: definitions repository starter", existing=None,
                      files=ctx.starter)
        return None
    if change.action == "create":
        title = ("Konfig: workload template" if change.name == "template files"
                 else "Initial commit from the Konfig workload template")
        _commit_files(ctx, project_id, title, existing=None)
        return None
    tree = ctx.api.list_tree(project_id, "main")
    existing = {entry["path"] for entry in tree if entry.get("type") == "blob"}
    _commit_files(ctx, project_id, "Konfig: update the workload template", existing)
    return None


# -- protections -------------------------------------------------------------------------------


def _protect(create: Callable[[], None], remove: Callable[[], None], update: bool) -> str | None:
    if update:
        try:
            remove()
        except NotFound:
            pass
    try:
        create()
    except AlreadyExists:
        return "already protected"
    return None


def _copied_from_template(ctx: _Context, change: Change) -> bool:
    """True when the project was just imported from the template and the template carries this
    protection as wanted (GitLab's import copies protected branches and tags:
    https://docs.gitlab.com/user/project/settings/import_export/#project-items-that-are-exported).
    """
    progress = ctx.progress.get(change.path.lower())
    return (change.action == "create" and progress is not None and progress.from_template
            and (change.kind, change.name) in ctx.template_protected)


def _record_template(ctx: _Context, change: Change) -> None:
    if change.path.lower() == ctx.template_project:
        with ctx.lock:
            ctx.template_protected.add((change.kind, change.name))


def _protect_branch(ctx: _Context, change: Change) -> str | None:
    if _copied_from_template(ctx, change):
        return "copied from the template by the import"
    project_id = ctx.project_id(change.path)
    data = change.data
    payload = {"name": change.name, "push_access_level": data["push"],
               "merge_access_level": data["merge"], "allow_force_push": data["allow_force_push"]}
    note = _protect(lambda: ctx.api.protect_branch(project_id, payload),
                    lambda: ctx.api.unprotect_branch(project_id, change.name),
                    change.action == "update")
    _record_template(ctx, change)
    return note


def _protect_tag(ctx: _Context, change: Change) -> str | None:
    if _copied_from_template(ctx, change):
        return "copied from the template by the import"
    project_id = ctx.project_id(change.path)
    payload = {"name": change.name, "create_access_level": change.data["create"]}
    note = _protect(lambda: ctx.api.protect_tag(project_id, payload),
                    lambda: ctx.api.unprotect_tag(project_id, change.name),
                    change.action == "update")
    _record_template(ctx, change)
    return note


def _protect_environment(ctx: _Context, change: Change) -> str | None:
    project_id = ctx.project_id(change.path)
    gate = ctx.gates[features.PROTECTED_ENVIRONMENTS]
    payload = {"name": change.name,
               "deploy_access_levels": [{"access_level": change.data["deploy"]}]}
    return _protect(lambda: gate.call(lambda: ctx.api.protect_environment(project_id, payload)),
                    lambda: gate.call(lambda: ctx.api.unprotect_environment(project_id,
                                                                            change.name)),
                    change.action == "update")


__all__ = ["apply", "Outcome"]
