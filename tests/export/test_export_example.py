"""Both exports of the example organisation in definitions/, compiled by the real loader and
compiler (fixtures ``example_state`` of tests/conftest.py)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from export_helpers import parse_terraform_dir
from ruamel.yaml import YAML

from konfig.compile.state import LABEL_KEYS
from konfig.export import export_kcc, export_terraform, write_files


def _group(obj: dict) -> str:
    return obj["apiVersion"].rsplit("/", 1)[0] if "/" in obj["apiVersion"] else ""


def _cloud_objects(objects) -> list[dict]:
    return [o for o in objects if _group(o).endswith(".cnrm.cloud.google.com") and _group(o) != "core.cnrm.cloud.google.com"]


def test_terraform_export_of_the_example(example_state, tmp_path: Path) -> None:
    objects = list(example_state.kubernetes)
    export = export_terraform(objects)
    assert export.problems == []
    cloud = _cloud_objects(objects)
    # Only objects whose ID Google generates at creation (budgets, channels, alerts, checks) have
    # no import block, and each is named in a warning.
    generated = sorted(f"{o['kind']} {o['metadata']['namespace']}/{o['metadata']['name']}" for o in cloud
                       if o["kind"] in ("BillingBudgetsBudget", "MonitoringNotificationChannel",
                                        "MonitoringAlertPolicy", "MonitoringUptimeCheckConfig"))
    assert generated
    # Dataflow jobs cannot be imported: Terraform would launch a second job, so it is said.
    jobs = sorted(f"DataflowFlexTemplateJob {o['metadata']['namespace']}/{o['metadata']['name']}"
                  for o in cloud if o["kind"] == "DataflowFlexTemplateJob")
    assert jobs
    assert sorted(w.split(":", 1)[0] for w in export.warnings) == sorted(generated + jobs)
    assert all("not known before it exists" in w or "cannot import google_dataflow_flex_template_job" in w
               for w in export.warnings)
    assert not [s for s in export.skipped if s.key.group.endswith(".cnrm.cloud.google.com") and s.key.kind != "ConfigConnectorContext"]
    partial = [o for o in cloud if o["kind"] == "IAMPartialPolicy"]
    members = sum(len(b.get("members") or []) for o in partial for b in o["spec"].get("bindings") or [])
    assert len(export.resources) == len(cloud) - len(partial) + members

    write_files(tmp_path, export.files())
    config = parse_terraform_dir(tmp_path)
    config.check_references()
    # Without import blocks: resources whose ID Google generates (warned above), and service
    # agents with their grants (creating them again is a no-op, so no warning either).
    agents = [o for o in cloud if o["kind"] == "ServiceIdentity"]
    to_agents = [o for o in cloud if o["kind"] == "IAMPolicyMember"
                 and "serviceIdentityRef" in o["spec"].get("memberFrom", {})]
    assert agents and to_agents
    unimported = set(config.resources) - set(config.imports())
    assert len(unimported) == len(generated) + len(jobs) + len(agents) + len(to_agents)
    assert set(config.imports()) <= set(config.resources)
    assert len(config.resources) == len(export.resources)
    namespaces = {o["metadata"].get("namespace") for o in cloud}
    assert {p.name for p in tmp_path.glob("*.tf")} == {f"{n}.tf" for n in namespaces} | {"versions.tf", "variables.tf"}

    # Projects are imported by their project ID (spec.resourceID, else the object's name).
    projects = [o for o in cloud if o["kind"] == "Project"]
    project_imports = sorted(v for k, v in config.imports().items() if k.startswith("google_project."))
    assert project_imports == sorted(f'"projects/{p["spec"].get("resourceID", p["metadata"]["name"])}"' for p in projects)
    # Konfig's labels do not reach the cloud resources.
    for address in config.resources:
        for attribute in ("labels", "resource_labels", "user_labels"):
            if config.has_attribute(address, attribute):
                assert not any(k in config.attribute(address, attribute) for k in LABEL_KEYS)
    # Every folder is imported through a variable and referenced by its children.
    folders = [a for a in config.resources if a.startswith("google_folder.")]
    assert len(folders) == Counter(o["kind"] for o in cloud)["Folder"] == len(config.variables)


def test_kcc_export_of_the_example(example_state, tmp_path: Path) -> None:
    objects = list(example_state.kubernetes)
    result = export_kcc(objects)
    write_files(tmp_path, result.files)
    namespaces = {o["metadata"]["name"] for o in objects if o["kind"] == "Namespace"}
    assert {p.name for p in tmp_path.iterdir() if p.is_dir()} == namespaces
    yaml = YAML(typ="safe", pure=True)
    written = [yaml.load(p.read_text(encoding="utf-8")) for p in tmp_path.rglob("*.yaml")]
    kcc_groups = [o for o in objects if _group(o).endswith(".cnrm.cloud.google.com")]
    assert len(written) == len(kcc_groups) + len(namespaces)
    for doc in written:
        assert not set(LABEL_KEYS) & set(doc["metadata"].get("labels") or {})
        assert not [r for r in doc["metadata"].get("ownerReferences") or [] if "konfig" in r["apiVersion"]]
    # Only non-Config-Connector objects (RBAC, workload manifests) are left out.
    assert all(not o.key.group.endswith(".cnrm.cloud.google.com") for o in result.omitted)
