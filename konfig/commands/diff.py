"""``konfig diff DIR`` (also ``konfig plan DIR --against-cluster``): what applying DIR would
change against what runs now, in the control-plane cluster and in GitLab.

Exit codes follow ``terraform plan -detailed-exitcode``: 0 no changes, 2 changes, 1 error
(invalid definitions, an unreachable cluster or GitLab: never an empty plan).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from konfig.changes import ChangeSet, ObjectChange
from konfig.compile.state import SYSTEM_NAMESPACE

#: Exit codes (terraform plan -detailed-exitcode).
NO_CHANGES, ERROR, CHANGES = 0, 1, 2
FORMATS = ("tree", "json", "gitlab-report")
_STYLE = {"create": "green", "update": "yellow", "delete": "red", "conflict": "red bold"}

DirArg = Annotated[Path, typer.Argument(help="Folder (or file) of definitions.", show_default=False)]


def diff_command(
    path: DirArg,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    output_format: Annotated[str, typer.Option(
        "--format", help="tree (for people), json (every change with its fields), or "
        "gitlab-report (GitLab's artifacts:reports:terraform counts).")] = "tree",
    report_file: Annotated[Path | None, typer.Option(
        "--report-file", help="Also write the gitlab-report JSON here (merge request widget).")
    ] = None,
    plan_file: Annotated[Path | None, typer.Option(
        "--plan-file", help="Also write the full JSON plan here (an exposed artifact).")] = None,
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the "
        "in-cluster service account).")] = None,
    context: Annotated[str | None, typer.Option("--context", help="Kubeconfig context.")] = None,
    cluster: Annotated[bool, typer.Option(
        "--cluster/--no-cluster", help="Compare with the control-plane cluster.")] = True,
    gitlab: Annotated[bool, typer.Option(
        "--gitlab/--no-gitlab", help="Compare with GitLab (token: GITLAB_TOKEN; read access "
        "to the parent group is enough).")] = True,
    gitlab_url: Annotated[str | None, typer.Option(
        "--gitlab-url", help="GitLab base URL (default: spec.gitlab.url).")] = None,
    workloads: Annotated[bool, typer.Option(
        "--workloads/--no-workloads", help="Include the tree's Workload resources (the "
        "control-plane pipeline leaves them to the workload repositories).")] = True,
) -> None:
    """Show what applying the definitions would change: + create, ~ update (field paths, old
    → new, secrets masked), - prune (abandon, archive or delete), ! conflict. Exit 0 when
    nothing would change, 2 when something would, 1 on error."""
    if as_json:
        output_format = "json"
    if output_format not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)}", code=ERROR)
    if not (cluster or gitlab):
        _fail("nothing to compare: --no-cluster and --no-gitlab together", code=ERROR)
    changes = collect(path, kubeconfig=kubeconfig, context=context, cluster=cluster,
                      gitlab=gitlab, gitlab_url=gitlab_url, workloads=workloads)
    if report_file is not None:
        _write_json(report_file, changes.gitlab_report())
    if plan_file is not None:
        _write_json(plan_file, changes.to_json())
    if output_format == "json":
        json.dump(changes.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    elif output_format == "gitlab-report":
        json.dump(changes.gitlab_report(), sys.stdout)
        sys.stdout.write("\n")
    else:
        Console(soft_wrap=True).print(render_tree(changes))
    raise typer.Exit(NO_CHANGES if changes.empty else CHANGES)


def collect(path: Path, *, kubeconfig: str | None = None, context: str | None = None,
            cluster: bool = True, gitlab: bool = True, gitlab_url: str | None = None,
            workloads: bool = True) -> ChangeSet:
    """Load, compile and compare; exits 1 (with a clear message) on any error."""
    from konfig.commands.core import compile_or_exit

    defs, state = compile_or_exit(path)
    result = ChangeSet()
    if cluster:
        part = _cluster_changes(defs, state, kubeconfig, context, workloads)
        result.changes += part.changes
        result.notes += part.notes
        result.compared += part.compared
    if gitlab:
        part = _gitlab_changes(state, gitlab_url)
        result.changes += part.changes
        result.notes += part.notes
        result.compared += part.compared
    return result


def _cluster_changes(defs, state, kubeconfig, context, workloads) -> ChangeSet:
    import kubernetes.config

    from konfig.kube.client import KubeClient, KubeError
    from konfig.kube.preview import preview_cluster

    try:
        client = KubeClient.connect(kubeconfig, context)
    except (kubernetes.config.ConfigException, OSError) as e:
        _fail(f"cannot load cluster credentials: {e}")
    try:
        # Compile as the operator does: with what Config Connector reports (service URLs), so
        # that a converged cluster shows no changes.
        from konfig.errors import DefinitionError
        from konfig.kube.facts import observe_facts
        from konfig.pipeline import desired_state  # the pipeline validate, plan and the operator run

        try:
            state = desired_state(operator_view(client, defs, workloads),
                                  observe_facts(client, defs.control_plane.name))
        except DefinitionError as e:
            from konfig.commands.core import report_problems

            report_problems(e)
            raise typer.Exit(ERROR) from None
        return preview_cluster(client, defs, state, include_workloads=workloads)
    except KubeError as e:
        hint = (" Are the Konfig CRDs installed?" if e.status == 404 else "")
        _fail(f"cannot read the cluster at {client.host}: {e}.{hint} No plan was made.")
    finally:
        client.close()


def operator_view(client, defs, workloads: bool):
    """The definitions the operator will compile once ``konfig apply`` has run: the tree's
    custom resources and, with ``workloads=False`` (the definitions pipeline, which leaves
    Workloads to their repositories), the Workloads the cluster holds now. Built by the
    operator's own reader (:func:`konfig.operator.cluster.build_view`), so that a workload is
    rendered exactly in the environments where it has an instance. Raises
    :class:`~konfig.errors.DefinitionError` when that set is invalid."""
    from konfig.errors import DefinitionError, Location, Problem
    from konfig.kube.custom_resources import custom_resources
    from konfig.model import API_VERSION
    from konfig.operator.cluster import build_view, bundled_templates

    resources = [r for r in custom_resources(defs) if workloads or r["kind"] != "Workload"]
    if not workloads:
        resources += client.list(client.kinds.get(API_VERSION, "Workload"))
    view = build_view(resources, system_namespace=SYSTEM_NAMESPACE, library=bundled_templates())
    if view.definitions is None or not view.valid:
        raise DefinitionError(view.problems or [Problem(Location("<cluster>", 0, ""),
                                                        "no usable control plane")])
    return view.definitions


def _gitlab_changes(state, gitlab_url: str | None) -> ChangeSet:
    from konfig.gitlab import GitLabSettings, RetryPolicy, reconcile
    from konfig.gitlab.report import as_changes

    token = os.environ.get("GITLAB_TOKEN")
    if not token:
        _fail("set GITLAB_TOKEN to compare with GitLab (read access to the parent group), "
              "or pass --no-gitlab")
    # A plan only reads: a few quick retries (about 4 s in all), so an unreachable GitLab
    # fails the merge request job fast instead of after the sync's minute of backoff.
    settings = GitLabSettings(url=gitlab_url or state.gitlab.url, token=token,
                              retry=RetryPolicy(attempts=4, initial=0.5, max_wait=5.0))
    report = reconcile(settings, state.gitlab, depth="full", dry_run=True)
    try:
        return as_changes(report)
    except RuntimeError as e:
        _fail(f"cannot read GitLab at {settings.url}: {e}. No plan was made.")


def _fail(message: str, *, code: int = ERROR):
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")


def render_tree(changes: ChangeSet) -> Tree:
    """A rich tree: system → layer → one line per object, its fields below it."""
    counts = changes.counts()
    summary = ", ".join(f"{n} to {op}" for op, n in counts.items() if n) or "no changes"
    root = Tree(f"[bold]konfig diff[/]: {summary} (compared: {', '.join(changes.compared)})")
    layers: dict[tuple[str, str], Tree] = {}
    for change in changes.changes:
        key = (change.system, change.layer)
        if key not in layers:
            label = change.system if change.system == change.layer else \
                f"{change.system}: {change.layer}"
            layers[key] = root.add(f"[bold]{label}[/]")
        _add(layers[key], change)
    for note in changes.notes:
        root.add(f"[dim]note: {escape(note)}[/]")
    return root


def _add(parent: Tree, change: ObjectChange) -> None:
    style = _STYLE[change.op]
    text = f"[{style}]{change.symbol} {escape(change.title)}[/]"
    extra = []
    if change.policy:
        extra.append(change.policy)
    if change.reason:
        extra.append(change.reason)
    if change.managers:
        extra.append("other field managers: " + ", ".join(change.managers))
    if extra:
        text += f" [dim]({escape('; '.join(extra))})[/]"
    node = parent.add(text)
    for field in change.fields[:50]:
        node.add(escape(field.describe()))
    if len(change.fields) > 50:
        node.add(f"[dim]… {len(change.fields) - 50} more fields (see --json)[/]")


def register(app: typer.Typer) -> None:
    """Add ``diff`` to the root app."""
    app.command("diff")(diff_command)
