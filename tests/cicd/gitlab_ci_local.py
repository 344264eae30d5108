"""GitLab CI semantics from a real engine: gitlab-ci-local (npm), pinned in
``tests/cicd/gitlab-ci-local/package-lock.json``.

:func:`install` runs ``npm ci`` once per machine into a cache folder outside the clone
(``$KONFIG_TOOLS_CACHE``, default ``~/.cache/konfig``), keyed by the lock file's hash, under a
file lock so parallel test workers install it once. ``sh tests/cicd/setup-gitlab-ci-local.sh``
does the same from the shell (the README's test command runs it first).

:class:`Repository` is a git checkout of a template (gitlab-ci-local reads the commit, the
remote and the tracked files from git) on which pipelines are listed (job selection by
``workflow:rules``, ``rules`` with ``if``/``exists``, ``needs``, ``include``, ``extends``,
variables) and jobs run with ``--force-shell-executor`` against the fake tools on ``PATH``.

What gitlab-ci-local cannot do, and tests/cicd/gitlab_ci.py (the home-made model) still covers:
it does not mint ``id_tokens`` (tests pass the token as a variable), and it does not create a
child pipeline from ``trigger:include:artifact`` (tests list the generated file as a pipeline
of its own). GitLab's environment-scoped and protected CI/CD variables are also not modelled:
tests pass the variables a job of that environment and ref would receive.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

PACKAGE = Path(__file__).resolve().parent / "gitlab-ci-local"
GIT_IDENTITY = ["-c", "user.email=ci@example.com", "-c", "user.name=CI"]


def cache_root() -> Path:
    return Path(os.environ.get("KONFIG_TOOLS_CACHE") or Path.home() / ".cache" / "konfig")


def install() -> Path:
    """The gitlab-ci-local executable, installed with ``npm ci`` on first use. Raises
    ``RuntimeError`` with what is missing (Node.js 20+ with npm, rsync, the npm registry)."""
    lock = (PACKAGE / "package-lock.json").read_bytes()
    target = cache_root() / f"gitlab-ci-local-{hashlib.sha256(lock).hexdigest()[:12]}"
    executable = target / "node_modules" / ".bin" / "gitlab-ci-local"
    if executable.exists():
        return executable
    for tool, why in (("npm", "Node.js 20+ with npm"), ("rsync", "rsync (apt-get install rsync)")):
        if shutil.which(tool) is None:
            raise RuntimeError(f"gitlab-ci-local needs {why}: run sh tests/cicd/setup-gitlab-ci-local.sh")
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / "gitlab-ci-local.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if executable.exists():
            return executable
        staging = target.with_name(target.name + f".tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        for name in ("package.json", "package-lock.json"):
            shutil.copy(PACKAGE / name, staging / name)
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                                cwd=staging, capture_output=True, text=True, timeout=600,
                                check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(f"npm ci of gitlab-ci-local failed:\n{result.stderr[-2000:]}")
        staging.rename(target)
    return executable


@dataclass
class Run:
    returncode: int
    output: str


class Repository:
    """A git repository holding ``template`` (plus ``files``), with an ``origin`` remote named
    like its GitLab project, and the ``env`` the engine (and so every shell job) runs with."""

    def __init__(self, root: Path, template: Path, *, project_url: str,
                 files: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None):
        self.path = root
        shutil.copytree(template, root)
        for name, text in (files or {}).items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        # Tests set predefined variables on purpose (a tag push, a merge request).
        self.env = {**os.environ, "GCL_IGNORE_PREDEFINED_VARS": ",".join(_PREDEFINED + (
            "CI_COMMIT_REF_PROTECTED",)), **(env or {})}
        self.git("init", "-q", "-b", "main")
        self.git("remote", "add", "origin", project_url)
        self.git("add", "-A")
        self.git(*GIT_IDENTITY, "commit", "-q", "-m", "from the template")
        self.executable = install()

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True,
                              check=True, timeout=60).stdout.strip()

    @property
    def sha(self) -> str:
        return self.git("rev-parse", "HEAD")

    def commit(self, files: Mapping[str, str], message: str = "change") -> str:
        for name, text in files.items():
            (self.path / name).parent.mkdir(parents=True, exist_ok=True)
            (self.path / name).write_text(text)
        self.git("add", "-A")
        self.git(*GIT_IDENTITY, "commit", "-q", "-m", message)
        return self.sha

    def _command(self, variables: Mapping[str, str], unset: tuple[str, ...], file: str | None,
                 schema: bool) -> list[str]:
        command = [str(self.executable), "--no-color"]  # run with cwd=the repository
        if file:
            command += ["--file", file]
        if not schema:
            command.append("--no-json-schema-validation")
        for name, value in variables.items():
            command += ["--variable", f"{name}={value}"]
        for name in unset:
            command += ["--unset-variable", name]
        return command

    def jobs(self, variables: Mapping[str, str], *, unset: tuple[str, ...] = (),
             file: str | None = None, schema: bool = False) -> dict[str, dict[str, Any]]:
        """The jobs GitLab would create for a pipeline with these variables (jobs whose
        rules say ``never`` left out), by name, as gitlab-ci-local lists them."""
        result = subprocess.run(
            [*self._command(variables, unset, file, schema), "--list-json"], cwd=self.path,
            env=self.env, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise AssertionError(f"gitlab-ci-local --list-json failed:\n{result.stdout}\n"
                                 f"{result.stderr}")
        # Warnings (overridden predefined variables, say) come first on stdout.
        start = result.stdout.find("\n[")
        listed = json.loads(result.stdout if result.stdout.startswith("[")
                            else result.stdout[start + 1:])
        return {job["name"]: job for job in listed if job.get("when") != "never"}

    def run(self, job: str, variables: Mapping[str, str], *, unset: tuple[str, ...] = (),
            file: str | None = None, env: Mapping[str, str] | None = None) -> Run:
        """Run one job in shell mode (``--force-shell-executor``: the images are not pulled;
        the fake tools on ``PATH`` stand in for theirs)."""
        result = subprocess.run(
            [*self._command(variables, unset, file, False), "--force-shell-executor", job],
            cwd=self.path, env={**self.env, **(env or {})}, capture_output=True, text=True,
            timeout=300, check=False)
        return Run(result.returncode, result.stdout + result.stderr)

    def artifact(self, job: str, name: str) -> Path:
        """A job's artifact (``paths:``) as gitlab-ci-local keeps it (``:`` in job names is
        written ``Og`` in its folder names)."""
        return self.path / ".gitlab-ci-local" / "artifacts" / job.replace(":", "Og") / name

    def dotenv(self, job: str, name: str) -> Path:
        """A job's ``artifacts:reports:dotenv`` file."""
        return self.artifact(job, f".gitlab-ci-reports/dotenv/{name}")


