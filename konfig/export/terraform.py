"""``konfig export terraform``: the desired Config Connector objects as Terraform HCL.

One ``resource`` per Config Connector object, typed and shaped by the Config Connector
service mappings (the same data the Terraform-based KCC controllers run on), and one
``import {}`` block per resource so that ``terraform apply`` adopts what already exists
instead of creating it again (https://developer.hashicorp.com/terraform/language/import).

The conversion follows the upstream KRM-to-Terraform converter (``pkg/krmtotf`` of
https://github.com/GoogleCloudPlatform/k8s-config-connector): the spec is copied, the resource
ID (``spec.resourceID`` or ``metadata.name``) and ``metadata.labels`` are mapped onto their
Terraform fields, every ``*Ref`` is resolved, camelCase becomes snake_case, directives
(``cnrm.cloud.google.com/force-destroy``) and containers (``cnrm.cloud.google.com/project-id``)
become arguments. Where it differs, on purpose:

- a reference to an object that is exported too becomes a Terraform reference
  (``google_project.x.project_id``), so Terraform orders creation by itself;
- KCC's multiplexed resources become the public provider resources (konfig/export/fixups.py);
- ``IAMPolicyMember`` / ``IAMPartialPolicy`` become ``*_iam_member`` resources
  (konfig/export/iam.py); kinds with neither a mapping nor an entry in
  konfig/export/direct_mappings.yaml are reported as skipped, never dropped silently;
- the ``abandon`` deletion policy becomes ``lifecycle { prevent_destroy = true }``.

Pure: :func:`export_terraform` returns data and file contents; nothing is written here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

from ruamel.yaml import YAML

from konfig.compile.state import DELETION_POLICY, KubeObject
from konfig.export import fixups
from konfig.export.conversion import ObjectConversion, nested
from konfig.export.hcl import Block, Body, Expr, HclMap, Template, render_file
from konfig.export.krm import Inventory, ObjectKey, annotations, group_of, is_kcc_resource, key_of
from konfig.export.names import snake_to_camel, terraform_name
from konfig.export.servicemappings import (
    ResourceConfig,
    ServiceMappings,
    TypeConfig,
    default_service_mappings,
    parse_service_mapping,
)
from konfig.export.templates import StrValue, expand

#: Konfig's mappings for kinds served by direct controllers (see the file's header).
DIRECT_MAPPINGS_FILE = Path(__file__).with_name("direct_mappings.yaml")
#: Minimum versions: ``import`` blocks with expressions in ``id`` need Terraform 1.6
#: (https://developer.hashicorp.com/terraform/language/import#syntax); the resources used
#: (``google_cloud_run_v2_service``, ``google_org_policy_policy``, ...) exist in provider 5.
TERRAFORM_VERSION = ">= 1.6"
GOOGLE_PROVIDER_VERSION = ">= 5.0"


@lru_cache(maxsize=1)
def direct_mappings() -> ServiceMappings:
    """Konfig's table for kinds without an upstream service mapping."""
    mappings = ServiceMappings()
    for doc in YAML(typ="safe", pure=True).load_all(DIRECT_MAPPINGS_FILE.read_text(encoding="utf-8")):
        for rc in parse_service_mapping(doc):
            mappings.by_kind.setdefault((rc.group, rc.kind), []).append(rc)
    return mappings


@dataclass(frozen=True)
class Options:
    """``keep_konfig_labels``: keep the ``konfig-*`` labels on the resources (default: drop
    them, as the KCC export does). ``managed_by_cnrm_label``: add ``managed-by-cnrm = "true"``
    as Config Connector does (the upstream converter's output; off for a walk-away export)."""

    keep_konfig_labels: bool = False
    managed_by_cnrm_label: bool = False


@dataclass(frozen=True)
class Variable:
    """An input the export cannot know (a server-generated folder number, a secret)."""

    name: str
    description: str
    sensitive: bool = False

    def block(self) -> Block:
        body = Body().add("description", self.description).add("type", Expr("string"))
        if self.sensitive:
            body.add("sensitive", True)
        return Block("variable", (self.name,), body)


