"""`konfig apply` runs the same pipeline as `konfig validate` and `plan` (konfig.pipeline):
objects that break their CRD are refused before anything reaches the cluster, located at the
template field, never dropped silently by the API server."""

from __future__ import annotations

import textwrap

from typer.testing import CliRunner

from cli import app
from konfig.model import API_VERSION
from tests.guardrails.helpers import TEMPLATE, write_tree

LOOSE = TEMPLATE.replace("text: {type: string, default: x}", "where: {default: EU}").replace(
    "location: EU", 'location: "${params.where}"')
USER = textwrap.dedent("""\
    apiVersion: konfig.dev/v1alpha1
    kind: Workload
    metadata: {name: boxer}
    spec:
      platform: retail
      domain: ecommerce
      resources:
        - {name: things, template: box, access: read, params: {where: 5}}
""")


def test_apply_refuses_objects_that_break_their_crd(kube, tmp_path):
    root = write_tree(tmp_path / "defs", LOOSE, **{"boxer.yaml": USER})
    kubeconfig = str(kube.kubeconfig_path(tmp_path))
    result = CliRunner().invoke(app, ["apply", str(root), "--kubeconfig", kubeconfig])
    assert result.exit_code == 1, result.output
    assert "templates/box.yaml:" in result.output and "spec.resources[0].template.spec.location" in result.output
    assert "<rendered>" not in result.output
    assert kube.get(API_VERSION, "ControlPlane", "konfig-system", "acme") is None  # nothing applied