_PREDEFINED = ("CI_COMMIT_BRANCH", "CI_COMMIT_TAG", "CI_COMMIT_REF_NAME", "CI_PIPELINE_SOURCE",
               "CI_DEFAULT_BRANCH", "CI_MERGE_REQUEST_IID")


def created_pipeline(repo: Repository, predefined: Mapping[str, str], *,
                     text: str | None = None) -> dict[str, dict[str, Any]] | None:
    """The jobs GitLab creates for a push with these predefined variables, as gitlab-ci-local
    evaluates ``workflow:rules``, job ``rules``, ``include`` and ``extends``, with every
    ``needs`` checked (``--validate-dependency-chain``); ``None`` when no pipeline is created.
    ``text`` is another pipeline file of the repository (a generated child pipeline); bodies
    come from ``--preview`` (includes and extends expanded)."""
    from ruamel.yaml import YAML

    file = None
    if text is not None:
        file = f"pipeline-{hashlib.sha256(text.encode()).hexdigest()[:12]}.yml"
        (repo.path / file).write_text(text)
    unset = tuple(v for v in _PREDEFINED if v not in predefined)
    selected = repo.jobs(predefined, unset=unset, file=file)
    if not selected:
        return None
    base = repo._command(predefined, unset, file, False)
    # A job may need a manual (blocking) job: it waits until someone runs it. Validate the
    # chain as if every manual job were run.
    manual = [arg for name, job in selected.items() if job.get("when") == "manual"
              for arg in ("--manual", name)]
    check = subprocess.run([*base, *manual, "--validate-dependency-chain"], cwd=repo.path,
                           env=repo.env,
                           capture_output=True, text=True, timeout=120, check=False)
    problems = [line for line in (check.stdout + check.stderr).splitlines()
                if " is " in line and "needed by" in line or "needs" in line.lower()
                and "not" in line]
    # gitlab-ci-local (4.72) also reports a job that needs a blocking manual job, even with
    # --manual; GitLab accepts it (the job waits for the manual one: https://docs.gitlab.com/
    # ci/jobs/job_control/#types-of-manual-jobs), so that one message is not a refusal.
    problems = [p for p in problems if "is when:manual, its needed by" not in p]
    if check.returncode != 0 and (problems or "when:manual" not in check.stdout + check.stderr):
        raise AssertionError(f"GitLab would refuse this pipeline:\n{check.stdout}{check.stderr}")
    preview = subprocess.run([*base, "--preview"], cwd=repo.path, env=repo.env,
                             capture_output=True, text=True, timeout=120, check=True).stdout
    expanded = YAML(typ="safe").load(preview[preview.index("---"):])
    return {name: expanded[name] for name in selected}
