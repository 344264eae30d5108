"""Naming rules and limits, each with its source.

Every limit Konfig enforces lives here so that the model, the compiler and the docs agree.
"""

from __future__ import annotations

import hashlib
import re

#: Kubernetes DNS label (RFC 1123), as the definitions contract requires for ``metadata.name``.
#: Source: https://kubernetes.io/docs/concepts/overview/working-with-objects/names/#dns-label-names
DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"
DNS_LABEL_RE = re.compile(DNS_LABEL)

#: Name length limits of the contract (spec/definitions.md, "Names").
MAX_CONTROL_PLANE_NAME = 20
MAX_PLATFORM_NAME = 20
MAX_DOMAIN_NAME = 20
MAX_WORKLOAD_NAME = 24
MAX_ENVIRONMENT_NAME = 8
#: Resource names inside a workload; they prefix Config Connector object names and env vars.
MAX_RESOURCE_NAME = 24

#: GCP project IDs: 6-30 characters, lowercase letters, digits and hyphens, starting with a
#: letter and not ending with a hyphen; some words are reserved.
#: Source: https://cloud.google.com/resource-manager/docs/creating-managing-projects#before_you_begin
PROJECT_ID_RE = re.compile(r"^[a-z][-a-z0-9]{4,28}[a-z0-9]$")
PROJECT_ID_MIN, PROJECT_ID_MAX = 6, 30
PROJECT_ID_FORBIDDEN_WORDS = ("google", "null", "undefined", "ssl")

#: Folder display names: 3-30 characters of letters, digits, spaces, hyphens and underscores,
#: starting and ending with a letter or digit.
#: Source: https://cloud.google.com/resource-manager/reference/rest/v3/folders#Folder (displayName)
FOLDER_DISPLAY_NAME_RE = re.compile(r"^[\w][\w -]{1,28}[\w]$")
FOLDER_DISPLAY_NAME_MIN, FOLDER_DISPLAY_NAME_MAX = 3, 30

#: Service account IDs: 6-30 characters, ``[a-z]([-a-z0-9]*[a-z0-9])``.
#: Source: https://cloud.google.com/iam/docs/service-accounts-create#creating
SERVICE_ACCOUNT_ID_RE = re.compile(r"^[a-z]([-a-z0-9]{4,28}[a-z0-9])$")

#: Kubernetes and GCP label values: at most 63 characters.
#: Source: https://cloud.google.com/resource-manager/docs/labels-overview#requirements
MAX_LABEL_VALUE = 63

#: Environment variable names injected into containers (POSIX portable names).
ENV_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: GCP API service names, e.g. ``run.googleapis.com``.
SERVICE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]*(\.[a-z0-9-]+)*\.googleapis\.com$")

#: Billing account IDs: three groups of six upper-case hexadecimal digits.
#: Source: https://cloud.google.com/billing/docs/how-to/find-billing-account-id
BILLING_ACCOUNT_RE = r"^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$"

#: Identity-provider groups are given in email form.
GROUP_EMAIL_RE = r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$"

#: GitLab group and project paths: letters, digits, ``_``, ``-`` and ``.``; not starting or
#: ending with a special character. Source: https://docs.gitlab.com/user/reserved_names/
GITLAB_PATH = r"^[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?(/[A-Za-z0-9]([A-Za-z0-9_.-]*[A-Za-z0-9])?)*$"


def project_id_problem(project_id: str) -> str | None:
    """Return why ``project_id`` is not a valid GCP project ID, or ``None`` if it is."""
    n = len(project_id)
    if not PROJECT_ID_MIN <= n <= PROJECT_ID_MAX:
        return (
            f"project ID {project_id!r} is {n} characters; GCP needs {PROJECT_ID_MIN}-"
            f"{PROJECT_ID_MAX} (set spec.gcp.projectIdPrefix or a projectIds override)"
        )
    if not PROJECT_ID_RE.match(project_id):
        return (
            f"project ID {project_id!r} must be lowercase letters, digits and hyphens, "
            "start with a letter and not end with a hyphen"
        )
    for word in PROJECT_ID_FORBIDDEN_WORDS:
        if word in project_id:
            return f"project ID {project_id!r} may not contain the reserved word {word!r}"
    return None


def folder_display_name_problem(name: str) -> str | None:
    """Return why ``name`` is not a valid GCP folder display name, or ``None``."""
    if not FOLDER_DISPLAY_NAME_MIN <= len(name) <= FOLDER_DISPLAY_NAME_MAX:
        return (
            f"folder display name {name!r} is {len(name)} characters; GCP needs "
            f"{FOLDER_DISPLAY_NAME_MIN}-{FOLDER_DISPLAY_NAME_MAX}"
        )
    if not FOLDER_DISPLAY_NAME_RE.match(name):
        return (
            f"folder display name {name!r} may hold only letters, digits, spaces, hyphens and "
            "underscores, and must start and end with a letter or digit"
        )
    return None


def service_account_id_problem(account_id: str) -> str | None:
    """Return why ``account_id`` is not a valid service-account ID (6-30 chars), or ``None``."""
    if not SERVICE_ACCOUNT_ID_RE.match(account_id):
        return (
            f"service account ID {account_id!r} must be 6-30 characters of lowercase letters, "
            "digits and hyphens, starting with a letter (GCP limit)"
        )
    return None


def short_hash(text: str, length: int = 4) -> str:
    """A stable lowercase hex digest prefix of ``text`` (sha256), used to keep truncated
    identifiers unique and stable across runs."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def saml_group_name(group_email: str) -> str:
    """The default SAML group name of an identity-provider group: the part before ``@``
    (spec/definitions.md, "Roles")."""
    return group_email.split("@", 1)[0]


#: A container image reference as registries and container runtimes accept it:
#: ``[host[:port]/]path[:tag][@sha256:digest]``, lowercase path components separated by
#: ``.``, ``_``, ``__`` or dashes. Source: the distribution reference grammar,
#: https://github.com/distribution/reference/blob/main/reference.go . No spaces, quotes or
#: shell metacharacters can pass, so the value is safe as a CI job's ``image:``.
IMAGE_REFERENCE_RE = (
    r"^"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
#: SAML group names as Konfig writes them into GitLab SAML group links: 1-255 printable
#: characters without quotes, backslashes, backticks, ``$`` or control characters (newlines),
#: not starting or ending with a space. GitLab matches the name exactly against the
#: identity provider's ``groups`` attribute (https://docs.gitlab.com/ee/user/group/saml_sso/group_sync.html).
SAML_GROUP_NAME_RE = r"^[^\s\"'`$\\\x00-\x1f\x7f](?:[^\"'`$\\\x00-\x1f\x7f]*[^\s\"'`$\\\x00-\x1f\x7f])?$"
#: GitLab group and project names: letters, digits, emoji, ``_``, ``.``, ``-``, spaces and
#: parentheses, starting with a letter, digit, emoji or ``_``; at most 255 characters.
#: Source: https://docs.gitlab.com/ee/user/reserved_names.html and GitLab's
#: ``Gitlab::Regex.group_name_regex``.
_NON_ASCII = "\u00a9-\U0010ffff"  # emoji and letters beyond ASCII, as literal characters (RE2 too)
GITLAB_NAME_RE = rf"^[\w{_NON_ASCII}][\w{_NON_ASCII}.() -]*$"
