"""Shared fixtures: the example organisation, loaded and compiled once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFINITIONS = ROOT / "definitions"


@pytest.fixture(scope="session")
def definitions_dir() -> Path:
    return DEFINITIONS


@pytest.fixture(scope="session")
def example_defs():
    from konfig.load import load_definitions

    return load_definitions(DEFINITIONS)


@pytest.fixture(scope="session")
def example_state(example_defs):
    from konfig.compile import compile_definitions

    return compile_definitions(example_defs)


# The real test cluster (etcd, kube-apiserver, kube-controller-manager): see tests/cluster.
from tests.cluster.fixtures import kube_cluster, real_cluster  # noqa: E402,F401
