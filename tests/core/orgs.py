"""Small organisations written as YAML text, for loader and compiler tests."""

from __future__ import annotations

from pathlib import Path

CONTROL_PLANE = """\
apiVersion: konfig.dev/v1alpha1
kind: ControlPlane
metadata: {name: acme}
spec:
  gcp:
    parent: organizations/123456789012
    billingAccount: 012345-6789AB-CDEF01
    defaultRegion: us-central1
    projectIdPrefix: acme-
  gitlab: {url: https://gitlab.example.com, parentGroup: acme}
  environments:
    - {name: dev}
    - {name: stage}
    - {name: prod, production: true}
  services: [run.googleapis.com, sqladmin.googleapis.com, storage.googleapis.com, pubsub.googleapis.com]
  groups:
    - {group: platform-admins@acme.com, role: owner}
"""

PLATFORM = """\
apiVersion: konfig.dev/v1alpha1
kind: Platform
metadata: {name: retail}
spec:
  groups: [{group: retail-leads@acme.com, role: maintainer}]
"""

DOMAIN = """\
apiVersion: konfig.dev/v1alpha1
kind: Domain
metadata: {name: ecommerce}
spec:
  platform: retail
  groups:
    - {group: ecommerce-devs@acme.com, role: developer}
  workloads: [checkout]
"""

WORKLOAD = """\
apiVersion: konfig.dev/v1alpha1
kind: Workload
metadata: {name: checkout}
spec:
  platform: retail
  domain: ecommerce
  image: us-docker.pkg.dev/acme-cp/ecommerce/checkout@sha256:%s
  resources:
    - {name: receipts, template: storage-bucket, access: write}
""" % ("a" * 64)


def write_org(root: Path, **files: str) -> Path:
    """Write the minimal organisation into ``root``, with ``files`` (name → text, ``None``
    text removes a default file) added or replacing the defaults. Returns ``root``."""
    defaults = {
        "control-plane.yaml": CONTROL_PLANE,
        "platform.yaml": PLATFORM,
        "domain.yaml": DOMAIN,
        "workload.yaml": WORKLOAD,
    }
    defaults.update(files)
    for name, text in defaults.items():
        if text is None:
            continue
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
