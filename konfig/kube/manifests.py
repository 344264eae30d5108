"""Write Kubernetes objects as YAML manifests: one folder per namespace (``_cluster`` for
cluster-scoped objects), one file per kind, documents in apply order."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable

import yaml

from konfig.compile.state import KubeObject

CLUSTER_FOLDER = "_cluster"


def write_manifests(objects: Iterable[KubeObject], out_dir: str | Path) -> list[Path]:
    """Write ``objects`` under ``out_dir`` as ``<namespace>/<kind>.yaml`` and return the files
    written, sorted. Existing files of the same names are replaced; nothing else is removed."""
    grouped: dict[tuple[str, str], list[KubeObject]] = defaultdict(list)
    for obj in objects:
        folder = obj["metadata"].get("namespace") or (
            obj["metadata"]["name"] if obj["kind"] == "Namespace" else CLUSTER_FOLDER
        )
        grouped[(folder, obj["kind"])].append(obj)
    root = Path(out_dir)
    written = []
    for (folder, kind), docs in sorted(grouped.items()):
        path = root / folder / f"{kind.lower()}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False, width=100), encoding="utf-8")
        written.append(path)
    return sorted(written)
