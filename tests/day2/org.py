"""A small organisation as cluster objects (dicts, camelCase, as the API server returns them)
and as models, for the day-2 tests: control plane ``acme`` (dev -> stage -> prod), platform
``retail``, domains ``shop`` (every environment) and ``stores`` (dev and prod only)."""

from __future__ import annotations

import copy
from typing import Any

from konfig.load import parse_definition

API = "konfig.dev/v1alpha1"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
REPO = "europe-west1-docker.pkg.dev/acme-konfig/shop/checkout"
IMAGE_A = f"{REPO}@{DIGEST_A}"
IMAGE_B = f"{REPO}@{DIGEST_B}"
#: Predefined (not basic) roles: IAM accepts conditions on these.
BREAK_GLASS_ROLES = ["roles/run.admin", "roles/cloudsql.admin"]


def control_plane(**break_glass: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "ControlPlane",
        "metadata": {"name": "acme"},
        "spec": {
            "gcp": {
                "parent": "organizations/123456789012",
                "billingAccount": "012345-6789AB-CDEF01",
                "defaultRegion": "europe-west1",
                "projectIdPrefix": "acme-",
            },
            "gitlab": {"url": "https://gitlab.example.com", "parentGroup": "acme"},
            "environments": [{"name": "dev"}, {"name": "stage"}, {"name": "prod", "production": True}],
            "groups": [
                {"group": "platform-admins@acme.com", "role": "owner"},
                {"group": "engineering@acme.com", "role": "viewer"},
            ],
            "breakGlass": {"maxDuration": "4h", "roles": BREAK_GLASS_ROLES, **break_glass},
        },
    }


def platform(groups: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Platform",
        "metadata": {"name": "retail"},
        "spec": {"groups": groups if groups is not None else [
            {"group": "retail-owners@acme.com", "role": "owner"},
            {"group": "retail-leads@acme.com", "role": "maintainer"},
        ]},
    }


def domain(name: str = "shop", **spec: Any) -> dict[str, Any]:
    base = {
        "platform": "retail",
        "groups": [
            {"group": f"{name}-devs@acme.com", "role": "developer"},
            {"group": f"{name}-oncall@acme.com", "role": "owner"},
        ],
        "workloads": ["checkout"],
    }
    return {"apiVersion": API, "kind": "Domain", "metadata": {"name": name}, "spec": {**base, **spec}}


def stores() -> dict[str, Any]:
    return domain("stores", environments=["dev", "prod"])


def workload(domain_name: str = "shop", image: str = IMAGE_A, name: str = "checkout",
             **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": API,
        "kind": "Workload",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": domain_name}},
        "spec": {"platform": "retail", "domain": domain_name, "image": image,
                 "env": {"LOG_LEVEL": "info"}, **spec},
    }


def running(obj: dict[str, Any], image: str | None = None, *, generation: int = 1,
            observed: int | None = None, ready: str = "True") -> dict[str, Any]:
    """``obj`` as the API server returns it after the operator reported on it."""
    out = copy.deepcopy(obj)
    out["metadata"].setdefault("namespace", f"{obj['spec']['domain']}-dev")
    out["metadata"].update(generation=generation, resourceVersion="7", uid="u-1")
    observed = generation if observed is None else observed
    out["status"] = {
        "image": image or obj["spec"]["image"],
        "observedGeneration": observed,
        "conditions": [{"type": "Ready", "status": ready, "reason": "Reconciled" if ready == "True" else "Failing",
                        "observedGeneration": observed}],
    }
    return out


def model(obj: dict[str, Any]):
    """The validated model of a definition dict."""
    return parse_definition(copy.deepcopy(obj), file=f"{obj['kind']}/{obj['metadata']['name']}")
