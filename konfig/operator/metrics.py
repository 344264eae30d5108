"""Prometheus metrics of the operator (prometheus_client), in a registry of its own so that
several operators in one process (tests, the sandbox) do not collide.

Names follow https://prometheus.io/docs/practices/naming/ (base units, ``_total`` counters).
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """The operator's metrics. ``render()`` gives the text exposition format for ``/metrics``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter(
            "konfig_reconciles_total", "Reconcile passes, by what triggered them and outcome.",
            ["trigger", "outcome"], registry=self.registry)
        self.duration = Histogram(
            "konfig_reconcile_duration_seconds", "Duration of reconcile passes.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
            registry=self.registry)
        self.errors = Counter(
            "konfig_reconcile_errors_total", "Failures, by stage (read, kube, gitlab, status).",
            ["stage"], registry=self.registry)
        self.applied = Counter(
            "konfig_objects_applied_total", "Objects created or updated by server-side apply.",
            ["action"], registry=self.registry)
        self.pruned = Counter(
            "konfig_objects_pruned_total", "Objects deleted because no longer desired.",
            ["policy"], registry=self.registry)
        self.managed = Gauge(
            "konfig_objects_managed", "Objects the control plane desires in the cluster.",
            registry=self.registry)
        self.not_ready = Gauge(
            "konfig_objects_not_ready", "Desired objects not Ready yet.", registry=self.registry)
        self.stalled = Gauge(
            "konfig_resources_stalled", "Konfig resources with Stalled=True.",
            registry=self.registry)
        self.gitlab_changes = Counter(
            "konfig_gitlab_changes_total", "GitLab changes made, by action and result.",
            ["action", "result"], registry=self.registry)
        self.last_success = Gauge(
            "konfig_last_successful_reconcile_timestamp_seconds",
            "Unix time of the last pass that completed without failures.",
            registry=self.registry)

        self.unit_duration = Histogram(
            "konfig_unit_reconcile_duration_seconds",
            "Duration of one reconcile unit's part of a pass (observe, plan, apply).",
            ["unit"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry)
        self.unit_outcomes = Counter(
            "konfig_unit_reconciles_total", "Unit passes, by unit and outcome.",
            ["unit", "outcome"], registry=self.registry)
        self.unit_last_success = Gauge(
            "konfig_unit_last_success_timestamp_seconds",
            "Unix time of the unit's last pass that ended Ready or Waiting.",
            ["unit"], registry=self.registry)
        self.queue_depth = Gauge(
            "konfig_queue_depth", "Units due for a pass and not started yet.",
            registry=self.registry)
        self.units_owned = Gauge(
            "konfig_units_owned", "Units this replica holds the lease of.",
            registry=self.registry)

    def observe_unit(self, unit: str, outcome: object, duration: float) -> None:
        """Record one unit's pass (``outcome`` one of :mod:`konfig.operator.outcome`)."""
        name = type(outcome).__name__.lower()
        self.unit_outcomes.labels(unit, name).inc()
        self.unit_duration.labels(unit).observe(duration)
        if name in ("ready", "waiting"):
            self.unit_last_success.labels(unit).set(time.time())

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests and the sandbox read metrics this way)."""
        found = self.registry.get_sample_value(name, labels or None)
        return found or 0.0
