"""The contract's invariants ("Invariants the product guarantees"), asserted over the compiled
example organisation."""

from __future__ import annotations

import re
from collections import Counter

from konfig.compile import naming
from konfig.compile.state import (
    DELETION_POLICY,
    LABEL_CONTROL_PLANE,
    LABEL_DOMAIN,
    LABEL_ENVIRONMENT,
    LABEL_KEYS,
    LABEL_PLATFORM,
    LABEL_WORKLOAD,
    PROJECT_ID_ANNOTATION,
)

GCP_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
GCP_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
PROJECT_ID = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")


def of_kind(state, kind):
    return [o for o in state.kubernetes if o["kind"] == kind]


def test_gitlab_tree_mirrors_folder_tree(example_state):
    folders = {f["metadata"]["name"]: f for f in of_kind(example_state, "Folder")}

    def folder_path(f):
        parent = f["spec"].get("folderRef", {}).get("name")
        own = f["metadata"]["labels"]
        level = own.get(LABEL_DOMAIN) or own.get(LABEL_PLATFORM) or own[LABEL_CONTROL_PLANE]
        return (folder_path(folders[parent]) if parent in folders else ()) + (level,)

    folder_paths = {folder_path(f) for f in folders.values()}
    root = example_state.gitlab.root_full_path
    group_paths = {tuple(g.full_path.removeprefix(root + "/").split("/")) for g in example_state.gitlab.groups}
    assert folder_paths == group_paths
    assert len(folders) == len(example_state.gitlab.groups)


def test_project_ids_valid_unique_with_environment(example_state, example_defs):
    projects = of_kind(example_state, "Project")
    ids = [p["spec"]["resourceID"] for p in projects]
    assert len(ids) == len(set(ids))
    for p in projects:
        pid = p["spec"]["resourceID"]
        assert PROJECT_ID.match(pid) and 6 <= len(pid) <= 30, pid
        env = p["metadata"]["labels"].get(LABEL_ENVIRONMENT)
        if env and pid not in {v for d in example_defs.domains.values() for v in d.spec.project_ids.values()}:
            assert pid.endswith(f"-{env}"), pid
    # The control-plane project, one per domain environment, one network host per environment.
    expected = (1 + sum(len(example_defs.domain_environments(d)) for d in example_defs.domains.values())
                + len(example_defs.control_plane.spec.environments))
    assert len(projects) == expected


def test_folder_display_names_fit(example_state):
    for f in of_kind(example_state, "Folder"):
        assert 3 <= len(f["spec"]["displayName"]) <= 30


def test_each_domain_environment_has_namespace_and_own_context(example_state, example_defs):
    namespaces = {n["metadata"]["name"]: n for n in of_kind(example_state, "Namespace")}
    contexts = {c["metadata"]["namespace"]: c for c in of_kind(example_state, "ConfigConnectorContext")}
    gsas = set()
    for domain in example_defs.domains.values():
        for env in example_defs.domain_environments(domain):
            ns = naming.namespace_name(domain.name, env)
            project = namespaces[ns]["metadata"]["annotations"][PROJECT_ID_ANNOTATION]
            gsa = contexts[ns]["spec"]["googleServiceAccount"]
            assert gsa.endswith(f"@{project}.iam.gserviceaccount.com")
            gsas.add(gsa)
    assert len(gsas) == len(contexts) - 1  # konfig-system has the controller's own


def _bindings_of_service_account(state, sa_object, namespace):
    return [m for m in of_kind(state, "IAMPolicyMember")
            if m["metadata"]["namespace"] == namespace
            and m["spec"].get("memberFrom", {}).get("serviceAccountRef", {}).get("name") == sa_object]


