"""Nothing hangs: YAML alias bombs, huge or deep files and expensive CEL expressions are
refused in seconds with the file (and field) named. Each runs `konfig validate` in a child
process that is killed after 60 s, so a hang fails the test instead of stalling the suite."""

from __future__ import annotations

import pytest

from tests.guardrails.helpers import TEMPLATE, problem_at, validate, validate_in_subprocess, write_tree

FILE = "templates/box.yaml"


def alias_bomb(levels: int = 9) -> str:
    lines = ["apiVersion: konfig.dev/v1alpha1", "kind: Platform", "metadata: {name: bomb}",
             "spec:", "  displayName: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels + 1):
        lines.append(f"  x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    write_tree(tmp_path, **{"bomb.yaml": alias_bomb()})
    result = validate_in_subprocess(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "bomb.yaml:" in result.stderr and "aliases expand" in result.stderr


def test_deeply_nested_yaml_is_refused_without_a_traceback(tmp_path):
    write_tree(tmp_path, **{"deep.yaml": "a: " + "[" * 1000 + "]" * 1000 + "\n"})
    code, lines = validate(tmp_path)
    assert code == 1
    assert any(line.startswith("deep.yaml:1:") for line in lines), lines


def test_a_huge_file_is_refused_by_size(tmp_path):
    write_tree(tmp_path, **{"huge.yaml": "# padding\n" * 200_000})
    code, lines = validate(tmp_path)
    assert code == 1
    assert any(line.startswith("huge.yaml:") and "at most 1,048,576" in line for line in lines), lines


def with_env(expression: str, params: str = "") -> str:
    text = TEMPLATE.replace('BUCKET: "${resource.objectName}"', f"BIG: >-\n      ${{{expression}}}")
    if params:
        text = text.replace("names: {type: array, items: {type: string}, default: [a, b]}",
                            f"names: {{type: array, items: {{type: string}}, default: {params}}}")
    return text


def test_too_many_nested_comprehensions_are_refused_at_load(tmp_path):
    expression = ("params.names.map(a, params.names.map(b, params.names.map(c, "
                  "params.names.map(d, a + b + c + d)))).size()")
    code, lines = validate(write_tree(tmp_path, with_env(expression)))
    assert code == 1
    assert "nests 4 comprehensions" in problem_at(lines, FILE, "spec.env.BIG")


@pytest.mark.parametrize("expression", [
    # n^3 steps over a long list: minutes of cel-rust without the cost limit
    "params.names.map(a, params.names.map(b, params.names.map(c, a + b + c))).size()",
    # string blow-up through an extension function
    "params.text.replace('x', params.text + params.text + params.text).replace('x', "
    "params.text + params.text).size()",
    "lists.range(100000000).size()",
])
def test_expensive_expressions_are_refused_quickly(tmp_path, expression):
    names = "[" + ", ".join(f"n{i}" for i in range(400)) + "]"
    text = with_env(expression, names).replace("text: {type: string, default: x}",
                                               f"text: {{type: string, default: {'x' * 5000}}}")
    write_tree(tmp_path, text)
    result = validate_in_subprocess(tmp_path)
    assert result.returncode == 1, result.stderr
    assert f"{FILE}:" in result.stderr and "spec.env.BIG" in result.stderr, result.stderr
    assert ("evaluation steps" in result.stderr or "at most" in result.stderr), result.stderr


def test_a_workload_cannot_make_an_expression_expensive_with_params(tmp_path):
    expression = "params.names.map(a, params.names.map(b, a + b)).size()"
    user = ("apiVersion: konfig.dev/v1alpha1\nkind: Workload\nmetadata: {name: boxer}\n"
            "spec:\n  platform: retail\n  domain: ecommerce\n  resources:\n"
            "    - name: things\n      template: box\n      access: read\n"
            "      params: {names: [" + ", ".join(f"n{i}" for i in range(2000)) + "]}\n")
    write_tree(tmp_path, with_env(expression), **{"boxer.yaml": user})
    result = validate_in_subprocess(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "evaluation steps" in result.stderr, result.stderr


def test_oversized_params_are_refused_at_the_request(tmp_path):
    user = ("apiVersion: konfig.dev/v1alpha1\nkind: Workload\nmetadata: {name: boxer}\n"
            "spec:\n  platform: retail\n  domain: ecommerce\n  resources:\n"
            "    - name: things\n      template: box\n      access: read\n"
            f"      params: {{text: {'y' * 70_000}}}\n")
    code, lines = validate(write_tree(tmp_path, **{"boxer.yaml": user}))
    assert code == 1
    assert "bytes of JSON" in problem_at(lines, "boxer.yaml", "spec.resources[0].params")


def test_an_overlong_expression_is_refused_at_load(tmp_path):
    expression = " + ".join(["'x'"] * 1500)
    code, lines = validate(write_tree(tmp_path, with_env(expression)))
    assert code == 1
    assert "characters long" in problem_at(lines, FILE, "spec.env.BIG")


def test_a_backtracking_parameter_pattern_cannot_hang_validate(tmp_path):
    text = TEMPLATE.replace("text: {type: string, default: x}",
                            'text: {type: string, pattern: "^(a+)+$", default: "' + "a" * 40 + '!"}')
    write_tree(tmp_path, text)
    result = validate_in_subprocess(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "does not match '^(a+)+$'" in result.stderr and "Traceback" not in result.stderr


def test_a_pattern_outside_re2_syntax_is_refused(tmp_path):
    text = TEMPLATE.replace("text: {type: string, default: x}",
                            'text: {type: string, pattern: "^(?!admin)", default: x}')
    code, lines = validate(write_tree(tmp_path, text))
    assert code == 1
    assert any("is not RE2 syntax" in line for line in lines), lines


def test_a_remote_schema_reference_is_a_problem_not_a_traceback(tmp_path):
    text = TEMPLATE.replace("    type: object\n    additionalProperties: false\n",
                            "    $ref: 'https://example.com/schema.json'\n    type: object\n"
                            "    additionalProperties: false\n", 1)
    code, lines = validate(write_tree(tmp_path, text))
    assert code == 1
    assert any("templates/box.yaml:" in line and "cannot be applied" in line for line in lines), lines


@pytest.mark.parametrize("value, words", [
    ("2024-01-01", "date"), ("!!binary aGVsbG8=", "binary"), (".nan", "finite"),
    ("9" * 5000, "number this long"),
])
def test_values_no_definition_can_hold_are_refused_at_their_field(tmp_path, value, words):
    text = TEMPLATE.replace("text: {type: string, default: x}", f"text: {{default: {value}}}")
    code, lines = validate(write_tree(tmp_path, text))
    assert code == 1
    assert words in problem_at(lines, FILE, "spec.parameters.properties.text.default")
