"""charts/konfig/crds/ holds exactly what konfig/kube/crds.py generates, so the two cannot drift.

Regenerate with ``konfig crds --output-dir charts/konfig/crds``.
"""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
from ruamel.yaml import YAML

from konfig.kube import crds

CHART = Path(__file__).resolve().parents[2] / "charts" / "konfig"
CRDS_DIR = CHART / "crds"
REGENERATE = "run `konfig crds --output-dir charts/konfig/crds`"


def test_chart_crd_files_are_the_generated_ones():
    expected = {crds.crd_filename(d): crds.render_yaml([d]) for d in crds.all_crds()}
    found = {p.name: p.read_text(encoding="utf-8") for p in CRDS_DIR.iterdir()}
    assert sorted(found) == sorted(expected), REGENERATE
    for name, text in expected.items():
        assert found[name] == text, f"{name} is stale: {REGENERATE}"


def test_helm_loads_them_as_the_charts_crds():
    yaml = YAML(typ="safe")
    with helm.Chart.load(CHART) as chart:
        loaded = {Path(c["filename"]).name: yaml.load(c["data"]) for c in chart.crds}
    assert loaded == {crds.crd_filename(d): d for d in crds.all_crds()}
