"""Kubernetes-facing commands: ``konfig crds`` and ``konfig apply``.

Each command is one function, added to the root app by :func:`register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from konfig.kube import crds as crd_generator

OutputDir = Annotated[
    Path | None,
    typer.Option(
        "--output-dir",
        "-o",
        help=(
            "Write one file per CRD (<group>_<plural>.yaml) into this folder and remove stale "
            "konfig.dev_*.yaml files there, e.g. charts/konfig/crds. Without it, print one "
            "YAML stream to stdout (pipe it to `kubectl apply --server-side -f -`)."
        ),
    ),
]


def crds_command(output_dir: OutputDir = None) -> None:
    """Print (or write) the CustomResourceDefinitions of konfig.dev/v1alpha1, generated from
    the definitions models."""
    definitions = crd_generator.all_crds()
    if output_dir is None:
        typer.echo(crd_generator.render_yaml(definitions), nl=False)
        return
    write_crd_files(definitions, output_dir, Console(stderr=True))


def write_crd_files(definitions: list[dict], output_dir: Path, console: Console) -> list[Path]:
    """Write each CRD to ``output_dir/<group>_<plural>.yaml`` and delete ``konfig.dev_*.yaml``
    files there that no CRD produced (a renamed or removed kind). Returns the written paths.

    Raises ``OSError`` if the folder cannot be created or written.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for definition in definitions:
        path = output_dir / crd_generator.crd_filename(definition)
        path.write_text(crd_generator.render_yaml([definition]), encoding="utf-8")
        written.append(path)
        console.print(f"wrote {path}")
    for stale in sorted(set(output_dir.glob(f"{crd_generator.GROUP}_*.yaml")) - set(written)):
        stale.unlink()
        console.print(f"removed stale {stale}")
    return written


def apply_command(
    path: Annotated[Path, typer.Argument(help="Folder (or file) of definitions.",
                                         show_default=False)],
    kubeconfig: Annotated[str | None, typer.Option(
        "--kubeconfig", help="Kubeconfig file (default: $KUBECONFIG, ~/.kube/config, or the "
        "in-cluster service account).")] = None,
    context: Annotated[str | None, typer.Option(
        "--context", help="Kubeconfig context (default: the current one).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Show what would change; write nothing.")] = False,
    workloads: Annotated[bool, typer.Option(
        "--workloads/--no-workloads", help="Also apply the tree's Workloads (and their "
        "namespaces). The control-plane pipeline passes --no-workloads: it may write Konfig's "
        "own kinds in the system namespace only, and workloads come from their "
        "repositories.")] = True,
) -> None:
    """Validate the definitions, then server-side apply (field manager konfig) them as Konfig
    custom resources into the control-plane cluster, and prune resources whose definitions
    were removed. Exit 1 if the definitions are invalid or a write failed."""
    import kubernetes.config

    from konfig.commands.core import compile_or_exit
    from konfig.kube.client import KubeClient, KubeError
    from konfig.kube.custom_resources import apply_definitions

    console, err = Console(), Console(stderr=True)
    defs, state = compile_or_exit(path)
    try:
        client = KubeClient.connect(kubeconfig, context)
    except (kubernetes.config.ConfigException, OSError) as e:
        err.print(f"[red]error:[/] cannot load cluster credentials: {e}")
        raise typer.Exit(2) from None
    try:
        result = apply_definitions(client, defs, state, dry_run=dry_run,
                                   include_workloads=workloads)
    except KubeError as e:
        err.print(f"[red]error:[/] cannot read the cluster at {client.host}: {e}")
        if e.status == 404:
            err.print("Are the Konfig CRDs installed? (`konfig crds | kubectl apply "
                      "--server-side -f -`, or the Helm chart)")
        raise typer.Exit(1) from None
    finally:
        client.close()
    console.print(apply_summary(result, control_plane=defs.control_plane.name, dry_run=dry_run))
    if not result.ok:
        raise typer.Exit(1)


def apply_summary(result, *, control_plane: str, dry_run: bool):
    """A rich table: per kind, how many resources were created, updated, left unchanged,
    pruned or failed; then one line per change and per failure."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    columns = ("created", "updated", "unchanged", "deleted", "failed")
    verb = "would be " if dry_run else ""
    table = Table(title=f"konfig apply: control plane {control_plane}"
                  + (" (dry run: nothing written)" if dry_run else ""))
    table.add_column("kind")
    for column in columns:
        table.add_column(f"{verb}{column}" if column != "unchanged" else column, justify="right")
    rows: dict[str, dict[str, int]] = {}
    for r in result.results:
        action = "failed" if r.action in ("failed", "conflict") else r.action
        if action in columns:
            row = rows.setdefault(r.key[1], dict.fromkeys(columns, 0))
            row[action] += 1
    for kind, row in rows.items():
        table.add_row(kind, *(str(row[c]) if row[c] else "[dim]0[/]" for c in columns))
    lines = []
    for r in result.results:
        if r.action in ("created", "updated", "deleted"):
            lines.append(Text(f"  {verb}{r.describe()}", style="green" if r.action != "deleted"
                              else "yellow"))
        elif r.action in ("failed", "conflict"):
            lines.append(Text(f"  {r.describe()}", style="red"))
        elif r.action == "kept":
            lines.append(Text(f"  {r.describe()}", style="dim"))
    status = Text("applied" if result.ok else "failed", style="green" if result.ok else "red bold")
    return Group(table, *lines, status)


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``konfig`` app."""
    app.command("crds")(crds_command)
    app.command("apply")(apply_command)
