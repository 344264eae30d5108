"""A small model of how GitLab turns CI YAML into a pipeline, to test the workload template.

Job selection (rules, needs, include, extends, variables) is tested with a real engine,
gitlab-ci-local (tests/cicd/gitlab_ci_local.py). This model stays only for what gitlab-ci-local
cannot do: check a trigger job's ``trigger:include:artifact`` against its ``needs`` (it does not
create child pipelines from artifacts), and give ``runner.py`` GitLab's variable precedence with
environment-scoped variables and ``id_tokens`` (it mints no ID tokens).

It covers what the template uses, with GitLab's documented semantics:

- ``include: local`` and ``extends``: hashes merge deeply, everything else is replaced, the
  including file / extending job wins (https://docs.gitlab.com/ci/yaml/#extends,
  https://docs.gitlab.com/ci/yaml/includes/#merge-method-for-include);
- ``workflow:rules`` and job ``rules`` with ``if:`` expressions: the first matching rule decides,
  ``when: never`` excludes (https://docs.gitlab.com/ci/jobs/job_rules/);
- CI/CD variable expressions: ``$VAR``, ``==``, ``!=``, ``=~``, ``!~``, ``null``, ``&&`` (binds
  tighter) and ``||``, parentheses (https://docs.gitlab.com/ci/jobs/job_rules/#cicd-variable-expressions);
- pipeline creation errors GitLab raises for ``needs`` that name a job not in the pipeline, and
  for ``trigger:include:artifact`` from a job the trigger job does not depend on.
"""

from __future__ import annotations

import copy
import io
import json
import re
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator, FormatChecker
from ruamel.yaml import YAML

DATA = Path(__file__).resolve().parent / "data"

#: Top-level keys that are not jobs (https://docs.gitlab.com/ci/yaml/#global-keywords).
GLOBAL_KEYWORDS = frozenset(
    {"default", "include", "stages", "variables", "workflow", "image", "services", "cache",
     "before_script", "after_script", "spec"}
)

Config = dict[str, Any]
Job = dict[str, Any]


class PipelineError(Exception):
    """GitLab would refuse to create the pipeline (the message says why)."""


def load_yaml(source: str | Path) -> Any:
    """Parse YAML text (or a file) the safe way; GitLab's ``!reference`` is not used here."""
    text = Path(source).read_text() if isinstance(source, Path) else source
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


def schema_validator() -> Draft7Validator:
    """Validator for GitLab's CI schema (``data/ci-schema.json``, draft-07)."""
    schema = json.loads((DATA / "ci-schema.json").read_text())
    return Draft7Validator(schema, format_checker=FormatChecker())


def schema_errors(config: Config, validator: Draft7Validator) -> list[str]:
    """Every schema violation in ``config`` as ``path: message`` (empty when valid)."""
    return sorted(
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(config)
    )


def deep_merge(base: Any, override: Any) -> Any:
    """GitLab's merge: hashes merge key by key, recursively; any other value is replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    return copy.deepcopy(override)


def load_config(path: Path, repo_root: Path) -> Config:
    """Load a CI file and merge its ``include: local`` files into it (the file itself wins)."""
    config = load_yaml(path)
    includes = config.pop("include", [])
    if isinstance(includes, (str, dict)):
        includes = [includes]
    merged: Config = {}
    for item in includes:
        local = item if isinstance(item, str) else item["local"]
        merged = deep_merge(merged, load_config(repo_root / local.lstrip("/"), repo_root))
    return deep_merge(merged, config)


def resolve_job(config: Config, name: str, depth: int = 0) -> Job:
    """A job with its ``extends`` chain merged in (GitLab allows 11 levels)."""
    if depth > 11:
        raise PipelineError(f"{name}: extends nested too deeply")
    job = config[name]
    parents = job.get("extends", [])
    if isinstance(parents, str):
        parents = [parents]
    resolved: Job = {}
    for parent in parents:
        if parent not in config:
            raise PipelineError(f"{name}: extends unknown {parent!r}")
        resolved = deep_merge(resolved, resolve_job(config, parent, depth + 1))
    resolved = deep_merge(resolved, {k: v for k, v in job.items() if k != "extends"})
    return resolved


def job_names(config: Config) -> list[str]:
    """Names of the jobs GitLab would consider (hidden ``.jobs`` and global keys excluded)."""
    return [k for k in config if k not in GLOBAL_KEYWORDS and not k.startswith(".")]


def resolved_jobs(config: Config) -> dict[str, Job]:
    return {name: resolve_job(config, name) for name in job_names(config)}


def resolved_config(config: Config) -> Config:
    """``config`` with every job replaced by its resolved form and hidden jobs dropped, so the
    schema checks the job bodies too (it accepts anything under a hidden key)."""
    out = {k: v for k, v in config.items() if k in GLOBAL_KEYWORDS and k != "include"}
    out.update(resolved_jobs(config))
    return out


def flatten_script(lines: Any) -> list[str]:
    """A script keyword as a flat list of commands (GitLab allows one level of nesting)."""
    if lines is None:
        return []
    if isinstance(lines, str):
        return [lines]
    flat: list[str] = []
    for line in lines:
        flat.extend(flatten_script(line))
    return flat


def need_names(job: Job) -> list[str]:
    return [n if isinstance(n, str) else n["job"] for n in job.get("needs", [])]


# ---- CI/CD variable expressions ---------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<lparen>\() | (?P<rparen>\)) | (?P<and>&&) | (?P<or>\|\|)
    | (?P<op>==|!=|=~|!~)
    | (?P<var>\$\{?[A-Za-z_][A-Za-z0-9_]*\}?)
    | (?P<string>"[^"]*"|'[^']*')
    | (?P<regex>/(?:\\.|[^/\\])*/[a-z]*)
    | (?P<null>null\b)
    )""",
    re.VERBOSE,
)


