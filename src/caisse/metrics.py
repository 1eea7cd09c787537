"""Prometheus metrics, in a registry of the app's own (several apps in one test process)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

#: Process-wide (the in-process worker of ``caisse serve`` disables endpoints without an app
#: at hand); every app's registry exposes it. ``reason``: gone (410), failing (5 days),
#: merchant. ``caisse worker`` processes have no /metrics: their log line
#: ``action=endpoint.disabled`` is the operator's signal there.
ENDPOINTS_DISABLED = Counter(
    "caisse_endpoints_disabled_total",
    "Partner endpoints disabled, by reason",
    ["reason"],
    registry=None,
)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.inbound = Counter(
            "caisse_inbound_events_total",
            "Provider webhooks received, by outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.ingest_seconds = Histogram(
            "caisse_ingest_seconds",
            "Time from request to durable acknowledgement",
            ["provider"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.jobs = Gauge("caisse_jobs", "Jobs by status", ["status"], registry=self.registry)
        self.registry.register(ENDPOINTS_DISABLED)
