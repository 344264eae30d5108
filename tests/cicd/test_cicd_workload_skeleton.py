"""The workload.yaml skeleton is a valid Workload once CI fills its placeholders, and leaves the
image to CI."""

from __future__ import annotations

import re

from konfig.model.workload import Workload

from .conftest import TEMPLATE
from .gitlab_ci import load_yaml

#: The placeholders ci/deploy.sh fills from the groups' CI/CD variables.
PLACEHOLDERS = {"KONFIG_WORKLOAD", "KONFIG_PLATFORM", "KONFIG_DOMAIN"}


def skeleton_text() -> str:
    return (TEMPLATE / "workload.yaml").read_text()


def uncommented(text: str) -> str:
    return "\n".join(line.split("#", 1)[0] for line in text.splitlines())


def test_skeleton_uses_only_the_placeholders_ci_fills():
    assert set(re.findall(r"\$\{(\w+)\}", uncommented(skeleton_text()))) == PLACEHOLDERS


def test_filled_skeleton_is_a_valid_workload():
    text = skeleton_text()
    for name, value in {"KONFIG_WORKLOAD": "checkout", "KONFIG_PLATFORM": "retail", "KONFIG_DOMAIN": "ecommerce"}.items():
        text = text.replace("${" + name + "}", value)
    workload = Workload.model_validate(load_yaml(text))
    assert workload.name == "checkout"
    assert (workload.spec.platform, workload.spec.domain) == ("retail", "ecommerce")
    assert workload.spec.image is None  # CI sets it to the built digest


def test_skeleton_has_the_workload_shape():
    document = load_yaml(skeleton_text())
    assert document["apiVersion"] == "konfig.dev/v1alpha1"
    assert document["kind"] == "Workload"
    assert set(document) == {"apiVersion", "kind", "metadata", "spec"}
    assert "image" not in document["spec"]


def test_template_ships_a_buildable_dockerfile_on_the_container_port():
    document = load_yaml(skeleton_text())
    dockerfile = (TEMPLATE / "Dockerfile").read_text()
    assert re.search(r"^FROM \S+", dockerfile, re.MULTILINE)
    # nginx-unprivileged listens on 8080, the port the skeleton declares.
    assert "nginx-unprivileged" in dockerfile and document["spec"]["container"]["port"] == 8080