@dataclass(frozen=True)
class Skipped:
    """An input object with no Terraform counterpart in the export, and why."""

    key: ObjectKey
    reason: str


@dataclass
class TfResource:
    """One exported resource. ``import_id`` is the ID for its ``import`` block (``None`` when
    it cannot be known, then ``warnings`` say so); ``kcc_import_id`` is the ID the upstream
    converter would print (its ``idTemplate`` expanded), kept for comparison."""

    key: ObjectKey
    type: str
    name: str
    body: Body
    import_id: StrValue | None
    kcc_import_id: StrValue | None = None
    prevent_destroy: bool = False

    @property
    def address(self) -> str:
        return f"{self.type}.{self.name}"

    def resource_block(self) -> Block:
        body = Body(list(self.body.entries))
        if self.prevent_destroy:
            body.add("lifecycle", Body().add("prevent_destroy", True))
        return Block("resource", (self.type, self.name), body)

    def import_block(self) -> Block | None:
        if self.import_id is None:
            return None
        return Block("import", (), Body().add("to", Expr(self.address)).add("id", self.import_id))


@dataclass
class TerraformExport:
    """The export as data. ``problems`` are errors (nothing should be written while there are
    any); ``warnings`` and ``skipped`` are written to README.md beside the configuration."""

    resources: list[TfResource] = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def files(self) -> dict[str, str]:
        """Relative path -> text: ``versions.tf``, ``variables.tf`` (if any), one ``.tf`` per
        namespace (``main.tf`` for objects without one) and ``README.md``."""
        by_file: dict[str, list[TfResource]] = {}
        for resource in self.resources:
            by_file.setdefault(f"{resource.key.namespace or 'main'}.tf", []).append(resource)
        files = {"versions.tf": render_file([_versions_block()], header=_HEADER)}
        if self.variables:
            files["variables.tf"] = render_file((v.block() for v in self.variables), header=_HEADER)
        for name, resources in sorted(by_file.items()):
            blocks: list[Block] = []
            for resource in resources:
                blocks.append(resource.resource_block())
                imported = resource.import_block()
                if imported is not None:
                    blocks.append(imported)
            files[name] = render_file(blocks, header=_HEADER)
        files["README.md"] = self.readme()
        return files

    def readme(self) -> str:
        """Notes for whoever takes over: what is and is not in the configuration."""
        return _readme(self)


_HEADER = "Written by `konfig export terraform`; see README.md in this folder."


def _versions_block() -> Block:
    google = HclMap((("source", "hashicorp/google"), ("version", GOOGLE_PROVIDER_VERSION)))
    body = Body().add("required_version", TERRAFORM_VERSION)
    body.add("required_providers", Body().add("google", google))
    return Block("terraform", (), body)


@dataclass
class _Plan:
    """One object to convert, with the Terraform address it will get."""

    obj: KubeObject
    key: ObjectKey
    rc: ResourceConfig
    tf_type: str = ""
    tf_name: str = ""


