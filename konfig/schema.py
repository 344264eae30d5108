"""JSON Schema of the definitions, generated from the pydantic models (the single source)."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from konfig.model import KINDS

SCHEMA_ID = "https://konfig.dev/schemas/v1alpha1/definitions.json"


def definitions_json_schema(kind: str | None = None) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) accepting any one definition, discriminated by ``kind``;
    or only ``kind``'s schema. Raises ``KeyError`` for an unknown kind."""
    if kind is not None:
        if kind not in KINDS:
            raise KeyError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        document = KINDS[kind].model_json_schema(by_alias=True, mode="validation")
    else:
        union = Annotated[Union[tuple(KINDS.values())], Field(discriminator="kind")]
        document = TypeAdapter(union).json_schema(by_alias=True, mode="validation")
        document["title"] = "Konfig definition (konfig.dev/v1alpha1)"
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = SCHEMA_ID if kind is None else SCHEMA_ID.replace("definitions", kind.lower())
    return document
