"""Two plans of the same definitions are identical, whatever the file layout or order."""

from __future__ import annotations

import json
import shutil

from konfig.compile import compile_definitions
from konfig.load import load_definitions


def _plan_json(path) -> str:
    return json.dumps(compile_definitions(load_definitions(path)).to_json(), sort_keys=True)


def test_two_plans_are_identical(definitions_dir):
    assert _plan_json(definitions_dir) == _plan_json(definitions_dir)


def test_file_layout_does_not_matter(definitions_dir, tmp_path):
    # Same documents, other file names and folders (reverse order): same desired state.
    files = sorted(definitions_dir.rglob("*.yaml"))
    for i, file in enumerate(reversed(files)):
        target = tmp_path / f"z{i:02d}" / f"{i:02d}-{file.name}"
        target.parent.mkdir()
        shutil.copy(file, target)
    assert _plan_json(tmp_path) == _plan_json(definitions_dir)
