"""Property-based fuzzing of load → validate → compile (hypothesis): the example organisation
and the bundled templates, mutated at random (values replaced with hostile ones, keys dropped
or added, YAML text spliced), must never raise anything but a located DefinitionError, never
run past the deadline, and every output that compiles must hold the security invariants.

The suite runs a bounded number of examples; a longer run (README, "Guardrails"):

    KONFIG_FUZZ_EXAMPLES=2000 .venv/bin/pytest tests/fuzz -q
"""

from __future__ import annotations

import os
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from konfig.errors import DefinitionError
from konfig.pipeline import load_and_compile
from konfig.resources import bundled_dir
from tests.fuzz.invariants import violations

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("KONFIG_FUZZ_EXAMPLES", "40"))
#: The bounded run is reproducible; a long run (KONFIG_FUZZ_EXAMPLES set) explores afresh.
DERANDOMIZE = "KONFIG_FUZZ_EXAMPLES" not in os.environ


def _documents() -> list[tuple[str, Any]]:
    """``(relative file, parsed document)`` of the example organisation and the bundled
    templates (copied into the tree, so they are the ones mutated)."""
    out = []
    for base, prefix in ((ROOT / "definitions", ""), (bundled_dir("resource-templates"), "resource-templates/")):
        for path in sorted(base.rglob("*.yaml")):
            name = prefix + str(path.relative_to(base))
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
            for i, document in enumerate(documents):  # one file per document
                out.append((name if i == 0 else name.replace(".yaml", f".{i}.yaml"), document))
    return out


DOCUMENTS = _documents()

HOSTILE_STRINGS = [
    "roles/owner", "roles/editor", "roles/iam.serviceAccountTokenCreator", "allUsers",
    "allAuthenticatedUsers", "user:mallory@example.com", "delete", "abandon", "konfig-system",
    "${params.x}", "${controlPlane.projectId}", "${'a'.replace('a', 'aaaaaaaaaaaaaaaa')}",
    "${lists.range(100000000)}", "${[1,2,3].map(a, [1,2,3].map(b, [1,2,3].map(c, a)))}",
    "${", "$${x}", "projects/other-project-123/topics/t", "IAMPolicy", "IAMServiceAccountKey",
    "iam.cnrm.cloud.google.com/v1beta1", "alpine; curl x | sh", "a\nb", "\"quoted\"", "", " ",
    "x" * 300, "../../etc/passwd", "cnrm.cloud.google.com/deletion-policy", "inherited",
    "0.0.0.0/0", "INGRESS_TRAFFIC_ALL", "prod", "dev", "production", "nonproduction",
]
SCALARS = st.one_of(
    st.sampled_from(HOSTILE_STRINGS), st.integers(-2, 10**12), st.booleans(), st.none(),
    st.text(max_size=40), st.floats(allow_nan=True),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(HOSTILE_STRINGS + ["spec", "name", "role"]), inner, max_size=3)),
    max_leaves=8)


def _paths(node: Any, path: tuple = ()) -> list[tuple]:
    """Every path to a value in a document (keys and indexes)."""
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, path + (i,))
    return out


def _apply(document: Any, path: tuple, operation: str, value: Any) -> Any:
    if not path:
        return value if operation == "replace" else document
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if operation == "replace":
        parent[last] = value
    elif operation == "delete":
        del parent[last]
    elif operation == "add" and isinstance(parent[last], dict):
        parent[last][str(value)[:20] or "k"] = value
    elif operation == "add" and isinstance(parent[last], list):
        parent[last].append(value)
    return document


TEMPLATES = [i for i, (_, doc) in enumerate(DOCUMENTS) if isinstance(doc, dict) and doc.get("kind") == "ResourceTemplate"]
#: Template-level attacks: where a template can try to break an invariant.
TEMPLATE_FIELDS = [
    ("metadata", "annotations", "cnrm.cloud.google.com/deletion-policy"),
    ("metadata", "annotations", "cnrm.cloud.google.com/project-id"),
    ("metadata", "labels", "konfig-domain"),
    ("metadata", "namespace"),
    ("spec", "publicAccessPrevention"),
    ("spec", "member"),
    ("spec", "projectRef"),
    ("spec", "settings", "ipConfiguration", "ipv4Enabled"),
    ("kind",),
    ("apiVersion",),
]
KINDS = ["IAMPolicy", "IAMPolicyMember", "IAMPartialPolicy", "IAMServiceAccount", "Project",
         "Folder", "StorageBucket", "SQLInstance", "ComputeAddress", "RunService", "PubSubTopic"]
TEMPLATE_MUTATION = st.tuples(
    st.sampled_from(TEMPLATES), st.integers(0, 10), st.sampled_from(TEMPLATE_FIELDS),
    st.one_of(SCALARS, st.sampled_from(KINDS), st.just({"external": "projects/acme-retail-cp"})),
    st.sampled_from(HOSTILE_STRINGS[:6]),
)


def _attack_template(document: dict, resource: int, fields: tuple, value: Any, role: str) -> None:
    spec = document.setdefault("spec", {})
    resources = spec.get("resources") or []
    if resources and fields != ("access",):
        manifest = resources[resource % len(resources)].setdefault("template", {})
        node = manifest
        for part in fields[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[fields[-1]] = value
    access = spec.get("access") or {}
    if access and resource % 3 == 0:  # and sometimes a hostile role
        name = sorted(access)[resource % len(access)]
        access[name] = [role]


MUTATION = st.tuples(
    st.integers(0, len(DOCUMENTS) - 1),        # which document
    st.integers(0, 10**6),                     # which path in it (modulo)
    st.sampled_from(["replace", "replace", "delete", "add", "splice"]),
    VALUES,
)


def _mutated_tree(root: Path, mutations: list, attacks: list = ()) -> None:
    import copy

    documents = [(name, copy.deepcopy(doc)) for name, doc in DOCUMENTS]
    spliced: dict[int, str] = {}
    for index, resource, fields, value, role in attacks:
        _attack_template(documents[index][1], resource, fields, value, role)
    for index, which, operation, value in mutations:
        name, document = documents[index]
        if operation == "splice":  # text-level: hostile YAML spliced into the file
            text = spliced.get(index) or yaml.safe_dump(document, sort_keys=False)
            at = which % (len(text) + 1)
            spliced[index] = text[:at] + str(value if value is not None else "&a [*a]") + text[at:]
            continue
        paths = _paths(document)
        documents[index] = (name, _apply(document, paths[which % len(paths)], operation, value))
    for index, (name, document) in enumerate(documents):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = spliced.get(index)
        path.write_text(text if text is not None else yaml.safe_dump(document, sort_keys=False))


@settings(max_examples=EXAMPLES, deadline=timedelta(seconds=20), derandomize=DERANDOMIZE, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(MUTATION, max_size=3), st.lists(TEMPLATE_MUTATION, max_size=2))
def test_mutated_definitions_fail_cleanly_or_hold_the_invariants(mutations, attacks):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _mutated_tree(root, mutations, attacks)
        try:
            defs, state = load_and_compile(root)
        except DefinitionError as error:
            event("refused")
            for problem in error.problems:
                assert problem.location.file not in ("<compiled>", "<rendered>", "<memory>"), str(problem)
                assert "errors.pydantic.dev" not in problem.message, str(problem)
            return
        event("compiled")
        assert violations(defs, state) == []


def test_the_unmutated_example_holds_the_invariants(example_defs, example_state):
    assert violations(example_defs, example_state) == []
