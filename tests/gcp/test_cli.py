"""`konfig bootstrap` and `konfig doctor` end to end: definitions on disk, the CLI, the real
clients, the fakes reached through the KONFIG_GCP_*_ENDPOINT variables."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from cli import app

from .conftest import CONTROL_PLANE_YAML

PROJECT_ID = "acme-acme-cp"


@pytest.fixture
def definitions(tmp_path):
    (tmp_path / "control-plane.yaml").write_text(CONTROL_PLANE_YAML)
    return tmp_path


def run(fakes, *args):
    result = CliRunner().invoke(app, list(args), env={**fakes.env, "COLUMNS": "200"})
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def test_dry_run_prints_the_plan_and_changes_nothing(fakes, definitions):
    result = run(fakes, "bootstrap", str(definitions), "--dry-run")

    assert result.exit_code == 0, result.output
    assert "create folder" in result.output and "create project" in result.output
    assert "dry run" in result.output
    assert fakes.writes() == [] and fakes.rm.folders() == []


def test_bootstrap_then_doctor_round_trip(fakes, definitions):
    doctor_before = run(fakes, "doctor", str(definitions))
    assert doctor_before.exit_code == 1
    assert "MISSING" in doctor_before.output

    first = run(fakes, "bootstrap", str(definitions))
    assert first.exit_code == 0, first.output
    number = fakes.rm.projects()[0].name.split("/")[1]
    assert f"Project number: {number}" in first.output
    assert "spec.gcp.projectNumber" in first.output

    second = run(fakes, "bootstrap", str(definitions))
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.output
    assert len(fakes.rm.folders()) == 1 and len(fakes.rm.projects()) == 1

    # Only the project number is left for the user to record.
    doctor_unrecorded = run(fakes, "doctor", str(definitions))
    assert doctor_unrecorded.exit_code == 1
    assert re.search(r"MISSING.*projectNumber", doctor_unrecorded.output)
    assert doctor_unrecorded.output.count("MISSING") == 1

    text = CONTROL_PLANE_YAML.replace(
        "projectIdPrefix: acme-", f'projectIdPrefix: acme-\n    projectNumber: "{number}"'
    )
    (definitions / "control-plane.yaml").write_text(text)
    doctor_after = run(fakes, "doctor", str(definitions))
    assert doctor_after.exit_code == 0, doctor_after.output
    assert "MISSING" not in doctor_after.output


def test_failed_step_exits_1(fakes, definitions):
    fakes.rm.fail_next("CreateFolder", 403, "PERMISSION_DENIED", "no folders.create")

    result = run(fakes, "bootstrap", str(definitions))

    assert result.exit_code == 1
    assert "failed" in result.output and "no folders.create" in result.output


def test_unreadable_parent_exits_1_and_points_to_doctor(fakes, definitions):
    fakes.rm.hide("organizations/123456789012")

    result = run(fakes, "bootstrap", str(definitions))

    assert result.exit_code == 1
    assert "cannot read the current state" in result.output and "konfig doctor" in result.output
    assert fakes.writes() == []


def test_invalid_definitions_exit_1_with_the_problem(fakes, tmp_path):
    (tmp_path / "control-plane.yaml").write_text(
        CONTROL_PLANE_YAML.replace("billingAccount: 012345-6789AB-CDEF01", "billingAccount: nope")
    )

    result = run(fakes, "bootstrap", str(tmp_path))

    assert result.exit_code == 1
    assert "billingAccount" in result.output
    assert fakes.rm.calls == []


def test_bootstrap_prints_what_the_definitions_pipeline_needs(fakes, definitions):
    result = run(fakes, "bootstrap", str(definitions), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "KONFIG_CP_CI_SERVICE_ACCOUNT=konfig-ci@" in result.output
    assert "(protected)" in result.output
    assert "KONFIG_CP_PLANNER_SERVICE_ACCOUNT=konfig-planner@" in result.output
    assert "--set controlPlaneCI.applier=konfig-ci@" in result.output
    assert "/konfig-control-plane" in result.output
