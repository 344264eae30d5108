"""``konfig export kcc``: the desired objects as plain Config Connector manifests.

The result is meant for a standalone Config Connector in namespaced mode
(https://cloud.google.com/config-connector/docs/how-to/install-namespaced): one folder per
namespace holding its Namespace, its ConfigConnectorContext and its Config Connector
resources. Konfig's traces are removed: its labels (``konfig-*``), ownerReferences to Konfig
definitions, kopf/Konfig annotations and finalizers, and server-set metadata and ``status``.
``cnrm.cloud.google.com/*`` annotations (project, deletion policy, directives) are kept.

Pure: :func:`export_kcc` returns file contents; :func:`konfig.export.files.write_files` writes.
"""

from __future__ import annotations

import copy
import io
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ruamel.yaml import YAML
from ruamel.yaml.representer import SafeRepresenter

from konfig.compile.state import KubeObject
from konfig.export.krm import (
    KCC_CORE_GROUP,
    LAST_APPLIED,
    ObjectKey,
    group_of,
    is_kcc_resource,
    is_konfig_annotation,
    is_konfig_owner,
    key_of,
    spec_without_konfig_labels,
    without_konfig_labels,
)

#: Metadata set by the API server; meaningless in a manifest.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)
#: Folder for cluster-scoped objects other than Namespaces.
CLUSTER_FOLDER = "_cluster"


@dataclass(frozen=True)
class Omitted:
    """An input object left out of the export and why."""

    key: ObjectKey
    reason: str


@dataclass
class KccExport:
    """The export as data: ``files`` maps relative paths to YAML text; ``omitted`` lists
    objects not exported (with the reason), also written to README.md."""

    files: dict[str, str] = field(default_factory=dict)
    omitted: list[Omitted] = field(default_factory=list)
    exported: list[ObjectKey] = field(default_factory=list)


def clean_object(obj: KubeObject, keep_konfig_labels: bool = False) -> KubeObject:
    """A copy of ``obj`` without Konfig's labels (in metadata and in the spec's label maps),
    ownerReferences, annotations and finalizers, server-set metadata or ``status``.
    ``cnrm.cloud.google.com/*`` and other annotations stay.
    """
    out = copy.deepcopy(obj)
    out.pop("status", None)
    meta: dict[str, Any] = out.setdefault("metadata", {})
    for key in SERVER_METADATA:
        meta.pop(key, None)
    if not keep_konfig_labels:
        _set_or_drop(meta, "labels", without_konfig_labels(meta.get("labels") or {}))
        if isinstance(out.get("spec"), dict):
            out["spec"] = spec_without_konfig_labels(out["spec"])
    _set_or_drop(
        meta,
        "annotations",
        {
            k: v
            for k, v in (meta.get("annotations") or {}).items()
            if not is_konfig_annotation(k) and k != LAST_APPLIED
        },
    )
    _set_or_drop(
        meta, "ownerReferences", [r for r in meta.get("ownerReferences") or [] if not is_konfig_owner(r)]
    )
    _set_or_drop(
        meta, "finalizers", [f for f in meta.get("finalizers") or [] if not is_konfig_annotation(f)]
    )
    return out


def _set_or_drop(meta: dict[str, Any], key: str, value: Any) -> None:
    if value:
        meta[key] = value
    else:
        meta.pop(key, None)


def _file_name(obj: KubeObject) -> str:
    key = key_of(obj)
    if key.kind == "Namespace" and key.group == "":
        return "00-namespace.yaml"
    if key.group == KCC_CORE_GROUP:
        return f"01-{key.kind.lower()}.yaml"
    return f"{key.kind.lower()}-{key.name}.yaml"


#: Plain scalars that YAML 1.1 parsers (kubectl's go-yaml among them) read as booleans,
#: nulls or sexagesimal numbers although YAML 1.2 reads them as strings; written quoted.
#: Source: https://yaml.org/type/bool.html, https://yaml.org/type/int.html
_YAML11_SPECIAL = re.compile(
    r"^(?:[yYnN]|yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF"
    r"|~|null|Null|NULL|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$"
)


