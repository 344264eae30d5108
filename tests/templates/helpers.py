"""Builders shared by the template tests: templates and requests parsed from YAML text with
line numbers (as the loader does), environments and render contexts."""

from __future__ import annotations

import textwrap
from typing import Any

from konfig.compile.templates import sample_context
from konfig.errors import Location
from konfig.model.controlplane import Environment
from konfig.model.template import ResourceTemplate
from konfig.model.workload import ResourceRequest
from konfig.yamlsource import parse_documents

DEV = Environment(name="dev")
STAGE = Environment(name="stage")
PROD = Environment(name="prod", production=True)


def template_from_yaml(text: str, file: str = "resource-templates/t.yaml") -> ResourceTemplate:
    """A template parsed from ``text`` (dedented) with its field → line map bound."""
    documents, problems = parse_documents(textwrap.dedent(text))
    assert not problems, problems
    (document,) = documents
    template = ResourceTemplate.model_validate(document.data)
    template.bind_source(Location(file, document.line), document.lines)
    return template


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line of dedented ``text`` containing ``needle``."""
    for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in text")


def request(access: str = "rw", name: str = "orders", **params: Any) -> ResourceRequest:
    return ResourceRequest(name=name, template="t", access=access, params=params)


def context(
    environment: Environment = DEV, *, workload: str = "checkout", resource: str = "orders"
) -> dict[str, Any]:
    """A render context shaped like the compiler's, for ``workload``/``resource``."""
    ctx = sample_context(None, environment, access="rw")
    ctx["workload"]["name"] = workload
    ctx["workload"]["serviceAccount"] = {
        "name": f"wl-{workload}",
        "email": f"wl-{workload}@{ctx['domain']['projectId']}.iam.gserviceaccount.com",
    }
    ctx["resource"] = {"name": resource, "access": "rw", "objectName": f"{workload}-{resource}"}
    return ctx