class Converter:
    """Converts one set of objects; holds the address of every exported object so that
    references between them become Terraform references.

    Two renderings of every body are made by the same code: the configuration (references as
    expressions) and the plan-time values ("known": literals, or ``var.*`` templates for
    server-generated IDs), from which import IDs are built.
    """

    def __init__(self, objects: Iterable[KubeObject], mappings: ServiceMappings, options: Options) -> None:
        self.inventory = Inventory(objects)
        self.mappings = mappings
        self.direct = direct_mappings()
        self.options = options
        self.result = TerraformExport()
        self.plans: dict[ObjectKey, _Plan] = {}
        self._known: dict[ObjectKey, dict[str, Any]] = {}
        self._visiting: set[ObjectKey] = set()
        self._variables: dict[str, Variable] = {}
        self._taken: set[str] = set()

    # -- lookups ---------------------------------------------------------------------

    def resource_config(self, obj: KubeObject) -> ResourceConfig | None:
        """Upstream mapping for ``obj``'s kind, else Konfig's direct-kind table."""
        spec = obj.get("spec") or {}
        return self.mappings.select(group_of(obj), obj.get("kind", ""), spec) or self.direct.select(
            group_of(obj), obj.get("kind", ""), spec
        )

    def config_for_kind(self, kind: str, group: str = "") -> ResourceConfig | None:
        rcs = (self.mappings.configs(group, kind) if group else []) or self.mappings.for_kind(kind)
        rcs = rcs or self.direct.for_kind(kind)
        return rcs[0] if rcs else None

    def find(self, kind: str, namespace: str, name: str, group: str = "") -> KubeObject | None:
        return self.inventory.find(kind, namespace, name, group)

    def warn(self, message: str) -> None:
        if message not in self.result.warnings:
            self.result.warnings.append(message)

    def variable(self, name: str, description: str, sensitive: bool = False) -> Expr:
        self._variables.setdefault(name, Variable(name, description, sensitive))
        return Expr(f"var.{name}")

    # -- planning --------------------------------------------------------------------

    def plan(self) -> None:
        from konfig.export.iam import IAM_KINDS

        for obj in sorted(self.inventory.objects, key=key_of):
            key = key_of(obj)
            if not is_kcc_resource(obj):
                self.result.skipped.append(
                    Skipped(key, "Kubernetes object, not a Google Cloud resource: not in Terraform")
                )
                continue
            if key.kind in IAM_KINDS:
                continue  # converted after every addressable object is planned
            rc = self.resource_config(obj)
            if rc is None:
                self.result.skipped.append(
                    Skipped(
                        key,
                        f"no Terraform mapping for kind {key.kind} (neither a Config Connector "
                        "service mapping nor Konfig's direct-kind table): recreate it by hand",
                    )
                )
                continue
            self.plans[key] = _Plan(obj, key, rc)
        for key, plan in sorted(self.plans.items()):
            plan.tf_type, _ = fixups.adjust(plan.rc.name, self.known_body(key))
            plan.tf_name = self.unique_name(plan.tf_type, terraform_name(key.namespace, key.name))

    def unique_name(self, tf_type: str, base: str) -> str:
        """``base``, or ``base_2``, ... when that address is already used."""
        name, n = base, 1
        while f"{tf_type}.{name}" in self._taken:
            n += 1
            name = f"{base}_{n}"
        self._taken.add(f"{tf_type}.{name}")
        return name

    # -- the two renderings ------------------------------------------------------------

    def known_body(self, key: ObjectKey) -> dict[str, Any]:
        """Plan-time values of ``key``'s Terraform arguments (before the public-resource
        fix-up), computed once."""
        if key not in self._known:
            if key in self._visiting:  # a reference cycle: values along it stay unknown
                return {}
            self._visiting.add(key)
            plan = self.plans[key]
            self._known[key] = ObjectConversion(self, plan.obj, plan.rc, known=True).tf_dict()
            self._visiting.discard(key)
        return self._known[key]

    def known_attribute(self, key: ObjectKey, attribute: str) -> StrValue | None:
        """Plan-time value of one attribute of an exported object: an argument, a status
        field, a server-generated ID (from status, else a variable), or a computed attribute
        (``email`` of a service account)."""
        plan = self.plans[key]
        if plan.rc.kind == "Folder" and attribute in ("folder_id", "name"):
            number = self.folder_number(plan)
            return number if attribute == "folder_id" else fixups.with_prefix(number, "folders/")
        body = self.known_body(key)
        value = body.get(attribute)
        if isinstance(value, (str, Template)) and value != "":
            return value
        status = plan.obj.get("status") or {}
        value = nested(status, snake_to_camel(attribute).split("."))
        if isinstance(value, str) and value:
            return value
        computed = fixups.COMPUTED_ATTRIBUTES.get((plan.rc.name, attribute))
        if computed:
            return expand(computed, lambda f: self.known_attribute(key, f))
        return None

    def folder_number(self, plan: _Plan) -> StrValue:
        """A folder's number: ``spec.resourceID`` (an adopted folder), ``status.folderId`` or
        ``status.name`` when the object was read from a cluster, else a Terraform variable
        the user fills in (folders get their number from Google when created)."""
        spec = plan.obj.get("spec") or {}
        status = plan.obj.get("status") or {}
        for value in (spec.get("resourceID"), status.get("folderId"), status.get("name")):
            if isinstance(value, str) and value:
                return fixups.strip_prefix(value, "folders/") or value
        name = f"{plan.tf_name or terraform_name(plan.key.namespace, plan.key.name)}_folder_number"
        display = spec.get("displayName", plan.key.name)
        return Template(
            (
                self.variable(
                    name,
                    f"Number of the existing folder {display!r} ({plan.key}); "
                    "`gcloud resource-manager folders list` shows it.",
                ),
            )
        )

    # -- converting ------------------------------------------------------------------

    def convert(self) -> TerraformExport:
        from konfig.export.iam import convert_iam

        self.plan()
        for key, plan in sorted(self.plans.items()):
            self.result.resources.append(self.convert_one(plan))
        for obj in sorted(self.inventory.objects, key=key_of):
            if is_kcc_resource(obj):
                convert_iam(self, obj)
        self.result.variables = sorted(self._variables.values(), key=lambda v: v.name)
        self.result.resources.sort(key=lambda r: (r.key, r.address))
        return self.result

    def convert_one(self, plan: _Plan) -> TfResource:
        conversion = ObjectConversion(self, plan.obj, plan.rc, known=False)
        config = conversion.tf_dict()
        for problem in conversion.problems:
            self.result.problems.append(problem)
        known_raw = self.known_body(plan.key)
        tf_type, config = fixups.adjust(plan.rc.name, config)
        _, known = fixups.adjust(plan.rc.name, known_raw)

        def lookup(body: dict[str, Any]):
            """Plan-time value of a field: from ``body``, else status/computed/variable."""

            def get(name: str) -> StrValue | None:
                value = body.get(name)
                if isinstance(value, (str, Template)) and value != "":
                    return value
                return self.known_attribute(plan.key, name)

            return get

        parents = fixups.REQUIRED_PARENTS.get(plan.rc.name)
        if parents and not any(known_raw.get(f) not in (None, "") for f in parents):
            self.result.problems.append(
                f"{plan.key}: has no parent; give {fixups.PARENT_HINTS[plan.rc.name]}"
            )
        kcc_id = self.kcc_import_id(plan, lookup(known_raw))
        import_id: StrValue | None
        if plan.rc.skip_import:
            import_id = None
            if tf_type not in fixups.IDEMPOTENT_CREATES:
                self.warn(f"{plan.key}: the provider cannot import {tf_type}; no import block written")
        elif tf_type in fixups.IMPORT_IDS:
            import_id = fixups.IMPORT_IDS[tf_type](lookup(known))
        else:
            import_id = kcc_id
        if import_id is None and not plan.rc.skip_import:
            self.warn(f"{plan.key}: import ID of {tf_type} not known before it exists; no import block written")
        body = to_body(config, fixups.SET_FIELDS.get(tf_type, ()))
        prevent = annotations(plan.obj).get(DELETION_POLICY) == "abandon"
        return TfResource(plan.key, tf_type, plan.tf_name, body, import_id, kcc_id, prevent)

    def kcc_import_id(self, plan: _Plan, get: Callable[[str], StrValue | None]) -> StrValue | None:
        """The import ID as upstream ``Resource.GetImportID`` builds it from the mapping."""
        rc = plan.rc
        template = rc.id_template
        if not template:
            template = (
                f"{{{{{rc.server_generated_id_field}}}}}"
                if rc.server_generated_id_field
                else f"{{{{project?}}}}/{{{{{rc.metadata_name}}}}}"
            )
        return expand(template, get)

    # -- references ------------------------------------------------------------------

    def resolve_reference(
        self, ref: dict[str, Any], target: TypeConfig, referrer: KubeObject, known: bool, where: str
    ) -> Any:
        """Value of one ``{name|external, namespace}`` reference held by ``referrer``: the
        external string as given (hierarchy prefixes such as ``projects/`` removed), a
        Terraform expression when the target is exported, else the target's literal value
        (with a warning). ``None`` with a problem recorded when it cannot be resolved."""
        referrer_key = key_of(referrer)
        if not isinstance(ref, dict):
            self.result.problems.append(f"{referrer_key}: {where}: a reference must be an object")
            return None
        external = ref.get("external")
        if external not in (None, ""):
            value = str(external)
            prefix = fixups.HIERARCHY_PREFIXES.get(target.kind)
            if prefix and not target.value_template and not target.target_field:
                value = fixups.strip_prefix(value, prefix) or value
            return value
        name = ref.get("name")
        if not name:
            self.result.problems.append(f"{referrer_key}: {where}: reference has neither name nor external")
            return None
        namespace = ref.get("namespace") or referrer_key.namespace
        obj = self.find(target.kind, namespace, name, target.group)
        key = key_of(obj) if obj is not None else None
        if key is not None and key in self.plans:
            if known:
                return self._known_reference(key, target)
            return self._expression_reference(key, target)
        value = self._assumed_reference(target, namespace, name)
        shown = value if isinstance(value, str) else "?"
        where_target = f"{target.kind} {namespace}/{name}" if namespace else f"{target.kind} {name}"
        if value is None:
            self.result.problems.append(
                f"{referrer_key}: {where}: {where_target} is not exported and its value cannot be "
                "derived; give the reference as `external`"
            )
            return None
        if not known:
            self.warn(
                f"{referrer_key}: {where}: {where_target} is not exported; "
                f"assumed its value is {shown!r}"
            )
        return value

    def _target_attribute(self, plan: _Plan, target: TypeConfig) -> str:
        if plan.rc.kind == "Folder":
            return "folder_id"  # references to folders always mean the bare number here
        # Config Connector reads a named target field from the target's spec or status
        # (``status.name`` of a secret is its full name); the provider has the same attribute.
        return target.target_field or plan.rc.resource_id_field or "name"

    def _expression_reference(self, key: ObjectKey, target: TypeConfig) -> Any:
        plan = self.plans[key]
        address = f"{plan.tf_type}.{plan.tf_name}"
        value = Expr(f"{address}.{self._target_attribute(plan, target)}")
        if target.value_template:
            return expand(target.value_template, lambda f: Expr(f"{address}.{f}"), value)
        return value

    def _known_reference(self, key: ObjectKey, target: TypeConfig) -> StrValue | None:
        plan = self.plans[key]
        value = self.known_attribute(key, self._target_attribute(plan, target))
        if target.value_template and value is not None:
            return expand(target.value_template, lambda f: self.known_attribute(key, f), value)
        return value

    def _assumed_reference(self, target: TypeConfig, namespace: str, name: str) -> StrValue | None:
        """The value of a reference to an object outside the export, assuming what Config
        Connector assumes by default: its resource ID is its name and its parent that of its
        namespace. Computed attributes (a service account's ``email``) are derived the same
        way; ``None`` when the value cannot be derived (a self link of an unknown network)."""
        rc = self.config_for_kind(target.kind, target.group)
        if rc is None:
            return name if not target.target_field and not target.value_template else None
        phantom: KubeObject = {
            "apiVersion": f"{target.group or rc.group}/v1beta1",
            "kind": target.kind,
            "metadata": {"name": name, "namespace": namespace},
        }
        body = ObjectConversion(self, phantom, rc, known=True).tf_dict()

        def attribute(field: str) -> StrValue | None:
            value = body.get(field)
            if isinstance(value, (str, Template)) and value != "":
                return value
            computed = fixups.COMPUTED_ATTRIBUTES.get((rc.name, field))
            return expand(computed, attribute) if computed else None

        if target.target_field:
            value = attribute(target.target_field)
        else:
            value = attribute(rc.resource_id_field) if rc.resource_id_field else name
        if value is None or not target.value_template:
            return value
        return expand(target.value_template, attribute, value)


