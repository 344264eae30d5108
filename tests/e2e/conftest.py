"""End-to-end fixtures: a real kube-apiserver (etcd, kube-controller-manager, the shipped CRDs
and a Config Connector stand-in: tests/cluster) and the fake GitLab on 127.0.0.1, the real kopf
operator in a thread, and ``konfig apply`` logic, all through real HTTP clients."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest

from konfig.load import load_definitions
from konfig.operator.sandbox import Sandbox

from tests.cluster.backend import RealKube

ROOT = Path(__file__).resolve().parents[2]


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, poll: float = 0.05,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(poll)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A writable copy of the example definitions."""
    target = tmp_path / "definitions"
    shutil.copytree(ROOT / "definitions", target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new))


@pytest.fixture
def sandbox_for(kube_cluster) -> Iterator[Callable[..., Sandbox]]:
    """Make a started sandbox for a definitions folder on the worker's real cluster, emptied
    for the test (stopped at teardown)."""
    made: list[Sandbox] = []

    def make(path: Path, **kwargs: Any) -> Sandbox:
        kwargs.setdefault("kube", RealKube(kube_cluster))
        sandbox = Sandbox(load_definitions(path), **kwargs).start()
        made.append(sandbox)
        return sandbox

    yield make
    for sandbox in made:
        sandbox.stop()
