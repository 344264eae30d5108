"""Rendered Config Connector objects against the vendored upstream CRDs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from jsonschema import Draft7Validator

from konfig import kcc_schema
from konfig.kcc_schema import CRD_DIR, known_kinds, validate_object

SHARED_CRDS = Path(__file__).resolve().parents[2].parent / "shared" / "kcc" / "crds"

# Upstream sample config/samples/resources/sqlinstance/postgres-sql-instance-high-availability
# (k8s-config-connector, Apache-2.0), as a dict.
SQL_INSTANCE = {
    "apiVersion": "sql.cnrm.cloud.google.com/v1beta1",
    "kind": "SQLInstance",
    "metadata": {"name": "sqlinstance-sample-postgresql-ha"},
    "spec": {
        "databaseVersion": "POSTGRES_16",
        "region": "us-central1",
        "settings": {
            "availabilityType": "REGIONAL",
            "backupConfiguration": {"enabled": True, "pointInTimeRecoveryEnabled": True},
            "edition": "ENTERPRISE",
            "tier": "db-custom-1-3840",
            "databaseFlags": [{"name": "cloudsql.iam_authentication", "value": "on"}],
        },
    },
}


def with_change(obj, path, value):
    out = copy.deepcopy(obj)
    node = out
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return out


def test_a_valid_object_passes():
    assert validate_object(SQL_INSTANCE) == []


def test_an_unknown_field_is_reported_with_its_path():
    obj = with_change(SQL_INSTANCE, ["spec", "settings", "tierr"], "db-f1-micro")
    (message,) = validate_object(obj)
    assert message.startswith("spec.settings.tierr: unknown field")
    assert "prune" in message


def test_unknown_fields_deep_in_lists_and_at_the_top_are_reported():
    obj = with_change(SQL_INSTANCE, ["spec", "settings", "databaseFlags", 0, "vaule"], "x")
    obj["data"] = {}
    messages = validate_object(obj)
    assert [m.split(":")[0] for m in messages] == ["data", "spec.settings.databaseFlags[0].vaule"]


def test_a_wrong_type_is_reported_with_its_path():
    obj = with_change(SQL_INSTANCE, ["spec", "settings", "diskSize"], "ten")
    assert validate_object(obj) == ["spec.settings.diskSize: 'ten' is not of type 'integer'"]


def test_a_missing_required_field_is_reported():
    obj = with_change(SQL_INSTANCE, ["spec", "settings", "tier"], KeyError)
    assert validate_object(obj) == ["spec.settings.tier: required field is missing"]


def test_references_must_use_name_or_external_not_both():
    database = {
        "apiVersion": "sql.cnrm.cloud.google.com/v1beta1",
        "kind": "SQLDatabase",
        "metadata": {"name": "orders"},
        "spec": {"instanceRef": {"name": "a", "external": "b"}},
    }
    (message,) = validate_object(database)
    assert message.startswith("spec.instanceRef:")
    database["spec"]["instanceRef"] = {"name": "a"}
    assert validate_object(database) == []


def test_an_unknown_kind_is_reported():
    obj = {**SQL_INSTANCE, "kind": "SQLInstanz"}
    (message,) = validate_object(obj)
    assert message.startswith("kind: unknown Config Connector kind 'SQLInstanz'")


def test_a_kind_in_the_wrong_group_or_an_unserved_version_is_reported():
    (message,) = validate_object({**SQL_INSTANCE, "apiVersion": "storage.cnrm.cloud.google.com/v1beta1"})
    assert "sql.cnrm.cloud.google.com" in message
    (message,) = validate_object({**SQL_INSTANCE, "apiVersion": "sql.cnrm.cloud.google.com/v1"})
    assert message.startswith("apiVersion:") and "v1beta1" in message
    (message,) = validate_object({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    assert "not a Config Connector kind" in message
    assert validate_object({"kind": "SQLInstance"})[0].startswith("apiVersion:")


def test_status_is_ignored_and_metadata_is_checked():
    obj = {**SQL_INSTANCE, "status": {"anything": ["goes"]}}
    assert validate_object(obj) == []
    obj = with_change(SQL_INSTANCE, ["metadata", "name"], "Not_A_Name")
    (message,) = validate_object(obj)
    assert message.startswith("metadata.name: 'Not_A_Name' is not a valid Kubernetes object name")
    obj = with_change(SQL_INSTANCE, ["metadata", "labels"], {"konfig-domain": "x" * 64})
    assert validate_object(obj)[0].startswith("metadata.labels.konfig-domain:")
    obj = with_change(SQL_INSTANCE, ["metadata"], {})
    assert validate_object(obj) == ["metadata.name: required field is missing"]


def test_structural_schema_extensions_become_json_schema():
    schema = kcc_schema._convert(
        {
            "type": "object",
            "properties": {
                "port": {"x-kubernetes-int-or-string": True},
                "note": {"type": "string", "nullable": True},
                "open": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                         "properties": {"a": {"type": "string"}}},
                "free": {"type": "object", "additionalProperties": {"type": "string"}},
                "choice": {"type": "object", "properties": {"a": {"type": "string"}},
                           "oneOf": [{"required": ["a"], "properties": {"a": {"type": "string"}}}]},
            },
        }
    )
    validator = Draft7Validator(schema)
    ok = {"port": "http", "note": None, "open": {"x": 1}, "free": {"k": "v"}, "choice": {"a": "b"}}
    assert list(validator.iter_errors(ok)) == []
    assert validator.is_valid({"port": 8080})
    assert not validator.is_valid({"port": 1.5})
    assert not validator.is_valid({"other": 1})
    assert not validator.is_valid({"choice": {"a": "b", "c": 1}})


def test_every_shipped_crd_is_indexed_and_builds_a_validator():
    files = sorted(CRD_DIR.glob("*.yaml"))
    kinds = known_kinds()
    assert len(kinds) == len(files) >= 40
    for group, kind in kinds:
        crd = kcc_schema._load_crd(kcc_schema._crd_index()[(group, kind)])
        for version in kcc_schema._served_versions(crd):
            assert isinstance(kcc_schema._validator(group, version, kind), Draft7Validator), kind


def test_the_package_ships_source_and_license():
    data = CRD_DIR.parent
    assert "cdb85ecf17085561b9f4abc75a95107cb01446d9" in (data / "SOURCE.md").read_text()
    assert "Apache License" in (data / "LICENSE").read_text()


@pytest.mark.skipif(not SHARED_CRDS.is_dir(), reason="../shared is not present")
def test_shipped_crds_match_the_shared_reference_byte_for_byte():
    shipped = {p.name: p.read_bytes() for p in CRD_DIR.glob("*.yaml")}
    reference = {p.name: p.read_bytes() for p in SHARED_CRDS.glob("*.yaml")}
    assert sorted(shipped) == sorted(reference)
    assert [name for name in shipped if shipped[name] != reference[name]] == []
