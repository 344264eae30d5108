"""Adversarial definition trees: the minimal organisation with a template and the workloads
that use it, run through `konfig validate` (the CLI, in process) and the pipeline."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from typer.testing import CliRunner

from tests.core.orgs import CONTROL_PLANE, write_org

ROOT = Path(__file__).resolve().parents[2]

#: A small valid template, to be broken by each test.
TEMPLATE = """\
apiVersion: konfig.dev/v1alpha1
kind: ResourceTemplate
metadata: {name: box}
spec:
  parameters:
    type: object
    additionalProperties: false
    properties:
      names: {type: array, items: {type: string}, default: [a, b]}
      text: {type: string, default: x}
  access:
    read: {roles: [roles/storage.objectViewer], bindTo: bucket}
  env:
    BUCKET: "${resource.objectName}"
  services: [storage.googleapis.com]
  resources:
    - id: bucket
      template:
        apiVersion: storage.cnrm.cloud.google.com/v1beta1
        kind: StorageBucket
        metadata:
          name: "${domain.projectId}-${resource.objectName}"
        spec:
          location: EU
          uniformBucketLevelAccess: true
          publicAccessPrevention: enforced
"""

#: A workload of the minimal organisation that uses the template ``box``.
USER = """\
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata: {name: boxer}
spec:
  platform: retail
  domain: ecommerce
  resources:
    - {name: things, template: box, access: read}
"""


def write_tree(root: Path, template: str | None = TEMPLATE, **files: str) -> Path:
    """The minimal organisation, ``box.yaml`` holding ``template`` (dedented) and a workload
    using it, plus ``files``."""
    extra = dict(files)
    if template is not None:
        extra.setdefault("templates/box.yaml", textwrap.dedent(template))
        extra.setdefault("boxer.yaml", USER)
    return write_org(root, **extra)


def validate(root: Path) -> tuple[int, list[str]]:
    """``konfig validate root``: exit code and output lines (problems are ``file:line: ...``)."""
    from cli import app

    result = CliRunner().invoke(app, ["validate", str(root)])
    assert "Traceback" not in result.output, result.output
    return result.exit_code, [line for line in result.output.splitlines() if line.strip()]


def validate_in_subprocess(root: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``konfig validate`` in a child process, killed after ``timeout`` s (a hang fails)."""
    return subprocess.run(
        [sys.executable, "-c", "from cli import main; main()", "validate", str(root)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )


PROBLEM = re.compile(r"^(?P<file>[^:\s]+):(?P<line>\d+): (?P<field>[^:]+): (?P<message>.*)$")


def problem_at(lines: list[str], file: str, field: str) -> str:
    """The message of the problem at ``file`` and ``field`` (line > 0); fails if none."""
    for line in lines:
        match = PROBLEM.match(line)
        if match and match["file"] == file and match["field"] == field and int(match["line"]) > 0:
            return match["message"]
    raise AssertionError(f"no problem at {file} {field}:\n" + "\n".join(lines))


def control_plane_with(extra: str) -> str:
    """The minimal control plane with ``extra`` (YAML lines, indented under spec) appended."""
    return CONTROL_PLANE + textwrap.indent(textwrap.dedent(extra), "  ")
