"""One reconcile pass: observe -> diff -> apply -> report. The entry point of the adapter."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import gitlab

from konfig.compile.state import GitLabTree
from konfig.gitlab.api import ApiError, GitLabApi
from konfig.gitlab.apply import apply
from konfig.gitlab.features import REQUIREMENTS, new_gates
from konfig.gitlab.model import (
    TemplateFiles,
    default_control_plane_template_dir,
    default_template_dir,
    load_template_files,
)
from konfig.gitlab.observe import (
    DeepSelector,
    control_plane_path,
    deep_all,
    deep_none,
    deep_slice,
    observe,
)
from konfig.gitlab.plan import diff
from konfig.gitlab.report import PLANNED, ChangeResult, SyncReport
from konfig.gitlab.settings import GitLabSettings
from konfig.gitlab.transport import connect, request_stats

Depth = Literal["full", "shape"]


def reconcile(
    target: gitlab.Gitlab | GitLabSettings,
    tree: GitLabTree,
    *,
    depth: Depth = "full",
    dry_run: bool = False,
    deep_round: int | None = None,
    settings: GitLabSettings | None = None,
    template: TemplateFiles | None = None,
    template_dir: Path | None = None,
    starter: TemplateFiles | None = None,
    deep: DeepSelector | None = None,
) -> SyncReport:
    """Make GitLab match ``tree`` under its adopted parent group, in one pass.

    ``target`` is a python-gitlab client (best made by :func:`konfig.gitlab.connect`, which
    adds bounded concurrency, retries and request counts) or :class:`GitLabSettings` to make
    one. ``depth="full"`` reads every managed object's SAML links, variables and protections;
    ``depth="shape"`` reads only the list pages of groups and projects (under 60 requests for
    1,000 groups and 3,000 projects), plus the deep details of the ``1/deep_period`` slice
    selected by ``deep_round`` when given (the operator passes its resync counter).
    ``deep`` (a predicate of group and project paths) picks the objects whose details are
    read, instead of ``depth`` and ``deep_round`` (the operator's pass over some domains
    reads their subtrees' details only).
    ``dry_run`` observes and plans without writing. The workload template's files come from
    ``template`` or ``template_dir`` (default: the bundled ``gitlab-templates/workload``);
    the definitions repository's first commit from ``starter`` (default: the bundled
    ``gitlab-templates/control-plane``), pushed only while that repository is empty.

    Never raises for GitLab errors: they land in the report (``report.error`` when observation
    itself failed, else failed results), so the caller decides how to surface them.
    """
    if isinstance(target, GitLabSettings):
        settings = settings or target
        client = connect(target)
    else:
        client = target
        settings = settings or GitLabSettings(url=client.url)
    if template is None:
        template = load_template_files(template_dir or default_template_dir())
    if starter is None:
        starter = load_template_files(default_control_plane_template_dir())
    if deep is not None:
        selector = deep
    elif depth == "full":
        selector = deep_all
    elif deep_round is not None:
        selector = deep_slice(settings.deep_period, deep_round)
    else:
        selector = deep_none

    api = GitLabApi(client, settings.per_page)
    stats = request_stats(client)
    before = (stats.reads, stats.writes, stats.retries, stats.throttled) if stats else None
    started = time.monotonic()
    report = SyncReport(url=settings.url, depth=depth, dry_run=dry_run)
    gates = new_gates()
    try:
        observed = observe(api, tree, deep=selector, gates=gates,
                           max_workers=settings.max_in_flight)
    except ApiError as err:
        report.error = str(err)
    else:
        report.groups_observed = len(observed.groups)
        report.projects_observed = len(observed.projects)
        report.deep_read = len(observed.group_details) + len(observed.project_details)
        plan = diff(tree, observed, template, starter)
        report.plan = plan
        if dry_run:
            report.results = [ChangeResult(c, PLANNED) for c in plan.changes]
        else:
            template_project = next(
                (p.path_with_namespace for p in tree.projects if p.kind == "workload-template"),
                None)
            report.results = apply(api, plan, observed, settings=settings, gates=gates,
                                   template=template, control_plane=control_plane_path(tree),
                                   template_project=template_project, starter=starter)
        report.notes = list(plan.notes)
        for name, gate in sorted(gates.items()):
            if gate.available is False and not any(REQUIREMENTS[name] in n for n in report.notes):
                report.notes.append(f"{REQUIREMENTS[name]} ({gate.reason})")
    report.duration = time.monotonic() - started
    if stats and before:
        report.reads = stats.reads - before[0]
        report.writes = stats.writes - before[1]
        report.retries = stats.retries - before[2]
        report.throttled = stats.throttled - before[3]
    return report