def to_body(tf: dict[str, Any], set_fields: tuple[str, ...] = (), prefix: str = "") -> Body:
    """A Terraform-shaped dict as a block body: keys sorted; dicts become nested blocks,
    lists of dicts repeated blocks, :class:`HclMap` map attributes; ``None`` is left out and
    lists named in ``set_fields`` (dotted paths) are sorted."""
    body = Body()
    for name in sorted(tf):
        value = tf[name]
        path = f"{prefix}{name}"
        if value is None:
            continue
        if isinstance(value, dict):
            body.add(name, to_body(value, set_fields, path + "."))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                body.add(name, to_body(item, set_fields, path + "."))
        elif isinstance(value, list):
            if not value:
                continue  # like the upstream writer: an empty list is no argument at all
            if path in set_fields and all(isinstance(v, str) for v in value):
                value = sorted(value)
            body.add(name, value)
        else:
            body.add(name, value)
    return body


def export_terraform(
    objects: Iterable[KubeObject],
    options: Options | None = None,
    mappings: ServiceMappings | None = None,
) -> TerraformExport:
    """Convert the desired Kubernetes objects to Terraform.

    Returns a :class:`TerraformExport`; ``problems`` lists every object or reference that
    could not be converted (nothing should be written then), ``skipped`` every object with no
    Terraform counterpart, each with its reason. Raises nothing on bad input.
    """
    converter = Converter(objects, mappings or default_service_mappings(), options or Options())
    return converter.convert()


