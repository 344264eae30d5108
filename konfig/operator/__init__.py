"""The Konfig operator (kopf): definitions as custom resources in the control-plane cluster,
reconciled continuously into Config Connector objects, namespaces, RBAC and the GitLab tree.

:mod:`.cluster` (resources -> definitions), :mod:`.status` (conditions and roll-ups) are pure;
:mod:`.reconciler` is one synchronous pass; :mod:`.loop` coalesces changes and schedules
passes; :mod:`.app` wires kopf, probes and metrics; :mod:`.sandbox` runs it all in-process.
"""
