"""Konfig: an opinionated GitOps platform-as-code controller for Google Cloud and GitLab.

The package is laid out in three rings (see docs/architecture.md):

* the pure core: :mod:`konfig.model`, :mod:`konfig.load`, :mod:`konfig.compile`;
* adapters that observe, diff and apply: :mod:`konfig.gitlab`, :mod:`konfig.kube`,
  :mod:`konfig.gcp`, :mod:`konfig.export`;
* thin shells: ``cli.py`` and :mod:`konfig.operator`.
"""

__version__ = "0.1.0"

API_GROUP = "konfig.dev"
API_VERSION = "konfig.dev/v1alpha1"
