"""``export_kcc``: plain Config Connector manifests, one folder per namespace."""

from __future__ import annotations

from pathlib import Path

from export_helpers import DATA, load_yaml_docs
from ruamel.yaml import YAML

from konfig.compile.state import LABEL_KEYS
from konfig.export import export_kcc, write_files

ORG = DATA / "konfig-org.yaml"


def _read(path: Path) -> dict:
    (doc,) = [d for d in YAML(typ="safe", pure=True).load_all(path.read_text(encoding="utf-8")) if d]
    return doc


def test_one_folder_per_namespace_with_namespace_and_context_first(tmp_path: Path) -> None:
    write_files(tmp_path, export_kcc(load_yaml_docs(ORG)).files)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "ecommerce-dev", "konfig-system"]
    files = sorted(p.name for p in (tmp_path / "ecommerce-dev").iterdir())
    assert files[:2] == ["00-namespace.yaml", "01-configconnectorcontext.yaml"]
    assert "storagebucket-acme-ecommerce-dev-receipts.yaml" in files
    assert "rolebinding-konfig-ci.yaml" not in files
    namespace = _read(tmp_path / "ecommerce-dev" / "00-namespace.yaml")
    assert namespace["metadata"]["annotations"] == {"cnrm.cloud.google.com/project-id": "acme-ecommerce-dev"}


def test_every_config_connector_object_is_written_once(tmp_path: Path) -> None:
    objects = load_yaml_docs(ORG)
    write_files(tmp_path, export_kcc(objects).files)
    written = [_read(p) for p in sorted(tmp_path.rglob("*.yaml"))]
    expected = [o for o in objects if o["kind"] != "RoleBinding"]
    key = lambda o: (o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, written)) == sorted(map(key, expected))
    by_key = {key(o): o for o in expected}
    for doc in written:
        if doc["kind"] == "RunService":  # Cloud Run revision labels lose Konfig's keys only
            assert doc["spec"]["template"]["labels"] == {"team": "web"}
            doc["spec"]["template"]["labels"] = by_key[key(doc)]["spec"]["template"]["labels"]
        assert doc.get("spec") == by_key[key(doc)].get("spec")  # specs are otherwise untouched


def test_konfig_traces_are_removed_and_cnrm_annotations_kept(tmp_path: Path) -> None:
    objects = load_yaml_docs(ORG)
    project = next(o for o in objects if o["kind"] == "Project")
    project["metadata"].update(
        uid="1234", resourceVersion="99", generation=3, creationTimestamp="2024-01-01T00:00:00Z",
        finalizers=["kopf.zalando.org/KopfFinalizerMarker", "cnrm.cloud.google.com/finalizer"],
    )
    project["metadata"]["ownerReferences"].append({"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "x"})
    project["metadata"]["annotations"]["konfig.dev/source"] = "definitions/domains.yaml:12"
    project["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
    write_files(tmp_path, export_kcc(objects).files)
    meta = _read(tmp_path / "konfig-system" / "project-acme-ecommerce-dev.yaml")["metadata"]
    assert meta["labels"] == {"cost-center": "retail-42"}
    assert meta["annotations"] == {
        "cnrm.cloud.google.com/deletion-policy": "abandon",
        "cnrm.cloud.google.com/auto-create-network": "false",
    }
    assert meta["ownerReferences"] == [{"apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "x"}]
    assert meta["finalizers"] == ["cnrm.cloud.google.com/finalizer"]
    assert not {"uid", "resourceVersion", "generation", "creationTimestamp"} & set(meta)
    for path in tmp_path.rglob("*.yaml"):
        doc = _read(path)
        assert "status" not in doc
        assert not set(LABEL_KEYS) & set(doc["metadata"].get("labels") or {})
        assert not any("konfig" in k or "kopf" in k for k in doc["metadata"].get("annotations") or {})


def test_labels_can_be_kept(tmp_path: Path) -> None:
    write_files(tmp_path, export_kcc(load_yaml_docs(ORG), keep_konfig_labels=True).files)
    meta = _read(tmp_path / "ecommerce-dev" / "iamserviceaccount-wl-checkout.yaml")["metadata"]
    assert meta["labels"]["konfig-workload"] == "checkout"


def test_input_objects_are_not_modified() -> None:
    objects = load_yaml_docs(ORG)
    before = repr(objects)
    export_kcc(objects)
    assert repr(objects) == before


def test_left_out_objects_are_listed_in_the_readme(tmp_path: Path) -> None:
    result = export_kcc(load_yaml_docs(ORG))
    assert [(o.key.kind, o.key.name) for o in result.omitted] == [("RoleBinding", "konfig-ci")]
    write_files(tmp_path, result.files)
    readme = (tmp_path / "README.md").read_text(encoding="utf-8")
    assert "RoleBinding ecommerce-dev/konfig-ci" in readme
    assert f"Exported objects: {len(result.exported)}." in readme


def test_yaml_keeps_strings_that_look_like_other_types(tmp_path: Path) -> None:
    # Strings that look like other types must stay strings when read back.
    bucket = {
        "apiVersion": "storage.cnrm.cloud.google.com/v1beta1",
        "kind": "StorageBucket",
        "metadata": {"name": "b", "namespace": "ns", "annotations": {"cnrm.cloud.google.com/force-destroy": "false"}},
        "spec": {"location": "US", "labels": {"a": "0123", "b": "1e3", "c": "yes", "d": "on", "e": "12:30"}},
    }
    write_files(tmp_path, export_kcc([bucket]).files)
    doc = _read(tmp_path / "ns" / "storagebucket-b.yaml")
    assert doc["metadata"]["annotations"]["cnrm.cloud.google.com/force-destroy"] == "false"
    assert doc["spec"]["labels"] == {"a": "0123", "b": "1e3", "c": "yes", "d": "on", "e": "12:30"}
    # YAML 1.1 readers (kubectl) take plain yes/on/12:30 for a boolean and a number.
    text = (tmp_path / "ns" / "storagebucket-b.yaml").read_text()
    assert "c: 'yes'" in text and "d: 'on'" in text and "e: '12:30'" in text


def test_long_values_are_not_folded(tmp_path: Path) -> None:
    image = "europe-west1-docker.pkg.dev/acme/ecommerce/checkout@sha256:" + "c" * 64
    run = {"apiVersion": "run.cnrm.cloud.google.com/v1beta1", "kind": "RunService",
           "metadata": {"name": "r", "namespace": "ns"}, "spec": {"template": {"containers": [{"image": image}]}}}
    write_files(tmp_path, export_kcc([run]).files)
    assert f"image: {image}\n" in (tmp_path / "ns" / "runservice-r.yaml").read_text()
