"""The template policy: what no resource template, bundled or not, may render or grant.

Konfig's invariants ("least privilege by construction", "abandoned, never deleted", "nothing
outside Konfig's labels is touched") must hold whatever template a definitions tree brings, so
every template is checked when it is loaded (its access modes and the constant parts of its
manifests) and every object it renders is checked when it is rendered (load-time dry render
and compile alike). Each violation is a :class:`~konfig.errors.Problem` at the template's file,
line and field. The rules:

- **kinds**: only Config Connector kinds Konfig ships CRDs for (``konfig/data/kcc/crds``),
  minus :data:`KONFIG_OWNED_GROUPS` / :data:`KONFIG_OWNED_KINDS` (IAM, the resource hierarchy,
  org policies, APIs, billing, Config Connector itself): IAM is derived by Konfig from access
  modes and never rendered by a template, so no template can bind anyone, make a key, or
  create a project;
- **roles**: an access mode may not name a basic role (owner, editor, viewer) or a role that
  administers IAM, projects, folders, organisations, billing, org policies or APIs
  (:func:`role_problem`); the binding itself is always Konfig's: the workload's own service
  account, on the template's resource or, where GCP offers nothing narrower, the domain
  environment's project;
- **Konfig's fields**: ``metadata.namespace``, ``konfig-*`` labels, the
  ``cnrm.cloud.google.com/deletion-policy`` annotation (only ``abandon``) and the
  ``cnrm.cloud.google.com/{project,folder,organization}-id`` annotations are Konfig's;
- **no public access**: no ``allUsers``/``allAuthenticatedUsers`` anywhere, a StorageBucket's
  ``publicAccessPrevention`` is ``enforced``, an SQLInstance has no public IPv4 address, a
  ComputeAddress is ``INTERNAL``, a RunService does not take ``INGRESS_TRAFFIC_ALL``, a
  ComputeFirewall does not admit ``0.0.0.0/0``;
- **own identity only**: a ``serviceAccountRef``/``serviceAccount``/``serviceAccountEmail``/
  ``serviceAccountName`` names the workload's own service account; ``metadata`` holds only
  name, labels and annotations; BigQuery dataset access lists (IAM by another name) are refused;
- **no other project**: project references (``projectRef``, ``projects/<id>/...`` names,
  ``projectId``/``project`` fields, service-account emails) name the domain environment's
  own project, or its environment's Shared VPC host project (``network.hostProject``: the
  network its private IPs live on).

A platform team widens the policy only in the ControlPlane (``spec.policy``: ``extraRoles``,
``extraKinds``, ``extraProjects``), so a reviewer sees the exception in the definitions repository's diff.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterator

from konfig.compile.state import DELETION_POLICY
from konfig.errors import Problem
from konfig.model.template import ResourceTemplate

#: API groups whose kinds are Konfig's alone (suffix ``.cnrm.cloud.google.com``).
KONFIG_OWNED_GROUPS = frozenset(
    {"iam", "resourcemanager", "orgpolicy", "serviceusage", "billingbudgets", "core",
     "privilegedaccessmanager"}
)
#: Further kinds that change a project's place or sharing (Shared VPC attachment).
KONFIG_OWNED_KINDS = frozenset({"ComputeSharedVPCHostProject", "ComputeSharedVPCServiceProject"})
#: Roles that are never acceptable in an access mode. Basic roles grant everything in a
#: project (https://cloud.google.com/iam/docs/roles-overview#basic).
BASIC_ROLES = frozenset({"roles/owner", "roles/editor", "roles/viewer"})
#: Role prefixes of services that administer identity, the hierarchy, policy, APIs or billing
#: (https://cloud.google.com/iam/docs/understanding-roles): an access mode naming one would
#: let a workload grant itself more.
ADMIN_ROLE_PREFIXES = (
    "roles/iam.", "roles/resourcemanager.", "roles/billing.", "roles/orgpolicy.",
    "roles/serviceusage.", "roles/privilegedaccessmanager.", "roles/accesscontextmanager.",
    "roles/essentialcontacts.", "roles/cloudasset.", "roles/securitycenter.",
)
#: Role-name endings that administer IAM policies of any service (``roles/x.securityAdmin``,
#: ``roles/compute.orgSecurityPolicyAdmin``, ``roles/x.iamAdmin``...).
_ADMIN_ROLE_SUFFIX = re.compile(r"\.(securityAdmin|[A-Za-z]*IamAdmin|iamAdmin|[a-z]*PolicyAdmin)$")
PUBLIC_MEMBERS = ("allUsers", "allAuthenticatedUsers")
#: The annotations Config Connector reads for a resource's project, folder or organisation.
SCOPE_ANNOTATIONS = tuple(
    f"cnrm.cloud.google.com/{scope}-id" for scope in ("project", "folder", "organization")
)
_PROJECT_IN_NAME = re.compile(r"(?:^|/)projects/([a-z][-a-z0-9]{4,28}[a-z0-9])(?=/|$)")
_SA_EMAIL = re.compile(r"@([a-z][-a-z0-9]{4,28}[a-z0-9])\.iam\.gserviceaccount\.com")


@dataclass(frozen=True)
class TemplatePolicy:
    """What a control plane allows beyond the default policy (``spec.policy``).

    - ``extra_roles``: roles allowed in access modes although the default policy refuses them
      (never basic roles);
    - ``extra_kinds``: Config Connector kinds (``Kind`` or ``group/Kind``) templates may render
      although Konfig owns them (never IAM kinds);
    - ``extra_projects``: projects rendered objects may refer to besides their own.
    """

    extra_roles: frozenset[str] = field(default_factory=frozenset)
    extra_kinds: frozenset[str] = field(default_factory=frozenset)
    extra_projects: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def of(cls, control_plane: Any | None) -> "TemplatePolicy":
        """The policy a ControlPlane definition sets (the default one for ``None``)."""
        spec = getattr(getattr(control_plane, "spec", None), "policy", None)
        if spec is None:
            return cls()
        return cls(frozenset(spec.extra_roles), frozenset(spec.extra_kinds),
                   frozenset(spec.extra_projects))


DEFAULT_POLICY = TemplatePolicy()


@lru_cache(maxsize=1)
def _shipped_kinds() -> frozenset[tuple[str, str]]:
    from konfig.kcc_schema import known_kinds  # reads the vendored CRD index once

    return frozenset(known_kinds())


def _short_group(group: str) -> str:
    return group.removesuffix(".cnrm.cloud.google.com")


def allowed_kinds(policy: TemplatePolicy = DEFAULT_POLICY) -> list[tuple[str, str]]:
    """``(group, kind)`` pairs templates may render under ``policy``, sorted."""
    return sorted(k for k in _shipped_kinds() if kind_problem(f"{k[0]}/v1beta1", k[1], policy) is None)


def kind_problem(api_version: str, kind: str, policy: TemplatePolicy = DEFAULT_POLICY) -> str | None:
    """Why a template may not render ``kind`` of ``api_version`` (``None`` if it may)."""
    group = api_version.rpartition("/")[0]
    short = _short_group(group)
    if (group, kind) not in _shipped_kinds():
        return (
            f"{kind} ({api_version}) is not a Config Connector kind Konfig knows; templates "
            "render only kinds whose CRD ships with Konfig (konfig/data/kcc/crds)"
        )
    if short == "iam":
        return (
            f"templates may not render IAM objects ({kind}): Konfig derives every binding from "
            "the template's access modes, for the workload's own service account only"
        )
    if short in KONFIG_OWNED_GROUPS or kind in KONFIG_OWNED_KINDS:
        if kind in policy.extra_kinds or f"{short}/{kind}" in policy.extra_kinds:
            return None
        return (
            f"{kind} belongs to Konfig (projects, folders, policies, APIs, billing and Config "
            "Connector are managed from the definitions); a control plane may allow it in "
            "spec.policy.extraKinds"
        )
    return None


def role_problem(role: str, policy: TemplatePolicy = DEFAULT_POLICY) -> str | None:
    """Why an access mode may not grant ``role`` (``None`` if it may)."""
    if role in BASIC_ROLES:
        return (
            f"{role} is a basic role (it grants nearly everything in a project); name the "
            "narrowest predefined role of the service"
        )
    if role in policy.extra_roles:
        return None
    if role.startswith(ADMIN_ROLE_PREFIXES) or _ADMIN_ROLE_SUFFIX.search(role):
        return (
            f"{role} administers IAM, projects, folders, organisations, policies or billing; a "
            "workload may not hold it (a control plane may allow it in spec.policy.extraRoles)"
        )
    return None


def template_problems(template: ResourceTemplate, policy: TemplatePolicy = DEFAULT_POLICY) -> list[Problem]:
    """Load-time policy violations of ``template``: roles of its access modes, kinds of its
    resources, and Konfig-owned fields written as constants."""
    problems: list[Problem] = []
    spec = template.spec
    for name in spec.access:
        mode = spec.access[name]
        roles = mode if isinstance(mode, list) else mode.roles
        short = isinstance(mode, list)
        for i, role in enumerate(roles):
            message = role_problem(role, policy)
            if message:
                where = f"spec.access.{name}[{i}]" if short else f"spec.access.{name}.roles[{i}]"
                problems.append(Problem(template.locate(where), message))
    for index, resource in enumerate(spec.resources):
        manifest = resource.template
        api_version, kind = manifest.get("apiVersion"), manifest.get("kind")
        origin = f"spec.resources[{index}].template"
        if isinstance(api_version, str) and isinstance(kind, str):
            message = kind_problem(api_version, kind, policy)
            if message:
                problems.append(Problem(template.locate(f"{origin}.kind"), message))
    return problems


def object_problems(
    obj: dict[str, Any], origin: str, *, project_id: str, policy: TemplatePolicy = DEFAULT_POLICY,
    shared_projects: frozenset[str] = frozenset(), service_accounts: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """Policy violations of one rendered object as ``(template field, message)``; ``origin``
    is the template field the object came from (``spec.resources[0].template``),
    ``project_id`` the domain environment's project and ``shared_projects`` other projects
    objects may refer to (a Shared VPC host project the compiler names); ``service_accounts``
    are the names and emails of the workload's own service account, the only one a rendered
    object may run as (empty: not checked)."""
    out: list[tuple[str, str]] = []
    projects = frozenset({project_id}) | shared_projects | policy.extra_projects
    kind = obj.get("kind", "")
    api_version = obj.get("apiVersion", "")
    message = kind_problem(api_version, kind, policy) if isinstance(kind, str) and isinstance(api_version, str) else None
    if message:
        out.append((f"{origin}.kind", message))
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    extra = sorted(set(metadata) - {"name", "namespace", "labels", "annotations"})
    if extra:
        out.append((f"{origin}.metadata.{extra[0]}", f"metadata may hold only name, labels and "
                    f"annotations (not {', '.join(extra)}): owner references, finalizers and the "
                    "rest are Konfig's"))
    if "namespace" in metadata:
        out.append((f"{origin}.metadata.namespace", "the namespace is Konfig's (the domain "
                    "environment's); leave metadata.namespace out"))
    for key in metadata.get("labels") or {}:
        if isinstance(key, str) and key.startswith("konfig-"):
            out.append((f"{origin}.metadata.labels.{key}", f"label {key!r} is Konfig's; "
                        "templates may not set konfig-* labels"))
    annotations = metadata.get("annotations") or {}
    for key, value in annotations.items() if isinstance(annotations, dict) else ():
        where = f"{origin}.metadata.annotations.{key}"
        if key == DELETION_POLICY and value != "abandon":
            out.append((where, f"{DELETION_POLICY} is Konfig's: stateful resources are abandoned, "
                        f"never deleted (got {value!r}; leave it out)"))
        elif key in SCOPE_ANNOTATIONS and not (key.endswith("/project-id") and value == project_id):
            out.append((where, f"{key} is Konfig's: objects live in the domain environment's "
                        f"project {project_id!r} (leave the annotation out)"))
    spec_fields = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "metadata")}
    for path, value in _walk(spec_fields, origin):
        out.extend(_value_problems(path, value, project_id, projects))
        if service_accounts:
            out.extend(_identity_problems(path, value, service_accounts))
    out.extend(_kind_rules(kind, obj.get("spec") or {}, f"{origin}.spec"))
    return out


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    """Every ``(path, value)`` below ``value``, containers included."""
    yield path, value
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk(item, f"{path}[{i}]")


def _value_problems(path: str, value: Any, project_id: str, projects: frozenset[str]) -> list[tuple[str, str]]:
    key = path.rpartition(".")[2]
    if isinstance(value, dict) and key == "projectRef":
        external = value.get("external")
        if "name" in value or (external is not None and str(external).removeprefix("projects/") not in projects):
            return [(path, f"objects may refer only to the domain environment's own project "
                     f"{project_id!r} (projectRef.external: projects/{project_id})")]
        return []
    if not isinstance(value, str):
        return []
    for member in PUBLIC_MEMBERS:
        if member in value:
            return [(path, f"{member} would make the resource public; templates may not grant "
                     "public access")]
    if key in ("projectId", "project") and value not in projects:
        return [(path, f"refers to project {value!r}; objects may refer only to the domain "
                 f"environment's own project {project_id!r}")]
    for pattern in (_PROJECT_IN_NAME, _SA_EMAIL):
        for other in pattern.findall(value):
            if other not in projects:
                return [(path, f"refers to project {other!r}; objects may refer only to the "
                         f"domain environment's own project {project_id!r}")]
    return []


_IDENTITY_KEYS = ("serviceAccountRef", "serviceAccount", "serviceAccountEmail", "serviceAccountName")


def _identity_problems(path: str, value: Any, accounts: frozenset[str]) -> list[tuple[str, str]]:
    """A rendered object may run only as the workload's own service account."""
    key = path.rpartition(".")[2]
    if key not in _IDENTITY_KEYS:
        return []
    if isinstance(value, dict):
        named = [value.get(k) for k in ("name", "external") if value.get(k) is not None]
    else:
        named = [value]
    if not named or any(str(n) not in accounts for n in named):
        return [(path, "objects may run only as the workload's own service account "
                 f"({', '.join(sorted(accounts))}); another identity would widen its access")]
    return []


