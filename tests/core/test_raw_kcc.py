"""Raw Config Connector beside Konfig (Domain spec.rawKcc): allowed groups only, the project
pinned, no basic roles, no keys; Konfig's labels; the Config Connector identity gets the
allow-list's roles; every problem as file:line: field: message."""

from __future__ import annotations

import pytest

from konfig.compile import compile_definitions
from konfig.errors import DefinitionError
from konfig.load import load_definitions
from tests.core.orgs import CONTROL_PLANE, DOMAIN, write_org

ALLOW = CONTROL_PLANE.replace(
    "  groups:\n    - {group: platform-admins@acme.com, role: owner}\n",
    "  groups:\n    - {group: platform-admins@acme.com, role: owner}\n"
    "  rawKcc:\n"
    "    - {apiGroup: pubsub.cnrm.cloud.google.com, service: pubsub.googleapis.com,"
    " roles: [roles/pubsub.editor]}\n")


def domain_with(manifests: str) -> str:
    return DOMAIN + "  rawKcc:\n" + manifests


TOPIC = """\
    - environments: [prod]
      manifest:
        apiVersion: pubsub.cnrm.cloud.google.com/v1beta1
        kind: PubSubTopic
        metadata: {name: audit-events}
        spec: {messageRetentionDuration: 86400s}
"""


def load(tmp_path, cp: str, domain: str):
    return load_definitions(write_org(tmp_path, **{"control-plane.yaml": cp,
                                                   "domain.yaml": domain}))


def problems(tmp_path, cp: str, domain: str) -> list[str]:
    with pytest.raises(DefinitionError) as info:
        load(tmp_path, cp, domain)
    return [str(p) for p in info.value.problems]


def test_a_raw_manifest_lands_in_its_environment_with_labels_and_pinned_project(tmp_path):
    state = compile_definitions(load(tmp_path, ALLOW, domain_with(TOPIC)))
    [topic] = [o for o in state.kubernetes if o["kind"] == "PubSubTopic"
               and o["metadata"]["name"] == "audit-events"]
    meta = topic["metadata"]
    assert meta["namespace"] == "ecommerce-prod"
    assert meta["labels"] == {"konfig-control-plane": "acme", "konfig-platform": "retail",
                              "konfig-domain": "ecommerce", "konfig-environment": "prod"}
    assert meta["annotations"]["cnrm.cloud.google.com/project-id"] == "acme-ecommerce-prod"
    assert meta["annotations"]["cnrm.cloud.google.com/deletion-policy"] == "abandon"
    # Its Config Connector identity gets the allow-list's roles, in that environment only.
    roles = {(o["metadata"]["labels"].get("konfig-environment"), o["spec"]["role"])
             for o in state.kubernetes if o["kind"] == "IAMPolicyMember"
             and o["metadata"]["name"].startswith("kcc-ecommerce-")}
    assert ("prod", "roles/pubsub.editor") in roles
    assert ("dev", "roles/pubsub.editor") not in roles


@pytest.mark.parametrize(("manifest", "expected"), [
    ("""\
    - manifest:
        apiVersion: redis.cnrm.cloud.google.com/v1beta1
        kind: RedisInstance
        metadata: {name: cache}
        spec: {tier: BASIC, memorySizeGb: 1, region: us-central1}
""", "domain.yaml:11: spec.rawKcc[0].manifest.apiVersion: redis.cnrm.cloud.google.com is not in "
     "the control plane's spec.rawKcc allow-list"),
    ("""\
    - manifest:
        apiVersion: iam.cnrm.cloud.google.com/v1beta1
        kind: IAMServiceAccountKey
        metadata: {name: key}
        spec: {}
""", "spec.rawKcc[0].manifest.kind: service account keys are forbidden"),
    ("""\
    - manifest:
        apiVersion: pubsub.cnrm.cloud.google.com/v1beta1
        kind: PubSubTopic
        metadata:
          name: t
          annotations: {cnrm.cloud.google.com/project-id: someone-elses}
""", "names project 'someone-elses'"),
    ("""\
    - manifest:
        apiVersion: pubsub.cnrm.cloud.google.com/v1beta1
        kind: PubSubTopic
        metadata: {name: t, namespace: kube-system}
""", "spec.rawKcc[0].manifest.metadata.namespace: is set by Konfig"),
    ("""\
    - manifest:
        apiVersion: pubsub.cnrm.cloud.google.com/v1beta1
        kind: PubSubTopic
        metadata: {name: t}
        spec: {nonsense: 1}
""", "spec.rawKcc[0].manifest.spec.nonsense: unknown field"),
    ("""\
    - manifest:
        apiVersion: v1
        kind: Secret
        metadata: {name: s}
""", "is not a Config Connector API version"),
    (TOPIC + TOPIC, "PubSubTopic 'audit-events' is already defined for prod"),
    (TOPIC.replace("[prod]", "[qa]"), "'qa' is not an environment of this domain"),
], ids=["not-allowed", "key", "other-project", "namespace", "unknown-field", "not-kcc",
        "duplicate", "unknown-env"])
def test_guardrails(tmp_path, manifest, expected):
    found = problems(tmp_path, ALLOW, domain_with(manifest))
    assert any(expected in p for p in found), found


def test_basic_roles_are_refused_in_manifests_and_in_the_allow_list(tmp_path):
    member = """\
    - manifest:
        apiVersion: pubsub.cnrm.cloud.google.com/v1beta1
        kind: PubSubTopic
        metadata: {name: t}
"""
    cp = ALLOW.replace("roles: [roles/pubsub.editor]", "roles: [roles/editor]")
    found = problems(tmp_path, cp, domain_with(member))
    assert any("spec.rawKcc[0].roles[0]: 'roles/editor': only predefined roles" in p
               for p in found), found
    iam = CONTROL_PLANE.replace(
        "  groups:\n    - {group: platform-admins@acme.com, role: owner}\n",
        "  groups:\n    - {group: platform-admins@acme.com, role: owner}\n  rawKcc:\n"
        "    - {apiGroup: iam.cnrm.cloud.google.com, service: run.googleapis.com,"
        " roles: [roles/iam.securityAdmin]}\n")
    grant = """\
    - manifest:
        apiVersion: iam.cnrm.cloud.google.com/v1beta1
        kind: IAMPolicyMember
        metadata: {name: g}
        spec:
          member: group:x@acme.com
          role: roles/owner
          resourceRef: {kind: Project, external: projects/acme-ecommerce-dev}
"""
    found = problems(tmp_path, iam, domain_with(grant))
    assert any("spec.rawKcc[0].manifest.spec.role: roles/owner is a basic role" in p
               for p in found), found
    # Applied in every environment: naming any one project (even its own dev) is refused.
    assert any("resourceRef.external: 'projects/acme-ecommerce-dev' is outside" in p
               for p in found), found
    folder = grant.replace("projects/acme-ecommerce-dev", "folders/123")
    assert any("'folders/123' is outside" in p
               for p in problems(tmp_path / "f", iam, domain_with(folder)))


def test_the_example_keeps_a_raw_manifest(example_state):
    raw = [o for o in example_state.kubernetes if o["kind"] == "BigQueryDataset"]
    assert raw and all(o["metadata"]["labels"]["konfig-domain"] == "ecommerce" for o in raw)
