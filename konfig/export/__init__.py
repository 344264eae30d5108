"""Escape hatches: the desired state as plain Config Connector manifests or as Terraform.

- :func:`export_kcc` (konfig/export/kcc.py): manifests without Konfig's labels, ownership
  and annotations, one folder per namespace, for a standalone Config Connector.
- :func:`export_terraform` (konfig/export/terraform.py): HCL for the google provider, built
  from the Config Connector service mappings, with one ``import`` block per resource.
- :func:`write_files` (konfig/export/files.py): the only function here that writes.

Both exports are pure: they take the Kubernetes objects of a
:class:`konfig.compile.state.DesiredState` and return file contents plus notes.
"""

from konfig.export.files import OutputNotEmpty, write_files
from konfig.export.kcc import KccExport, export_kcc
from konfig.export.terraform import Options, TerraformExport, export_terraform

__all__ = [
    "KccExport",
    "Options",
    "OutputNotEmpty",
    "TerraformExport",
    "export_kcc",
    "export_terraform",
    "write_files",
]
