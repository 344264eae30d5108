"""Runs one job of a pipeline the way a GitLab runner would, against fake cloud CLIs.

The job's ``before_script`` and ``script`` run in one ``sh -e`` session, ``after_script`` in a
second one, in a copy of the template checkout. Variables follow GitLab's precedence (lowest
first: predefined, global YAML, job YAML, dotenv, group unscoped, group scoped to the job's
environment; https://docs.gitlab.com/ci/variables/#cicd-variable-precedence) and references
between them are expanded. Each ``id_tokens`` entry becomes an unsigned JWT carrying its
expanded ``aud``. gcloud, docker, kubectl and konfig on PATH are ``fake_cli.py``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .conftest import TEMPLATE, Context, GroupVariables
from .gitlab_ci import Config, flatten_script, resolve_job

FAKE_CLI = Path(__file__).resolve().parent / "fake_cli.py"
_REFERENCE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def expand(value: str, variables: dict[str, str]) -> str:
    """Expand ``$VAR`` / ``${VAR}`` like GitLab does in variable values (unknown: empty)."""
    for _ in range(10):
        expanded = _REFERENCE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), value)
        if expanded == value:
            break
        value = expanded
    return value


def fake_jwt(claims: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none'})}.{part(claims)}.signature"


@dataclass
class JobRun:
    returncode: int
    output: str
    after_returncode: int
    variables: dict[str, str]
    calls: list[dict[str, Any]] = field(default_factory=list)


class Workspace:
    """A checkout of the template plus the fake tools and their recorded calls."""

    def __init__(self, root: Path, group: GroupVariables, context: Context) -> None:
        self.root = root
        self.project = root / "project"
        shutil.copytree(TEMPLATE, self.project)
        self.state = root / "state"
        self.state.mkdir()
        self.bin = root / "bin"
        self.bin.mkdir()
        for tool in ("gcloud", "docker", "kubectl", "konfig"):
            wrapper = self.bin / tool
            wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE_CLI}" {tool} "$@"\n')
            wrapper.chmod(0o755)
        self.home = root / "home"
        self.home.mkdir()
        self.group = group
        self.context = context
        self.job_id = 900000 + int.from_bytes(os.urandom(3), "big")

    def calls(self) -> list[dict[str, Any]]:
        log = self.state / "calls.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def variables_for(self, config: Config, job: dict[str, Any], dotenv: dict[str, str]) -> dict[str, str]:
        self.job_id += 1
        environment = (job.get("environment") or {}).get("name")
        variables: dict[str, str] = {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_JOB_ID": str(self.job_id),
            "CI_PROJECT_NAME": "checkout",
            "CI_PROJECT_DIR": str(self.project),
            "CI_COMMIT_SHA": "0123456789abcdef0123456789abcdef01234567",
            **self.context.predefined(),
        }
        if environment:
            variables["CI_ENVIRONMENT_NAME"] = environment
        variables.update({k: str(v) for k, v in (config.get("variables") or {}).items()})
        variables.update({k: str(v) for k, v in (job.get("variables") or {}).items()})
        variables.update(dotenv)
        variables.update(self.group.for_environment(environment))
        resolved = {name: expand(value, variables) for name, value in variables.items()}
        for name, token in (job.get("id_tokens") or {}).items():
            resolved[name] = fake_jwt({"aud": expand(token["aud"], resolved), "sub": "project_path:acme/checkout"})
        return resolved

    def run(self, config: Config, name: str, dotenv: dict[str, str] | None = None) -> JobRun:
        job = resolve_job(config, name)
        variables = self.variables_for(config, job, dotenv or {})
        env = {
            **variables,
            "PATH": f"{self.bin}:/usr/bin:/bin",
            "HOME": str(self.home),
            "FAKE_STATE": str(self.state),
        }
        before = len(self.calls())
        main = "\n".join(flatten_script(job.get("before_script")) + flatten_script(job.get("script")))
        result = subprocess.run(
            ["sh", "-e", "-c", main], cwd=self.project, env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )
        after = subprocess.run(
            ["sh", "-c", "\n".join(flatten_script(job.get("after_script")))], cwd=self.project,
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )
        return JobRun(
            returncode=result.returncode,
            output=result.stdout + result.stderr,
            after_returncode=after.returncode,
            variables=variables,
            calls=self.calls()[before:],
        )

    def dotenv(self, path: str) -> dict[str, str]:
        """A dotenv report as GitLab reads it: ``KEY=VALUE`` lines."""
        pairs = (line.split("=", 1) for line in (self.project / path).read_text().splitlines() if line)
        return {key: value for key, value in pairs}