def _tokens(expression: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    position = 0
    expression = expression.rstrip()
    while position < len(expression):
        match = _TOKEN.match(expression, position)
        if not match or match.end() == position:
            raise PipelineError(f"cannot parse rules:if expression {expression!r} at {position}")
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


class _Expression:
    """Recursive-descent evaluator: or := and ('||' and)* ; and := cmp ('&&' cmp)* ;
    cmp := operand (op operand)? | '(' or ')'."""

    def __init__(self, expression: str, variables: dict[str, str]) -> None:
        self.tokens = _tokens(expression)
        self.position = 0
        self.variables = variables

    def evaluate(self) -> bool:
        value = self._or()
        if self.position != len(self.tokens):
            raise PipelineError(f"unexpected {self.tokens[self.position][1]!r}")
        return value

    def _peek(self) -> str | None:
        return self.tokens[self.position][0] if self.position < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _or(self) -> bool:
        value = self._and()
        while self._peek() == "or":
            self._take()
            right = self._and()
            value = value or right
        return value

    def _and(self) -> bool:
        value = self._comparison()
        while self._peek() == "and":
            self._take()
            right = self._comparison()
            value = value and right
        return value

    def _operand(self) -> tuple[str, Any]:
        kind, text = self._take()
        if kind == "var":
            return "value", self.variables.get(text.strip("${}"))
        if kind == "string":
            return "value", text[1:-1]
        if kind == "null":
            return "value", None
        if kind == "regex":
            body, _, flags = text[1:].rpartition("/")
            return "regex", re.compile(body, re.IGNORECASE if "i" in flags else 0)
        raise PipelineError(f"unexpected {text!r}")

    def _comparison(self) -> bool:
        if self._peek() == "lparen":
            self._take()
            value = self._or()
            if self._take()[0] != "rparen":
                raise PipelineError("missing ')'")
            return value
        _, left = self._operand()
        if self._peek() != "op":
            return left is not None and left != ""  # a bare $VAR: defined and not empty
        _, op = self._take()
        kind, right = self._operand()
        if op in ("==", "!="):
            return (left == right) == (op == "==")
        if kind != "regex":
            right = re.compile(right or "")
        matched = left is not None and right.search(left) is not None
        return matched == (op == "=~")


def evaluate(expression: str, variables: dict[str, str]) -> bool:
    """Value of a ``rules:if`` expression for these variables (absent means undefined)."""
    return _Expression(expression, variables).evaluate()


def apply_rules(rules: list[dict[str, Any]] | None, variables: dict[str, str]) -> dict | None:
    """The attributes of the first matching rule, or None when the job (or pipeline) is not
    created: no rule matched, or the match says ``when: never``. No rules: always created."""
    if rules is None:
        return {}
    for rule in rules:
        if "if" not in rule or evaluate(rule["if"], variables):
            return None if rule.get("when") == "never" else rule
    return None


def create_pipeline(config: Config, variables: dict[str, str]) -> dict[str, Job] | None:
    """The jobs GitLab creates for a push with these predefined ``variables`` (None: no
    pipeline). Raises :class:`PipelineError` where GitLab would refuse the configuration."""
    workflow = config.get("workflow", {})
    if apply_rules(workflow.get("rules"), variables) is None:
        return None
    jobs: dict[str, Job] = {}
    for name, job in resolved_jobs(config).items():
        rule = apply_rules(job.get("rules"), variables)
        if rule is None:
            continue
        job = dict(job)
        if "when" in rule:
            job["when"] = rule["when"]
        jobs[name] = job
    if not jobs:
        raise PipelineError("No stages / jobs for this pipeline.")
    stages = config.get("stages", ["build", "test", "deploy"])
    for name, job in jobs.items():
        stage = job.get("stage", "test")
        if stage not in stages:
            raise PipelineError(f"{name}: chosen stage {stage} does not exist")
        for need in job.get("needs", []):
            needed = need if isinstance(need, str) else need["job"]
            optional = isinstance(need, dict) and need.get("optional", False)
            if needed not in jobs and not optional:
                raise PipelineError(f"'{name}' job needs '{needed}' job, but it is not in the pipeline")
            if needed in jobs and stages.index(jobs[needed].get("stage", "test")) > stages.index(stage):
                raise PipelineError(f"{name}: needs {needed}, which runs in a later stage")
        include = (job.get("trigger") or {}).get("include") if isinstance(job.get("trigger"), dict) else None
        for item in include if isinstance(include, list) else []:
            if "artifact" not in item:
                continue
            source = jobs.get(item["job"])
            earlier = source is not None and stages.index(source.get("stage", "test")) < stages.index(stage)
            if item["job"] not in need_names(job) and not ("needs" not in job and earlier):
                raise PipelineError(f"{name}: includes an artifact of {item['job']}, which it does not depend on")
    return jobs
