"""The wheel carries everything an installed `konfig` needs: the bundled resource templates,
the workload GitLab template (dotfiles included), the chart, the CRDs and `cli.py`."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_templates_data_and_cli(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("konfig-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    templates = {p.name for p in (ROOT / "resource-templates").glob("*.yaml")}
    assert templates and {f"konfig/_bundled/resource-templates/{t}" for t in templates} <= names
    assert "konfig/_bundled/gitlab-templates/workload/.gitlab-ci.yml" in names
    assert "konfig/_bundled/charts/konfig/Chart.yaml" in names
    assert any(n.startswith("konfig/data/kcc/crds/") for n in names)
    assert "konfig/data/kcc/LICENSE" in names and "konfig/data/kcc/SOURCE.md" in names
    assert "cli.py" in names
    assert not any(n.startswith(("tests/", "definitions/")) for n in names)
