"""Fixtures for the GitLab adapter: a fake GitLab REST v4 server on 127.0.0.1 (port 0) with the
adopted parent group ``acme``, and helpers to run reconcile passes through python-gitlab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from konfig.gitlab import GitLabSettings, RetryPolicy, SyncReport, connect, reconcile
from konfig.gitlab.model import TemplateFiles
from konfig.sandbox.fake_gitlab import FakeGitLab

TOKEN = "glpat-konfig-test"

#: A small workload template (the bundled one is tested by the CLI test).
TEMPLATE = TemplateFiles.of({
    ".gitlab-ci.yml": b"include: ci/jobs.yml\n",
    "ci/jobs.yml": b"build:\n  script: [make]\n",
    "workload.yaml": b"kind: Workload\n",
})

#: Fast retries for tests (the fake answers in well under a millisecond).
FAST_RETRY = RetryPolicy(attempts=8, initial=0.002, max_wait=0.05, jitter=0.002)


def settings_for(fake: FakeGitLab, **overrides) -> GitLabSettings:
    values = {"url": fake.url, "token": TOKEN, "import_poll": 0.02, "retry": FAST_RETRY,
              "max_in_flight": 4}
    values.update(overrides)
    return GitLabSettings(**values)


class Syncer:
    """Runs reconcile passes against one fake with one client (request counts per pass)."""

    def __init__(self, fake: FakeGitLab, **overrides) -> None:
        self.fake = fake
        self.settings = settings_for(fake, **overrides)
        self.client = connect(self.settings)

    def __call__(self, tree, *, template: TemplateFiles = TEMPLATE, **kwargs) -> SyncReport:
        self.fake.reset_log()
        return reconcile(self.client, tree, settings=self.settings, template=template, **kwargs)


def make_fake(**options) -> FakeGitLab:
    fake = FakeGitLab(**{"import_delay": 0.01, **options})
    fake.start()
    fake.add_token(TOKEN)
    fake.seed_group("acme", name="ACME")
    return fake


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    """Premium, SAML enabled, the control-plane group chosen as custom project template
    source of ``acme`` (resolved once Konfig creates it)."""
    server = make_fake()
    server.set_custom_project_templates("acme", "acme/acme")
    yield server
    server.stop()


@pytest.fixture
def sync(fake: FakeGitLab) -> Syncer:
    return Syncer(fake)
