"""Commands of this group are not implemented yet."""

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root ``konfig`` app."""