def test_context_service_accounts_act_only_on_their_project(example_state):
    projects = {p["metadata"]["name"]: p["spec"]["resourceID"] for p in of_kind(example_state, "Project")}
    kcc_accounts = [s for s in of_kind(example_state, "IAMServiceAccount")
                    if s["spec"]["resourceID"] == naming.KCC_SERVICE_ACCOUNT_ID]
    assert kcc_accounts
    for sa in kcc_accounts:
        own_project = sa["metadata"]["annotations"][PROJECT_ID_ANNOTATION]
        bindings = _bindings_of_service_account(example_state, sa["metadata"]["name"], "konfig-system")
        assert bindings
        for b in bindings:
            ref = b["spec"]["resourceRef"]
            if ref["kind"] == "ComputeSubnetwork":  # the shared network of its environment
                assert b["spec"]["role"] == "roles/compute.networkUser"
                continue
            assert ref["kind"] == "Project" and projects[ref["name"]] == own_project


def test_every_workload_has_its_own_service_account_per_environment(example_state, example_defs):
    accounts = [(s["metadata"]["namespace"], s["spec"]["resourceID"])
                for s in of_kind(example_state, "IAMServiceAccount")
                if LABEL_WORKLOAD in s["metadata"]["labels"]]
    expected = sum(len(example_defs.domain_environments(example_defs.domains[d]))
                   for (d, _) in example_defs.workloads)
    assert len(accounts) == len(set(accounts)) == expected


def test_no_owner_or_editor_and_nothing_above_own_project(example_state):
    for m in of_kind(example_state, "IAMPolicyMember"):
        assert m["spec"]["role"] not in ("roles/owner", "roles/editor"), m["metadata"]["name"]
        labels = m["metadata"]["labels"]
        ref = m["spec"]["resourceRef"]
        if LABEL_WORKLOAD in labels:  # a workload's grants
            assert ref["kind"] not in ("Folder", "Organization")
            if ref["kind"] == "Project":
                ns_project = next(n["metadata"]["annotations"][PROJECT_ID_ANNOTATION]
                                  for n in of_kind(example_state, "Namespace")
                                  if n["metadata"]["name"] == m["metadata"]["namespace"])
                assert ref["external"] == f"projects/{ns_project}"


def test_only_the_control_plane_account_holds_folder_roles(example_state):
    allowed = {"roles/resourcemanager.folderCreator", "roles/resourcemanager.projectCreator",
               "roles/resourcemanager.folderIamAdmin",
               "roles/compute.xpnAdmin"}  # Shared VPC Admin: host projects, service projects
    cp_folder = next(f["metadata"]["name"] for f in of_kind(example_state, "Folder")
                     if "organizationRef" in f["spec"])
    for m in of_kind(example_state, "IAMPolicyMember"):
        if m["spec"]["resourceRef"]["kind"] != "Folder":
            continue
        if "member" in m["spec"]:
            assert m["spec"]["member"].startswith("group:")
            assert m["spec"]["role"] == "roles/viewer"  # humans: standing read only
        else:
            assert m["spec"]["memberFrom"]["serviceAccountRef"]["name"].startswith("controller-")
            assert m["spec"]["role"] in allowed
            assert m["spec"]["resourceRef"]["name"] == cp_folder


STATEFUL = {"Folder", "Project", "SQLInstance", "SQLDatabase", "StorageBucket", "PubSubTopic",
            "PubSubSubscription", "RedisInstance", "SecretManagerSecret", "FirestoreDatabase"}


def test_projects_folders_and_stateful_resources_are_abandoned(example_state):
    kinds = Counter()
    for o in example_state.kubernetes:
        if o["kind"] in STATEFUL:
            kinds[o["kind"]] += 1
            assert o["metadata"]["annotations"][DELETION_POLICY] == "abandon", o["metadata"]["name"]
    assert {"Folder", "Project", "SQLInstance", "StorageBucket", "PubSubTopic"} <= set(kinds)


def test_labels_on_every_object_valid_for_kubernetes_and_gcp(example_state):
    for o in example_state.kubernetes:
        labels = o["metadata"]["labels"]
        assert labels[LABEL_CONTROL_PLANE] == example_state.control_plane
        for key in LABEL_KEYS:
            if key in labels:
                assert GCP_LABEL_KEY.match(key) and GCP_LABEL_VALUE.match(labels[key])
        if o["metadata"].get("namespace", "konfig-system") != "konfig-system":
            assert {LABEL_PLATFORM, LABEL_DOMAIN, LABEL_ENVIRONMENT} <= set(labels)


