"""``konfig sync gitlab DIR``: one reconcile pass of the GitLab tree (token from GITLAB_TOKEN).

Loads and compiles the definitions, calls :func:`konfig.gitlab.reconcile`, prints every change
and a summary; exits 1 if anything failed, 2 on bad usage (no token, missing folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

out = Console()
err = Console(stderr=True)

#: How each change is shown: symbol and style by action, then by result status.
ACTION_STYLE = {
    "create": ("+", "green"), "update": ("~", "yellow"), "delete": ("-", "red"),
    "archive": ("▣", "magenta"), "unarchive": ("~", "yellow"), "restore": ("~", "yellow"),
    "move": ("→", "yellow"), "conflict": ("!", "red"),
}
STATUS_STYLE = {"done": "", "planned": "", "failed": "red", "skipped": "red",
                "unsupported": "dim"}


def sync_gitlab(
    directory: Annotated[Path, typer.Argument(help="Folder of definitions.", show_default=False)],
    gitlab_url: Annotated[str | None, typer.Option(
        "--gitlab-url", help="GitLab base URL (default: spec.gitlab.url of the control plane).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the diff against the live instance; write nothing.")] = False,
    depth: Annotated[str, typer.Option(
        "--depth", help="full: also read every managed object's links, variables and "
                        "protections; shape: list pages only.")] = "full",
    max_in_flight: Annotated[int, typer.Option(
        "--max-in-flight", min=1, max=64, help="Concurrent requests at most.")] = 8,
    creation_mode: Annotated[str, typer.Option(
        "--creation-mode", help="How workload projects are made: auto, custom_template, fork "
                                "or initial_commit.")] = "auto",
) -> None:
    """Reconcile the GitLab groups and projects with the definitions (token: GITLAB_TOKEN)."""
    from konfig.commands.core import compile_or_exit
    from konfig.gitlab import GitLabSettings, reconcile

    if depth not in ("full", "shape"):
        err.print("[red]error:[/] --depth must be full or shape")
        raise typer.Exit(2)
    if creation_mode not in ("auto", "custom_template", "fork", "initial_commit"):
        err.print("[red]error:[/] --creation-mode must be auto, custom_template, fork or "
                  "initial_commit")
        raise typer.Exit(2)
    token = os.environ.get("GITLAB_TOKEN")
    if not token:
        err.print("[red]error:[/] set GITLAB_TOKEN to a token with the Owner role on the "
                  "parent group (scope: api)")
        raise typer.Exit(2)
    _, state = compile_or_exit(directory)
    tree = state.gitlab
    settings = GitLabSettings(url=gitlab_url or tree.url, token=token,
                              max_in_flight=max_in_flight,
                              creation_mode=creation_mode)  # type: ignore[arg-type]
    verb = "diff of" if dry_run else "sync of"
    out.print(f"GitLab {verb} [bold]{tree.root_full_path}[/] at {settings.url} "
              f"({len(tree.groups)} groups, {len(tree.projects)} projects, depth {depth})")
    report = reconcile(settings, tree, depth=depth, dry_run=dry_run)  # type: ignore[arg-type]
    print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def print_report(report) -> None:  # noqa: ANN001 - konfig.gitlab.SyncReport
    """Print each change (one line), the notes, and a summary table."""
    if report.error:
        err.print(f"[red]error:[/] {escape(report.error)}")
    for result in report.results:
        symbol, style = ACTION_STYLE.get(result.change.action, ("·", ""))
        style = STATUS_STYLE.get(result.status) or style
        status = "" if result.status in ("done", "planned") else f" [{result.status}]"
        message = f" ({result.message})" if result.message else ""
        line = escape(f"{symbol} {result.change.describe()}{status}{message}")
        out.print(f"[{style}]{line}[/]" if style else line, soft_wrap=True, highlight=False)
    for note in report.notes:
        out.print(f"[dim]note:[/] {escape(note)}", soft_wrap=True, highlight=False)
    summary = report.summary()
    table = Table(title="dry run: nothing written" if report.dry_run else "GitLab sync",
                  show_header=True)
    columns = (["planned"] if report.dry_run else ["created", "updated", "archived"]) + \
        ["failed", "unsupported", "reads", "writes", "seconds"]
    for column in columns:
        table.add_column(column, justify="right")
    values = {**summary, "seconds": f"{report.duration:.1f}"}
    table.add_row(*[str(values.get(c) if values.get(c) is not None else "-") for c in columns])
    out.print(table)
    if not report.results and report.ok:
        out.print("[green]in sync[/]: no change needed")


def register(app: typer.Typer) -> None:
    """Add ``sync gitlab`` to the root app (joining an existing ``sync`` group if another
    module made one)."""
    for info in app.registered_groups:
        if info.name == "sync" and info.typer_instance is not None:
            info.typer_instance.command("gitlab")(sync_gitlab)
            return
    sync_app = typer.Typer(name="sync", help="Reconcile external systems with the definitions.",
                           no_args_is_help=True)
    sync_app.command("gitlab")(sync_gitlab)
    app.add_typer(sync_app, name="sync")
