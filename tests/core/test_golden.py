"""Golden tests: everything compiled for some domains of the example, byte for byte: payments
(a CMEK-encrypted production database, a domain budget), fulfilment (a GKE workload) and
inventory (a Dataflow workload).

When a change to the compiler is intended, regenerate with
``KONFIG_UPDATE_GOLDEN=1 pytest tests/core/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from konfig.compile.state import LABEL_DOMAIN

GOLDEN_DIR = Path(__file__).parent / "golden"


def _domain_slice(state, domain: str) -> dict:
    objects = [o for o in state.kubernetes if o["metadata"]["labels"].get(LABEL_DOMAIN) == domain]
    groups = [asdict(g) for g in state.gitlab.groups if g.full_path.endswith("/" + domain)]
    projects = [asdict(p) for p in state.gitlab.projects if f"/{domain}/" in p.path_with_namespace]
    return {"kubernetes": objects, "gitlab": {"groups": groups, "projects": projects}}


@pytest.mark.parametrize("domain", ["payments", "fulfilment", "inventory"])
def test_domain_matches_golden(example_state, domain):
    golden = GOLDEN_DIR / f"{domain}.yaml"
    text = yaml.safe_dump(_domain_slice(example_state, domain), sort_keys=False, width=100)
    if os.environ.get("KONFIG_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text(), f"compiled {domain} domain differs from the golden file"
