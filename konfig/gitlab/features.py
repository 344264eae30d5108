"""Detection of tier-dependent GitLab features, learned from the first call that uses them.

GitLab's REST API has no cheap, unprivileged "which tier is this?" call, so Konfig asks the
feature itself: the first call through a :class:`FeatureGate` runs alone; if GitLab refuses it
the way an unlicensed or unconfigured instance does, the gate closes and every later call is
skipped without a request (and reported once). Premium features and their refusals:

* SAML group links: ``401`` (``unauthorized! unless can?(:admin_saml_group_links)``, also when
  SAML SSO is not configured) https://docs.gitlab.com/api/saml/#saml-group-links
* protected environments: ``403``/``404`` https://docs.gitlab.com/api/protected_environments/
* custom project templates: ``400 template_project_id ... is unknown or invalid`` (Premium,
  not selected as the parent group's template source), or silently ignored on Free (an empty
  project without an import) https://docs.gitlab.com/user/group/custom_project_templates/
"""

from __future__ import annotations

import threading
from typing import Callable, TypeVar

from konfig.gitlab.api import ApiError

T = TypeVar("T")

SAML = "saml_group_links"
PROTECTED_ENVIRONMENTS = "protected_environments"
CUSTOM_TEMPLATES = "custom_project_templates"

#: Why each feature may be missing, for the report.
REQUIREMENTS = {
    SAML: "SAML group links need GitLab Premium and SAML SSO enabled for the top-level group "
          "(or instance SAML on self-managed)",
    PROTECTED_ENVIRONMENTS: "protected environments need GitLab Premium; production deploys "
                            "stay gated by the protected branch main and protected tags v*",
    CUSTOM_TEMPLATES: "custom project templates need GitLab Premium and the control-plane "
                      "group selected as Custom project templates of the parent group "
                      "(Settings > General); workloads are created by an initial commit "
                      "instead",
}


class FeatureUnavailable(Exception):
    """The instance does not offer ``feature``; ``reason`` says what GitLab answered."""

    def __init__(self, feature: str, reason: str) -> None:
        super().__init__(f"{feature}: {reason}")
        self.feature = feature
        self.reason = reason


class FeatureGate:
    """Serialises the first use of a feature and remembers the verdict (thread-safe).

    ``refusal(err)`` says whether an :class:`ApiError` means "feature unavailable" (else it is
    an ordinary failure and is re-raised). ``available`` is ``None`` until known.
    """

    def __init__(self, feature: str, refusal: Callable[[ApiError], bool],
                 available: bool | None = None, reason: str = "") -> None:
        self.feature = feature
        self._refusal = refusal
        self._lock = threading.Lock()
        self.available = available
        self.reason = reason

    def close(self, reason: str) -> None:
        self.available, self.reason = False, reason

    def call(self, fn: Callable[[], T],
             unavailable_if: Callable[[T], str | None] | None = None) -> T:
        """Run ``fn`` unless the feature is known to be missing (then raise
        :class:`FeatureUnavailable`). ``unavailable_if(result)`` may return a reason when a
        successful answer still shows the feature was ignored."""
        if self.available is False:
            raise FeatureUnavailable(self.feature, self.reason)
        if self.available:
            return fn()
        with self._lock:
            if self.available is None:
                try:
                    result = fn()
                except ApiError as err:
                    if self._refusal(err):
                        self.close(str(err))
                        raise FeatureUnavailable(self.feature, self.reason) from err
                    raise
                reason = unavailable_if(result) if unavailable_if else None
                if reason:
                    self.close(reason)
                else:
                    self.available = True
                return result
        return self.call(fn, unavailable_if)


def _status_in(*statuses: int) -> Callable[[ApiError], bool]:
    return lambda err: err.status in statuses


def _template_refusal(err: ApiError) -> bool:
    text = err.message
    return err.status == 400 and ("template_project_id" in text or "template_name" in text
                                  or "Group owning the template" in text)


def new_gates() -> dict[str, FeatureGate]:
    """Fresh gates for one reconcile run."""
    return {
        SAML: FeatureGate(SAML, _status_in(401, 403, 404)),
        PROTECTED_ENVIRONMENTS: FeatureGate(PROTECTED_ENVIRONMENTS, _status_in(403, 404)),
        CUSTOM_TEMPLATES: FeatureGate(CUSTOM_TEMPLATES, _template_refusal),
    }
