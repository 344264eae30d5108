"""Files: symlinks that leave the folder or loop are errors; hidden files and folders are
skipped and listed (docs/definitions.md, "Files")."""

from __future__ import annotations

import os

from tests.guardrails.helpers import validate, write_tree
from tests.core.orgs import WORKLOAD


def test_a_symlink_to_a_file_outside_the_folder_is_an_error(tmp_path):
    outside = tmp_path / "outside.yaml"
    outside.write_text(WORKLOAD.replace("name: checkout", "name: stolen"))
    root = write_tree(tmp_path / "defs")
    os.symlink(outside, root / "stolen.yaml")
    code, lines = validate(root)
    assert code == 1
    assert any(line.startswith("stolen.yaml:") and "outside the definitions folder" in line
               for line in lines), lines


def test_a_symlinked_folder_outside_is_an_error(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "w.yaml").write_text(WORKLOAD.replace("name: checkout", "name: other"))
    root = write_tree(tmp_path / "defs")
    os.symlink(tmp_path / "elsewhere", root / "more")
    code, lines = validate(root)
    assert code == 1
    assert any(line.startswith("more:") and "outside the definitions folder" in line for line in lines), lines


def test_a_symlink_loop_is_an_error(tmp_path):
    root = write_tree(tmp_path)
    os.symlink("b.yaml", root / "a.yaml")
    os.symlink("a.yaml", root / "b.yaml")
    os.symlink(".", root / "self")
    code, lines = validate(root)
    assert code == 1
    assert any(line.startswith("a.yaml:") and "symlink loop" in line for line in lines), lines
    assert any(line.startswith("self:") and "symlink loop" in line for line in lines), lines


def test_a_symlinked_file_inside_the_folder_is_read(tmp_path):
    root = write_tree(tmp_path, **{"real/extra.yaml": WORKLOAD.replace("name: checkout", "name: extra")})
    os.symlink("real/extra.yaml", root / "link.yaml")
    code, lines = validate(root)
    assert code == 1  # read twice: through the link and where it is
    assert any("duplicate Workload 'extra'" in line for line in lines), lines


def test_hidden_files_and_folders_are_skipped_and_listed(tmp_path):
    root = write_tree(tmp_path, **{
        ".hidden/cart.yaml": WORKLOAD.replace("name: checkout", "name: cart"),
        ".draft.yaml": WORKLOAD.replace("name: checkout", "name: draft"),
    })
    code, lines = validate(root)
    assert code == 0, lines
    listing = " ".join(lines)
    assert "skipped" in listing and ".hidden/" in listing and ".draft.yaml" in listing