def test_invoker_only_for_admitted_dependents(example_state, example_defs):
    invokers = [m for m in of_kind(example_state, "IAMPolicyMember") if m["spec"]["role"] == "roles/run.invoker"]
    assert invokers
    for m in invokers:
        member = m["spec"]["member"]
        target = m["spec"]["resourceRef"]["name"]
        target_domain = m["metadata"]["labels"][LABEL_DOMAIN]
        target_wl = example_defs.workloads[(target_domain, target)]
        if member == "allUsers":
            assert target_wl.spec.ingress.visibility == "external"
            continue
        caller_id = member.split(":", 1)[1].split("@", 1)[0].removeprefix("wl-")
        callers = [w for w in example_defs.workloads.values() if w.name == caller_id]
        assert any(any(d.workload == target and (d.domain or w.spec.domain) == target_domain
                       for d in w.spec.dependencies) for w in callers), (member, target)


def test_ci_identity_may_only_apply_workloads(example_state, example_defs):
    bindings = [o for o in of_kind(example_state, "RoleBinding") if o["metadata"]["name"] == "konfig-ci"]
    assert len(bindings) == sum(len(example_defs.domain_environments(d)) for d in example_defs.domains.values())
    assert not of_kind(example_state, "Role")  # the operator never writes rules, only binds
    for b in bindings:
        domain = b["metadata"]["labels"][LABEL_DOMAIN]
        assert b["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": naming.CLUSTER_ROLE_WORKLOAD_DEPLOYER}
        env = b["metadata"]["labels"]["konfig-environment"]
        [subject] = b["subjects"]  # this environment's own CI identity only
        assert subject["kind"] == "User" and subject["name"].startswith(f"ci-{domain}-{env}@")
    readers = [o for o in of_kind(example_state, "RoleBinding") if o["metadata"]["name"].startswith("konfig-ci-")]
    assert len(readers) == len(example_defs.domains)
    for b in readers:  # read-only access to the promotion path, in the system namespace only
        assert b["metadata"]["namespace"] == "konfig-system"
        assert b["roleRef"]["name"] == naming.CLUSTER_ROLE_DEFINITIONS_READER


def test_saml_links_follow_the_role_table(example_state, example_defs):
    levels = {"viewer": 20, "developer": 30, "maintainer": 40, "owner": 50}
    domain = example_defs.domains["ecommerce"]
    group = next(g for g in example_state.gitlab.groups if g.full_path.endswith("/ecommerce"))
    assert {(l.saml_group_name, l.access_level) for l in group.saml_group_links} == {
        (g.group.split("@")[0], levels[g.role]) for g in domain.spec.groups}


def test_a_gitlab_project_per_listed_workload(example_state, example_defs):
    paths = {p.path_with_namespace for p in example_state.gitlab.projects}
    for domain in example_defs.domains.values():
        for w in domain.spec.workloads:
            assert any(p.endswith(f"/{domain.name}/{w}") for p in paths)
    assert any(p.endswith("/konfig-control-plane") for p in paths)
    assert any(p.endswith("/workload-template") for p in paths)


def test_domain_groups_carry_ci_variables_per_environment(example_state, example_defs):
    for domain in example_defs.domains.values():
        group = next(g for g in example_state.gitlab.groups if g.full_path.endswith("/" + domain.name))
        scoped = {(v.key, v.environment_scope) for v in group.variables}
        for env in example_defs.domain_environments(domain):
            for key in (naming.CI_VAR_GCP_PROJECT, naming.CI_VAR_NAMESPACE):
                assert (key, env) in scoped
            for key in (naming.CI_VAR_WIF_PROVIDER, naming.CI_VAR_CI_SERVICE_ACCOUNT):
                assert (key, env) in scoped
