"""The GitLab adapter: keeps the GitLab tree under the adopted parent group true to the
definitions, through python-gitlab, on GitLab.com or a self-managed instance.

``reconcile(client_or_settings, tree, depth="full"|"shape", dry_run=False) -> SyncReport`` is
the entry point for the CLI (``konfig sync gitlab``) and the operator. The pieces follow the
adapter pattern: :func:`observe` -> :func:`diff` (a :class:`Plan`) -> :func:`apply` ->
:class:`SyncReport`.
"""

from konfig.gitlab.api import ApiError, GitLabApi
from konfig.gitlab.observe import AdoptionError, deep_slice, observe
from konfig.gitlab.plan import Change, Plan, diff
from konfig.gitlab.reconcile import reconcile
from konfig.gitlab.report import ChangeResult, SyncReport
from konfig.gitlab.settings import GitLabSettings, RetryPolicy
from konfig.gitlab.transport import KonfigSession, RequestStats, connect

__all__ = [
    "AdoptionError",
    "ApiError",
    "Change",
    "ChangeResult",
    "GitLabApi",
    "GitLabSettings",
    "KonfigSession",
    "Plan",
    "RequestStats",
    "RetryPolicy",
    "SyncReport",
    "connect",
    "deep_slice",
    "diff",
    "observe",
    "reconcile",
]
