"""``konfig validate``, ``konfig plan`` and ``konfig schema``: the offline core commands."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from konfig.commands.render import plan_tree, problems_text
from konfig.errors import DefinitionError

class _LiveConsole:
    """A rich Console made afresh for each use, so the terminal width (``COLUMNS``) is read
    when printing, not frozen at import."""

    def __init__(self, **options) -> None:
        self._options = options

    def __getattr__(self, name: str):
        return getattr(Console(**self._options), name)


out = _LiveConsole()
err = _LiveConsole(stderr=True)

DirArg = Annotated[Path, typer.Argument(help="Folder (or file) of definitions.", show_default=False)]


def load_or_exit(path: Path):
    """Load definitions, or print every problem and exit 1 (never a traceback)."""
    from konfig.load import load_definitions

    try:
        defs = load_definitions(path)
    except FileNotFoundError as e:
        err.print(f"[red]error:[/] {e}")
        raise typer.Exit(2) from None
    except DefinitionError as e:
        report_problems(e)
        raise typer.Exit(1) from None
    if defs.skipped_files:
        err.print(f"[yellow]skipped[/] (hidden, or symlinked folders): {', '.join(defs.skipped_files)}",
                  soft_wrap=True)
    return defs


def compile_or_exit(path: Path, *, check_schemas: bool = True):
    """Run the whole pipeline (konfig.pipeline: load, cross-references, templates and policy,
    compile, CRD check), or print every problem and exit 1."""
    from konfig.pipeline import desired_state

    defs = load_or_exit(path)
    try:
        return defs, desired_state(defs, check_schemas=check_schemas)
    except DefinitionError as e:
        report_problems(e)
        raise typer.Exit(1) from None


def report_problems(error: DefinitionError) -> None:
    err.print(problems_text(error.problems), soft_wrap=True)
    n = len(error.problems)
    err.print(f"[red]{n} problem{'s' if n != 1 else ''}[/] found.")


def validate(path: DirArg) -> None:
    """Check the definitions with everything plan, apply and the operator run: schema, names
    and limits, cross-references, templates and their policy, every workload rendered, every
    object checked against its CRD. Exit 1 if invalid."""
    defs, state = compile_or_exit(path)
    out.print(
        f"[green]valid[/]: 1 control plane, {len(defs.platforms)} platforms, "
        f"{len(defs.domains)} domains, {len(defs.workloads)} workloads, "
        f"{len(defs.templates)} resource templates, {len(state.kubernetes)} objects rendered"
    )


def plan(
    path: DirArg,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Write manifests, one folder per namespace.")
    ] = None,
    check_schemas: Annotated[
        bool, typer.Option("--check-schemas/--no-check-schemas",
                           help="Validate Config Connector objects against their CRDs.")
    ] = True,
    against_cluster: Annotated[
        bool, typer.Option("--against-cluster",
                           help="Compare with what runs now instead: same as `konfig diff DIR` "
                                "(cluster and GitLab; exit 0 no changes, 2 changes, 1 error).")
    ] = False,
) -> None:
    """Show what Konfig would build in GCP, GitLab and the cluster (offline)."""
    if against_cluster:
        from konfig.commands.diff import diff_command

        diff_command(path, as_json=as_json, output_format="tree", report_file=None,
                     plan_file=None, kubeconfig=None, context=None, cluster=True, gitlab=True,
                     gitlab_url=None, workloads=True)
    _, state = compile_or_exit(path, check_schemas=check_schemas)
    if out_dir is not None:
        from konfig.kube.manifests import write_manifests

        files = write_manifests(state.kubernetes, out_dir)
        err.print(f"wrote {len(files)} manifest files under {out_dir}")
    if as_json:
        json.dump(state.to_json(), sys.stdout, indent=2, sort_keys=False)
        sys.stdout.write("\n")
        return
    out.print(plan_tree(state))


def schema(
    kind: Annotated[str | None, typer.Option(help="Only this kind (e.g. Workload).")] = None,
) -> None:
    """Print the JSON Schema of the definitions, for yaml-language-server and editors."""
    from konfig.schema import definitions_json_schema

    try:
        document = definitions_json_schema(kind)
    except KeyError as e:
        err.print(f"[red]error:[/] {e.args[0]}")
        raise typer.Exit(2) from None
    json.dump(document, sys.stdout, indent=2)
    sys.stdout.write("\n")


def register(app: typer.Typer) -> None:
    """Add ``validate``, ``plan`` and ``schema`` to the root app."""
    app.command()(validate)
    app.command()(plan)
    app.command()(schema)
