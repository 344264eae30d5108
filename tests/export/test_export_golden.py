"""The Terraform export against the upstream Config Connector converter's golden pairs.

tests/export/data/golden/ holds, byte for byte, the KRM inputs and expected HCL of the KCC
CLI's KRM-to-HCL converter (pkg/cli/krmtohcl/testdata, see data/SOURCE.md). Each golden file
is a license header, one ``resource`` block and a ``# terraform import TYPE.NAME ID`` comment.
The export is run the way upstream runs (resource names without namespace, Config Connector's
``managed-by-cnrm`` label added), and must give the same resource block and the same ID.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from export_helpers import DATA, load_yaml_docs, parse_terraform_dir

from konfig.export import Options, export_terraform, write_files
from konfig.export.hcl import render_block

GOLDEN = DATA / "golden"
CASES = sorted(p.name[: -len(".yaml")] for p in GOLDEN.glob("*.yaml"))
UPSTREAM = Options(managed_by_cnrm_label=True, keep_konfig_labels=True)

#: Import IDs of the public provider resources where upstream prints KCC-internal ones
#: (from each resource's "Import" section in the google provider documentation).
PROVIDER_IMPORT_IDS = {
    "iamcustomroleorganization": "organizations/1234567/roles/iamcustomrolesampleorganization",
    "iamcustomroleproject": "projects/my-project/roles/iamcustomrolesampleproject",
    "logginglogsink-project1": "folders/logginglogsink-dep-folder/sinks/logginglogsink-sample-folder",
}


def _golden(case: str) -> tuple[str, str, str]:
    """(resource block, address, import ID) of a golden file."""
    text = (GOLDEN / f"{case}.golden.tf").read_text(encoding="utf-8")
    body = text.split("*/\n\n", 1)[1]
    block, comment = body.rsplit("# terraform import ", 1)
    address, import_id = comment.split()
    return block, address, import_id


def test_every_golden_pair_is_used() -> None:
    assert len(CASES) == 6
    assert all((GOLDEN / f"{case}.golden.tf").exists() for case in CASES)


@pytest.mark.parametrize("case", CASES)
def test_resource_block_matches_upstream(case: str) -> None:
    block, address, _ = _golden(case)
    export = export_terraform(load_yaml_docs(GOLDEN / f"{case}.yaml"), UPSTREAM)
    assert export.problems == [] and export.skipped == []
    (resource,) = export.resources
    assert resource.address == address
    assert render_block(resource.resource_block()) == block


@pytest.mark.parametrize("case", CASES)
def test_import_id_matches_upstream(case: str) -> None:
    _, _, upstream_id = _golden(case)
    (resource,) = export_terraform(load_yaml_docs(GOLDEN / f"{case}.yaml"), UPSTREAM).resources
    assert resource.kcc_import_id == upstream_id
    assert resource.import_id == PROVIDER_IMPORT_IDS.get(case, upstream_id)


@pytest.mark.parametrize("case", CASES)
def test_exported_folder_parses_with_terraform(case: str, tmp_path: Path) -> None:
    export = export_terraform(load_yaml_docs(GOLDEN / f"{case}.yaml"))
    write_files(tmp_path, export.files())
    parsed = parse_terraform_dir(tmp_path)
    parsed.check_references()
    (resource,) = export.resources
    assert list(parsed.resources) == [resource.address]
    assert parsed.imports() == {resource.address: f'"{resource.import_id}"'}


def test_walk_away_export_has_no_config_connector_label() -> None:
    (resource,) = export_terraform(load_yaml_docs(GOLDEN / "storagebucket.yaml")).resources
    text = render_block(resource.resource_block())
    assert "managed-by-cnrm" not in text
    assert re.search(r"^  force_destroy += false$", text, re.MULTILINE)
