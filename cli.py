"""The ``konfig`` command: a thin shell over the core and the adapters.

Each group of commands lives in its own module under :mod:`konfig.commands`, which parses,
calls the core or an adapter, and prints; this file only assembles them.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="konfig",
    help="Konfig: GitOps platform-as-code for Google Cloud and GitLab.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

#: Command modules, each exposing ``register(app)``.
COMMAND_MODULES = (
    "konfig.commands.core",  # validate, plan, schema
    "konfig.commands.gitlab",  # sync gitlab
    "konfig.commands.kube",  # apply, crds
    "konfig.commands.diff",  # diff
    "konfig.commands.operator",  # operator, sandbox
    "konfig.commands.gcp",  # bootstrap, doctor
    "konfig.commands.export",  # export kcc, export terraform
    "konfig.commands.day2",  # promote, break-glass
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
