"""Kubernetes-facing commands: ``konfig crds`` (more, such as ``apply``, join this module).

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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``konfig`` app."""
    app.command("crds")(crds_command)
