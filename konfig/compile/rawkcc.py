"""Raw Config Connector beside Konfig: a domain's plain KCC manifests (``Domain.spec.rawKcc``),
checked and placed in its domain-environment namespaces. Pure.

The seed's escape hatch ("use Config Connector directly, the same GitOps model") stays inside
Konfig's guardrails, the same as template output (docs/gitops.md, "Raw Config Connector"):

* only API groups of the control plane's ``spec.rawKcc`` allow-list, whose service the domain
  has enabled;
* the project is pinned: Konfig sets the namespace and the ``cnrm.cloud.google.com/project-id``
  annotation to the environment's project; a manifest naming another project is refused;
* no basic roles (roles/owner, roles/editor, roles/viewer) anywhere, no key kinds (service
  account keys, HMAC keys, API keys), no authoritative IAMPolicy (it would remove bindings
  Konfig does not own);
* the ``konfig-*`` labels are added, and Config Connector's deletion policy is ``abandon``
  unless the manifest says otherwise (destructive deletion is never the default).

:func:`guardrail_problems` is the one place the object rules live, so that the template policy
(issue 10) can take them over.
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

from konfig.compile import naming
from konfig.compile.objects import konfig_labels
from konfig.compile.state import DELETION_POLICY, PROJECT_ID_ANNOTATION, KubeObject
from konfig.definitions import Definitions
from konfig.errors import Problem
from konfig.kcc_schema import validate_object
from konfig.model import Domain

KCC_GROUP_SUFFIX = ".cnrm.cloud.google.com"
#: Basic roles GCP grants no condition on and Konfig never grants (spec "Roles", "Invariants").
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
#: Kinds that mint long-lived credentials (keyless everywhere) or replace a whole IAM policy.
FORBIDDEN_KINDS = {
    "IAMServiceAccountKey": "service account keys are forbidden (keyless everywhere)",
    "StorageHMACKey": "HMAC keys are forbidden (keyless everywhere)",
    "APIKeysKey": "API keys are forbidden (keyless everywhere)",
    "IAMPolicy": "IAMPolicy is authoritative and would remove bindings Konfig does not own; "
                 "use IAMPolicyMember or IAMPartialPolicy",
}


def guardrail_problems(manifest: Any, project_id: str | None) -> Iterator[tuple[str, str]]:
    """Why ``manifest`` may not be applied, as (field path inside the manifest, message)
    pairs. ``project_id`` is the one project it may act on (``None``: it is applied in several
    environments, so it must not name any project itself)."""
    if not isinstance(manifest, dict):
        yield "", "must be a Config Connector object (a mapping)"
        return
    api_version = manifest.get("apiVersion")
    group = api_version.split("/")[0] if isinstance(api_version, str) and "/" in api_version \
        else ""
    if not group.endswith(KCC_GROUP_SUFFIX):
        yield "apiVersion", (f"{api_version!r} is not a Config Connector API version "
                             f"(<group>{KCC_GROUP_SUFFIX}/<version>)")
    kind = manifest.get("kind")
    if not isinstance(kind, str) or not kind:
        yield "kind", "is required"
    elif kind in FORBIDDEN_KINDS:
        yield "kind", FORBIDDEN_KINDS[kind]
    meta = manifest.get("metadata")
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"]:
        yield "metadata.name", "is required"
        meta = meta if isinstance(meta, dict) else {}
    if "namespace" in meta:
        yield "metadata.namespace", "is set by Konfig (the domain environment's namespace)"
    pinned = (meta.get("annotations") or {}).get(PROJECT_ID_ANNOTATION)
    if pinned is not None and pinned != project_id:
        yield f"metadata.annotations.{PROJECT_ID_ANNOTATION}", (
            f"names project {pinned!r}: raw manifests act on their environment's project only "
            "(leave it out; Konfig sets it)")
    for path, value in _walk(manifest.get("spec"), "spec"):
        leaf = path.rsplit(".", 1)[-1]
        if leaf == "role" and value in BASIC_ROLES:
            yield path, f"{value} is a basic role; grant predefined roles only"
        if path.endswith("projectRef.external") and isinstance(value, str):
            named = value.removeprefix("projects/")
            if named != project_id:
                yield path, (f"names project {value!r}: raw manifests act on their "
                             "environment's project only")
        if path.endswith("resourceRef.external") and isinstance(value, str) and (
                value.startswith(("folders/", "organizations/", "billingAccounts/"))
                or value.startswith("projects/") and value.split("/")[1] != project_id):
            yield path, (f"{value!r} is outside the environment's project: raw manifests act "
                         "on their own project only")
        if path.endswith("projectRef.name"):
            yield path, "refers to a Project object: raw manifests act on their environment's " \
                        "project only (leave projectRef out)"


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, f"{path}[{i}]")
    else:
        yield path, node


def raw_kcc_problems(defs: Definitions, domain: Domain) -> list[Problem]:
    """Every problem of ``domain``'s raw manifests: guardrails, the allow-list, enabled
    services, environments, duplicate names per environment."""
    allowed = {s.api_group: s for s in defs.control_plane.spec.raw_kcc}
    services = set(defs.services(domain))
    envs = defs.domain_environments(domain)
    problems: list[Problem] = []
    seen: dict[tuple[str, str, str], int] = {}
    for index, entry in enumerate(domain.spec.raw_kcc):
        base = f"spec.rawKcc[{index}]"
        targets = entry.environments if entry.environments is not None else envs
        for env in targets:
            if env not in envs:
                problems.append(Problem(domain.locate(f"{base}.environments"),
                                        f"{env!r} is not an environment of this domain"))
        single = (from_project(defs, domain, targets[0])
                  if len(targets) == 1 and targets[0] in envs else None)
        guarded = list(guardrail_problems(entry.manifest, single))
        if not guarded:  # then its shape, against the shipped CRD (unknown fields included)
            guarded = [tuple(m.split(": ", 1)) if ": " in m else ("", m)
                       for m in validate_object(entry.manifest)]
        for field_path, message in guarded:
            where = f"{base}.manifest" + (f".{field_path}" if field_path else "")
            problems.append(Problem(domain.locate(where), message))
        group = str(entry.manifest.get("apiVersion", "")).split("/")[0] \
            if isinstance(entry.manifest, dict) else ""
        if group.endswith(KCC_GROUP_SUFFIX):
            rule = allowed.get(group)
            if rule is None:
                problems.append(Problem(domain.locate(f"{base}.manifest.apiVersion"), (
                    f"{group} is not in the control plane's spec.rawKcc allow-list "
                    f"({', '.join(sorted(allowed)) or 'empty'})")))
            elif rule.service not in services:
                problems.append(Problem(domain.locate(f"{base}.manifest.apiVersion"), (
                    f"{group} needs {rule.service}, which this domain does not enable")))
        if isinstance(entry.manifest, dict):
            name = (entry.manifest.get("metadata") or {}).get("name")
            for env in targets:
                key = (env, str(entry.manifest.get("kind")), str(name))
                if key in seen:
                    problems.append(Problem(domain.locate(f"{base}.manifest.metadata.name"), (
                        f"{key[1]} {name!r} is already defined for {env} by "
                        f"spec.rawKcc[{seen[key]}]")))
                seen.setdefault(key, index)
    return problems


def allow_list_problems(defs: Definitions) -> list[Problem]:
    """The allow-list itself grants predefined roles only, for services the control plane
    has."""
    cp = defs.control_plane
    problems = []
    for index, rule in enumerate(cp.spec.raw_kcc):
        for j, role in enumerate(rule.roles):
            if role in BASIC_ROLES or not role.startswith("roles/"):
                problems.append(Problem(cp.locate(f"spec.rawKcc[{index}].roles[{j}]"),
                                        f"{role!r}: only predefined roles (roles/...), never "
                                        "a basic role"))
        if rule.service not in cp.spec.services:
            problems.append(Problem(cp.locate(f"spec.rawKcc[{index}].service"),
                                    f"{rule.service} is not in the control plane's services"))
    return problems


def from_project(defs: Definitions, domain: Domain, environment: str) -> str:
    from konfig.validate import project_id_for

    return project_id_for(defs, domain, environment)


def raw_kcc_roles(defs: Definitions, domain: Domain, environment: str) -> list[str]:
    """Roles the domain environment's Config Connector service account needs for its raw
    manifests there: the allow-list's roles of each API group they use."""
    allowed = {s.api_group: s for s in defs.control_plane.spec.raw_kcc}
    roles: set[str] = set()
    for entry in domain.spec.raw_kcc:
        if entry.environments is not None and environment not in entry.environments:
            continue
        rule = allowed.get(str(entry.manifest.get("apiVersion", "")).split("/")[0])
        if rule is not None:
            roles.update(rule.roles)
    return sorted(roles)


def compile_raw_kcc(ctx) -> list[KubeObject]:  # ctx: konfig.compile.context.CompileContext
    """Each raw manifest, once per environment, in that environment's namespace: Konfig's
    labels added, the project pinned, deletion policy ``abandon`` unless set. Assumes
    :func:`raw_kcc_problems` found nothing."""
    out: list[KubeObject] = []
    for domain in sorted(ctx.defs.domains.values(), key=lambda d: d.name):
        envs = [e.name for e in ctx.domain_environments(domain)]
        for entry in domain.spec.raw_kcc:
            for env in entry.environments if entry.environments is not None else envs:
                obj = copy.deepcopy(entry.manifest)
                meta = obj.setdefault("metadata", {})
                meta["namespace"] = naming.namespace_name(domain.name, env)
                meta["labels"] = {**(meta.get("labels") or {}),
                                  **konfig_labels(ctx.cp_name, domain.spec.platform,
                                                  domain.name, env)}
                annotations = {**(meta.get("annotations") or {}),
                               PROJECT_ID_ANNOTATION: ctx.project_id(domain, env)}
                annotations.setdefault(DELETION_POLICY, "abandon")
                meta["annotations"] = annotations
                out.append(obj)
    return out
