"""Settings of the GitLab adapter: where GitLab is, how hard to push it, how to make projects."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

#: How workload projects are made from the workload template.
#: ``auto``: a GitLab custom project template where the instance offers one (Premium, with the
#: control-plane group selected as the adopted parent group's *Custom project templates*
#: source), else an initial commit. ``custom_template``: template only (fails where
#: unavailable). ``fork``: fork the template and remove the fork relationship (all tiers).
#: ``initial_commit``: an empty project and one commit with the template's files (all tiers).
CreationMode = Literal["auto", "custom_template", "fork", "initial_commit"]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one HTTP request (through tenacity).

    429 answers wait ``Retry-After`` seconds (capped at ``max_wait``); 5xx answers and
    connection errors wait an exponential backoff with jitter: ``initial * 2**n`` plus up to
    ``jitter`` seconds, at most ``max_wait``. ``attempts`` counts the first try.
    GitLab's rate limits and headers: https://docs.gitlab.com/security/rate_limits/
    """

    attempts: int = 8
    initial: float = 0.5
    max_wait: float = 60.0
    jitter: float = 0.5


@dataclass(frozen=True)
class GitLabSettings:
    """Everything the adapter needs to reach GitLab and pace itself.

    ``max_in_flight`` bounds concurrent HTTP requests (and worker threads). ``per_page`` is the
    page size of list calls (GitLab's maximum is 100). ``import_timeout`` (seconds) is how long
    to wait for an asynchronous template import or fork before giving up on that project for
    this run; ``import_poll`` is the first delay before polling ``import_status`` (it doubles up
    to 5 s). ``deep_period`` spreads the deep pass of shape-depth resyncs: each resync reads the
    links, variables and protections of about ``1/deep_period`` of the managed objects.
    ``requests_per_minute`` is the request budget (every attempt counts): requests beyond it
    wait for the budget to refill; the default is GitLab.com's authenticated API limit of
    2,000 requests per minute per user
    (https://docs.gitlab.com/user/gitlab_com/#rate-limits-on-gitlabcom); ``0`` is no budget.
    """

    url: str = "https://gitlab.com"
    token: str | None = field(default=None, repr=False)
    max_in_flight: int = 8
    per_page: int = 100
    timeout: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    creation_mode: CreationMode = "auto"
    import_timeout: float = 600.0
    import_poll: float = 1.0
    deep_period: int = 12
    ssl_verify: bool | str = True
    requests_per_minute: int = 2000

    @classmethod
    def from_env(cls, url: str | None = None, **overrides: object) -> "GitLabSettings":
        """Settings with the token from ``GITLAB_TOKEN`` and the URL from ``url`` or
        ``GITLAB_URL``."""
        return cls(url=url or os.environ.get("GITLAB_URL") or cls.url,
                   token=os.environ.get("GITLAB_TOKEN"), **overrides)  # type: ignore[arg-type]
