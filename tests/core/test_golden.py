"""Golden test: everything compiled for one domain (payments), byte for byte.

When a change to the compiler is intended, regenerate with
``KONFIG_UPDATE_GOLDEN=1 pytest tests/core/test_golden.py`` and review the diff.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import yaml

from konfig.compile.state import LABEL_DOMAIN

GOLDEN = Path(__file__).parent / "golden" / "payments.yaml"


def _domain_slice(state, domain: str) -> dict:
    objects = [o for o in state.kubernetes if o["metadata"]["labels"].get(LABEL_DOMAIN) == domain]
    groups = [asdict(g) for g in state.gitlab.groups if g.full_path.endswith("/" + domain)]
    projects = [asdict(p) for p in state.gitlab.projects if f"/{domain}/" in p.path_with_namespace]
    return {"kubernetes": objects, "gitlab": {"groups": groups, "projects": projects}}


def test_payments_domain_matches_golden(example_state):
    text = yaml.safe_dump(_domain_slice(example_state, "payments"), sort_keys=False, width=100)
    if os.environ.get("KONFIG_UPDATE_GOLDEN"):
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text(), "compiled payments domain differs from the golden file"
