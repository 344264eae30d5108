"""Every other upstream Config Connector sample (data/samples-by-sample, see data/SOURCE.md:
the networking, load-balancing, DNS, certificate, monitoring, Dataflow and PAM kinds among
them) through the Terraform export one sample at a time: it converts without a problem,
Terraform parses the result and every reference resolves."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import DATA, load_yaml_docs, parse_terraform_dir

from konfig.export import export_terraform, write_files

ROOT = DATA / "samples-by-sample"
SUBSTITUTIONS = {"PROJECT_ID": "my-project", "FOLDER_ID": "123", "ORG_ID": "456",
                 "PROJECT_NUMBER": "789", "HOST_PROJECT_ID": "my-host",
                 "BILLING_ACCOUNT_ID": "012345-6789AB-CDEF01", "DNS_NAME": "example.com"}


def _samples() -> list[tuple[str, list[Path]]]:
    """(id, files): a sample folder, or a kind folder whose files make one sample."""
    out = []
    for kind in sorted(p for p in ROOT.iterdir() if p.is_dir()):
        folders = sorted(p for p in kind.iterdir() if p.is_dir())
        if folders:
            out += [(f"{kind.name}/{f.name}", sorted(f.rglob("*.yaml"))) for f in folders]
        else:
            out.append((kind.name, sorted(kind.glob("*.yaml"))))
    return out


@pytest.mark.parametrize(("files",), [pytest.param(f, id=i) for i, f in _samples()])
def test_sample_exports_and_parses(files: list[Path], tmp_path: Path) -> None:
    objects = [{"apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": "s", "annotations": {"cnrm.cloud.google.com/project-id": "my-project"}}}]
    for path in files:
        for doc in load_yaml_docs(path, SUBSTITUTIONS):
            doc["metadata"]["namespace"] = "s"
            objects.append(doc)
    export = export_terraform(objects)
    assert export.problems == []
    skipped = {s.key.kind for s in export.skipped} - {"Namespace", "Secret"}
    # Kinds with neither a service mapping nor a direct-kind entry are skipped by name, never
    # silently: exactly these, today.
    assert skipped <= NOT_EXPORTED, skipped
    write_files(tmp_path, export.files())
    parse_terraform_dir(tmp_path).check_references()


#: Direct (non-Terraform) Config Connector kinds the export cannot convert yet; it lists each
#: object under `skipped` with "recreate it by hand".
NOT_EXPORTED = {"MonitoringDashboard", "MonitoringService", "MonitoringServiceLevelObjective",
                "BillingBudgetsBudget", "MonitoringUptimeCheckConfig", "MonitoringGroup",
                "PrivilegedAccessManagerEntitlement",
                # IAM audit configs are skipped by design (konfig/export/iam.py).
                "IAMAuditConfig",
                # Dependency objects of some samples, of services whose mappings are not
                # vendored (Konfig renders none of them).
                "IAPBrand", "IAPIdentityAwareProxyClient", "ComputeServiceAttachment",
                "CloudFunctionsFunction"}
