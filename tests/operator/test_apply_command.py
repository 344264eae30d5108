"""``konfig apply`` end to end through the CLI, against the emulator via a kubeconfig."""

from __future__ import annotations

import shutil

from typer.testing import CliRunner

from cli import app
from konfig.model import API_VERSION

runner = CliRunner()


def test_apply_command(kube, tmp_path, definitions_dir):
    kubeconfig = str(kube.kubeconfig_path(tmp_path))
    first = runner.invoke(app, ["apply", str(definitions_dir), "--kubeconfig", kubeconfig])
    assert first.exit_code == 0, first.output
    assert "created" in first.output and "applied" in first.output
    assert kube.get(API_VERSION, "ControlPlane", "konfig-system", "acme") is not None

    tree = tmp_path / "defs"
    shutil.copytree(definitions_dir, tree)
    (tree / "workloads" / "stock-reports.yaml").unlink()
    dry = runner.invoke(app, ["apply", str(tree), "--kubeconfig", kubeconfig, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output and "would be deleted Workload inventory-dev/stock-reports" in dry.output
    assert kube.get(API_VERSION, "Workload", "inventory-dev", "stock-reports") is not None  # dry run

    (tree / "workloads" / "broken.yaml").write_text(
        "apiVersion: konfig.dev/v1alpha1\nkind: Workload\nmetadata: {name: broken}\n"
        "spec: {platform: retail, domain: nowhere}\n")
    invalid = runner.invoke(app, ["apply", str(tree), "--kubeconfig", kubeconfig])
    assert invalid.exit_code == 1 and "nowhere" in invalid.output


def test_apply_without_crds_explains(tmp_path, definitions_dir):
    from konfig.sandbox.kube_api import KubeEmulator

    with KubeEmulator() as bare:
        result = runner.invoke(app, ["apply", str(definitions_dir), "--kubeconfig",
                                     str(bare.kubeconfig_path(tmp_path))])
    assert result.exit_code == 1
