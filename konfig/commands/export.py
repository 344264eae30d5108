"""``konfig export kcc|terraform DIR --out OUT``: the escape hatches.

Both read the definitions in DIR (or, with ``--manifests``, Kubernetes manifests such as
``kubectl get -o yaml`` output), compute the desired objects, convert them (konfig/export) and
write OUT. Problems are all printed and nothing is written while there are any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from konfig.errors import DefinitionError
from konfig.export import OutputNotEmpty, export_kcc, export_terraform, write_files
from konfig.export.terraform import Options

export_app = typer.Typer(
    name="export",
    help="Export what Konfig manages as plain Config Connector manifests or as Terraform.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)  # paths and IDs stay on one line, copyable
errors = Console(stderr=True, soft_wrap=True)

DirArg = Annotated[
    Path,
    typer.Argument(exists=True, file_okay=False, help="Definitions folder (or manifests with --manifests)."),
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", file_okay=False, help="Folder to write (must be empty).")]
ManifestsOpt = Annotated[
    bool, typer.Option("--manifests", help="DIR holds Kubernetes manifests, not Konfig definitions.")
]
LabelsOpt = Annotated[bool, typer.Option("--keep-konfig-labels", help="Keep the konfig-* labels.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Write into a non-empty folder, overwriting same-named files.")]


class _Failed(Exception):
    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def read_manifests(directory: Path) -> list[dict[str, Any]]:
    """Every Kubernetes object in ``*.yaml``/``*.yml`` files under ``directory`` (``List``
    objects unpacked). Raises ``_Failed`` naming each file that is not valid YAML or holds a
    document without ``apiVersion``/``kind``/``metadata.name``."""
    yaml = YAML(typ="safe", pure=True)
    objects: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()):
        try:
            docs = list(yaml.load_all(path.read_text(encoding="utf-8")))
        except YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark else 0
            problems.append(f"{path}:{line}: not valid YAML: {getattr(exc, 'problem', exc)}")
            continue
        for index, doc in enumerate(docs):
            if doc is None:
                continue
            items = doc.get("items", []) if isinstance(doc, dict) and doc.get("kind", "").endswith("List") else [doc]
            for item in items:
                if not isinstance(item, dict) or not item.get("kind") or not (item.get("metadata") or {}).get("name"):
                    problems.append(f"{path}: document {index + 1}: not a Kubernetes object (apiVersion, kind, metadata.name)")
                    continue
                objects.append(item)
    if problems:
        raise _Failed(problems)
    return objects


def desired_objects(directory: Path, manifests: bool) -> list[dict[str, Any]]:
    """The Kubernetes objects to export: compiled from definitions, or read as manifests."""
    if manifests:
        return read_manifests(directory)
    try:
        from konfig.compile import compile_definitions
        from konfig.load import load_definitions
    except ImportError as exc:  # the compiler is not part of this build yet
        raise _Failed([f"cannot compile definitions in this build ({exc}); use --manifests"]) from exc
    try:
        state = compile_definitions(load_definitions(directory))
    except DefinitionError as exc:
        raise _Failed([str(p) for p in exc.problems]) from exc
    return list(state.kubernetes)


def _write(out: Path, files: dict[str, str], force: bool) -> None:
    try:
        written = write_files(out, files, force=force)
    except OutputNotEmpty as exc:
        raise _Failed([str(exc)]) from exc
    console.print(f"Wrote {len(written)} files to {out}")


def _fail(exc: _Failed) -> typer.Exit:
    for line in exc.lines:
        errors.print(f"[red]error[/red]: {line}", highlight=False)
    return typer.Exit(code=1)


@export_app.command("kcc")
def export_kcc_command(
    directory: DirArg,
    out: OutOpt,
    manifests: ManifestsOpt = False,
    keep_konfig_labels: LabelsOpt = False,
    force: ForceOpt = False,
) -> None:
    """Write plain Config Connector manifests, one folder per namespace, without Konfig's
    labels, ownerReferences or annotations."""
    try:
        result = export_kcc(desired_objects(directory, manifests), keep_konfig_labels=keep_konfig_labels)
        _write(out, result.files, force)
    except _Failed as exc:
        raise _fail(exc) from None
    console.print(f"Exported {len(result.exported)} objects; left out {len(result.omitted)}:")
    for item in result.omitted:
        console.print(f"  - {item.key}: {item.reason}", highlight=False)


@export_app.command("terraform")
def export_terraform_command(
    directory: DirArg,
    out: OutOpt,
    manifests: ManifestsOpt = False,
    keep_konfig_labels: LabelsOpt = False,
    force: ForceOpt = False,
) -> None:
    """Write Terraform for the google provider with one import block per resource."""
    try:
        result = export_terraform(
            desired_objects(directory, manifests), Options(keep_konfig_labels=keep_konfig_labels)
        )
        if result.problems:
            raise _Failed(result.problems)
        _write(out, result.files(), force)
    except _Failed as exc:
        raise _fail(exc) from None
    console.print(
        f"Exported {len(result.resources)} resources; {len(result.skipped)} objects not exported "
        f"(see {out / 'README.md'})"
    )
    for item in result.skipped:
        console.print(f"  - skipped {item.key}: {item.reason}", highlight=False)
    for warning in result.warnings:
        console.print(f"  - [yellow]warning[/yellow]: {warning}", highlight=False)
    for variable in result.variables:
        console.print(f"  - set variable {variable.name}: {variable.description}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the ``export`` group (``export kcc``, ``export terraform``) to the root app."""
    app.add_typer(export_app, name="export")
