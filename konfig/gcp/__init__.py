"""The GCP adapter: what Konfig does in Google Cloud directly, before Config Connector exists.

* :mod:`konfig.gcp.target`: the desired foundation of a control plane (folder, project, APIs,
  controller service account and its roles), derived from the ControlPlane definition;
* :mod:`konfig.gcp.bootstrap`: ``observe() -> diff() -> BootstrapPlan -> apply() ->
  BootstrapReport`` for ``konfig bootstrap``;
* :mod:`konfig.gcp.doctor`: read-only checks, as data, for ``konfig doctor``;
* :mod:`konfig.gcp.clients`: the google-cloud clients, for real GCP or for local emulators;
* :mod:`konfig.gcp.lookups` and :mod:`konfig.gcp.policy`: shared reads and IAM policy edits.
"""