def _readme(export: TerraformExport) -> str:
    lines = [
        "# Terraform export",
        "",
        "Written by `konfig export terraform`: the Config Connector resources Konfig manages,",
        "as Terraform for the google provider, one file per Kubernetes namespace.",
        "",
        "## Taking over",
        "",
        "1. Stop Config Connector from managing these resources first: keep (or set) the",
        "   `cnrm.cloud.google.com/deletion-policy: abandon` annotation and delete the Konfig",
        "   definitions or the Config Connector objects, so nothing is deleted in Google Cloud.",
        "2. `terraform init`, then `terraform plan`: every resource has an `import` block, so",
        "   the plan shows imports, not creations. Review the remaining changes.",
        "3. `terraform apply` to record them in the Terraform state.",
        "",
        "## What differs from the Kubernetes objects",
        "",
        "- Objects with `deletion-policy: abandon` get `lifecycle { prevent_destroy = true }`.",
        "- Konfig's `konfig-*` labels and Config Connector's `managed-by-cnrm` label are not",
        "  written unless asked for; a plan may show them being removed from the resources.",
        "- Namespaces, ConfigConnectorContexts, RBAC and other Kubernetes-side objects are not",
        "  exported to Terraform: they configure the cluster, not Google Cloud.",
        "",
    ]
    if export.variables:
        lines += ["## Variables to set", ""]
        lines += [f"- `{v.name}`: {v.description}" for v in export.variables]
        lines.append("")
    if export.skipped:
        lines += ["## Not exported", ""]
        lines += [f"- {s.key}: {s.reason}" for s in export.skipped]
        lines.append("")
    if export.warnings:
        lines += ["## Warnings", ""]
        lines += [f"- {w}" for w in export.warnings]
        lines.append("")
    lines.append(f"Resources: {len(export.resources)}.")
    lines.append("")
    return "\n".join(lines)