def _kind_rules(kind: str, spec: Any, origin: str) -> list[tuple[str, str]]:
    if not isinstance(spec, dict):
        return []
    out = []
    if kind == "StorageBucket" and spec.get("publicAccessPrevention") != "enforced":
        out.append((f"{origin}.publicAccessPrevention", "a bucket must set publicAccessPrevention: "
                    "enforced (no public buckets)"))
    if kind == "SQLInstance":
        ip = ((spec.get("settings") or {}).get("ipConfiguration") or {}) if isinstance(spec.get("settings"), dict) else {}
        if not isinstance(ip, dict) or ip.get("ipv4Enabled", True) is not False:
            out.append((f"{origin}.settings.ipConfiguration.ipv4Enabled", "a database may not have "
                        "a public IP address: set ipv4Enabled: false and a private network"))
    if kind == "ComputeAddress" and spec.get("addressType") != "INTERNAL":
        out.append((f"{origin}.addressType", "addresses rendered by templates must be INTERNAL "
                    "(public entry points are Konfig's load balancer)"))
    if kind == "RunService" and spec.get("ingress") in (None, "INGRESS_TRAFFIC_ALL"):
        out.append((f"{origin}.ingress", "a Cloud Run service must not take traffic from the "
                    "internet directly (INGRESS_TRAFFIC_INTERNAL_ONLY or _LOAD_BALANCER)"))
    if kind == "BigQueryDataset" and spec.get("access"):
        out.append((f"{origin}.access", "dataset access lists are IAM by another name: grant "
                    "access through the template's access modes"))
    if kind == "ComputeForwardingRule" and spec.get("loadBalancingScheme") in (None, "EXTERNAL", "EXTERNAL_MANAGED"):
        out.append((f"{origin}.loadBalancingScheme", "forwarding rules rendered by templates must "
                    "be internal (public entry points are Konfig's load balancer)"))
    if kind == "ComputeFirewall":
        ranges = spec.get("sourceRanges") or []
        if isinstance(ranges, list) and any(r in ("0.0.0.0/0", "::/0") for r in ranges):
            out.append((f"{origin}.sourceRanges", "a firewall rule may not admit the whole "
                        "internet (0.0.0.0/0)"))
    return out


def rendered_problems(
    template: ResourceTemplate, objects: tuple[dict, ...], origins: tuple[str, ...], *,
    project_id: str, who: str, policy: TemplatePolicy = DEFAULT_POLICY,
    shared_projects: frozenset[str] = frozenset(), service_accounts: frozenset[str] = frozenset(),
) -> list[Problem]:
    """Policy violations of a render's ``objects`` (with their template ``origins``), located
    in the template and naming ``who`` asked for them."""
    problems = []
    for obj, origin in zip(objects, origins):
        for field_path, message in dict.fromkeys(object_problems(
            obj, origin, project_id=project_id, policy=policy, shared_projects=shared_projects,
            service_accounts=service_accounts)):
            problems.append(Problem(template.locate(field_path), f"{message} ({who})"))
    return problems
