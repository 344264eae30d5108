"""``konfig export kcc|terraform`` through typer, as a user runs them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
from export_helpers import DATA, parse_terraform_dir
from typer.testing import CliRunner

from konfig.commands.export import register


@pytest.fixture
def app() -> typer.Typer:
    root = typer.Typer()

    @root.callback()
    def _root() -> None:  # a group, as the real `konfig` app is
        pass

    register(root)
    return root


@pytest.fixture
def manifests(tmp_path: Path) -> Path:
    folder = tmp_path / "manifests"
    folder.mkdir()
    shutil.copy(DATA / "konfig-org.yaml", folder / "org.yaml")
    return folder


def test_export_terraform_from_manifests(app: typer.Typer, manifests: Path, tmp_path: Path) -> None:
    out = tmp_path / "tf"
    result = CliRunner().invoke(app, ["export", "terraform", str(manifests), "--manifests", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "skipped RoleBinding ecommerce-dev/konfig-ci" in result.output
    assert "set variable konfig_system__acme_folder_number" in result.output
    config = parse_terraform_dir(out)
    config.check_references()
    assert "google_project.konfig_system__acme_ecommerce_dev" in config.resources


def test_export_kcc_from_manifests(app: typer.Typer, manifests: Path, tmp_path: Path) -> None:
    out = tmp_path / "kcc"
    result = CliRunner().invoke(app, ["export", "kcc", str(manifests), "--manifests", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "ecommerce-dev" / "00-namespace.yaml").exists()
    assert "RoleBinding ecommerce-dev/konfig-ci" in result.output


def test_refuses_a_non_empty_output_folder(app: typer.Typer, manifests: Path, tmp_path: Path) -> None:
    out = tmp_path / "tf"
    out.mkdir()
    (out / "mine.tf").write_text("# not ours\n")
    args = ["export", "terraform", str(manifests), "--manifests", "--out", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "is not empty" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["mine.tf"]
    result = CliRunner().invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert (out / "mine.tf").read_text() == "# not ours\n"  # --force overwrites, never deletes
    assert (out / "versions.tf").exists()


def test_problems_are_all_reported_and_nothing_is_written(app: typer.Typer, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "a.yaml").write_text(
        "apiVersion: run.cnrm.cloud.google.com/v1beta1\nkind: RunService\n"
        "metadata: {name: a, namespace: t}\n"
        "spec: {location: x, template: {encryptionKeyRef: {name: k1}}}\n"
        "---\n"
        "apiVersion: iam.cnrm.cloud.google.com/v1beta1\nkind: IAMPolicyMember\n"
        "metadata: {name: m, namespace: t}\n"
        "spec: {resourceRef: {kind: SQLInstance, name: db}, member: 'user:a@b.c', role: roles/x}\n"
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["export", "terraform", str(folder), "--manifests", "--out", str(out)])
    assert result.exit_code == 1
    assert "RunService t/a: spec.template.encryptionKeyRef" in result.output
    assert "IAMPolicyMember t/m: spec.resourceRef" in result.output
    assert not out.exists()


def test_invalid_manifests_name_the_file_and_line(app: typer.Typer, tmp_path: Path) -> None:
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.yaml").write_text("kind: [unclosed\n")
    (folder / "nameless.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {}\n")
    result = CliRunner().invoke(app, ["export", "kcc", str(folder), "--manifests", "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "broken.yaml:2: not valid YAML" in result.output
    assert "nameless.yaml: document 1: not a Kubernetes object" in result.output


def test_help_lists_both_commands(app: typer.Typer) -> None:
    result = CliRunner().invoke(app, ["export", "--help"])
    assert result.exit_code == 0
    assert "kcc" in result.output and "terraform" in result.output