def _represent_str(representer: Any, data: str) -> Any:
    style = "'" if _YAML11_SPECIAL.match(data) else None
    return representer.represent_scalar("tag:yaml.org,2002:str", data, style=style)


class _Representer(SafeRepresenter):
    """ruamel's safe representer with YAML 1.1-safe strings (a subclass, so that other
    users of ruamel in the process are not affected)."""


_Representer.add_representer(str, _represent_str)


def _dump(obj: KubeObject) -> str:
    yaml = YAML(typ="safe", pure=True)
    yaml.Representer = _Representer
    yaml.default_flow_style = False
    yaml.width = 1 << 16  # never fold long values (image digests, descriptions)
    yaml.sort_base_mapping_type_on_output = False  # keep apiVersion, kind, metadata, spec order
    stream = io.StringIO()
    yaml.dump(obj, stream)
    return stream.getvalue()


def export_kcc(objects: Iterable[KubeObject], keep_konfig_labels: bool = False) -> KccExport:
    """Plain Config Connector manifests for ``objects``.

    Layout: ``<namespace>/00-namespace.yaml``, ``<namespace>/01-configconnectorcontext.yaml``
    and ``<namespace>/<kind>-<name>.yaml`` per Config Connector resource; README.md lists
    what was left out. Objects that are neither Namespaces nor Config Connector kinds (RBAC,
    Secrets, ...) are left out with a reason: they are Konfig's own plumbing, not cloud
    resources. Raises nothing; a duplicate object is reported in ``omitted``.
    """
    result = KccExport()
    seen: set[str] = set()
    for obj in sorted(objects, key=key_of):
        key = key_of(obj)
        is_namespace = key.kind == "Namespace" and key.group == ""
        if not (is_namespace or is_kcc_resource(obj) or group_of(obj) == KCC_CORE_GROUP):
            result.omitted.append(
                Omitted(
                    key,
                    "not a Config Connector object (Konfig's cluster plumbing such as RBAC, or a "
                    "workload manifest): apply it with your own tooling if you still need it",
                )
            )
            continue
        folder = key.name if is_namespace else (key.namespace or CLUSTER_FOLDER)
        path = f"{folder}/{_file_name(obj)}"
        if path in seen:
            result.omitted.append(Omitted(key, f"duplicate of an object already written to {path}"))
            continue
        seen.add(path)
        result.files[path] = _dump(clean_object(obj, keep_konfig_labels))
        result.exported.append(key)
    result.files["README.md"] = _readme(result, keep_konfig_labels)
    return result


def _readme(result: KccExport, keep_konfig_labels: bool) -> str:
    lines = [
        "# Config Connector export",
        "",
        "Written by `konfig export kcc`: plain Config Connector manifests, one folder per",
        "namespace, for a standalone Config Connector in namespaced mode.",
        "",
        "- Each folder holds its Namespace (`00-namespace.yaml`, annotated with its project),",
        "  its ConfigConnectorContext (`01-configconnectorcontext.yaml`) and one file per",
        "  Config Connector resource. Apply a folder with `kubectl apply -f <folder>/`.",
        "- " + ("Konfig's labels were kept." if keep_konfig_labels else "Konfig's labels (`konfig-*`) were removed."),
        "- ownerReferences to Konfig definitions, kopf/Konfig annotations and finalizers,",
        "  server-set metadata and `status` were removed; `cnrm.cloud.google.com/*`",
        "  annotations (project, deletion policy, directives) were kept.",
        "- Before applying these manifests to another cluster, stop Konfig from reconciling",
        "  the same objects (remove its definitions with the `abandon` deletion policy kept).",
        "",
        f"Exported objects: {len(result.exported)}.",
        "",
    ]
    if result.omitted:
        lines += ["## Not exported", ""]
        lines += [f"- {item.key}: {item.reason}" for item in result.omitted]
        lines.append("")
    return "\n".join(lines)
