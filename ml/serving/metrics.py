"""The API's Prometheus metrics: requests, latency and events per tenant, and the versions served.

Labels are bounded: tenants come from keys (or ``-``), endpoints from the routes that exist
(:meth:`Metrics.endpoint`: any other path is ``unmatched``, so made-up paths add no series).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 1.0)


@dataclass
class Metrics:
    """One app's collectors, in their own registry (several apps may live in one test process)."""

    registry: Any = field(init=False)
    requests: Any = field(init=False)
    latency: Any = field(init=False)
    events: Any = field(init=False)
    serving: Any = field(init=False)
    routes: frozenset[str] = frozenset()  # the app's route paths (set once its routers are included)

    def endpoint(self, path: str) -> str:
        """The ``endpoint`` label of a request path: the route it names, else ``unmatched``."""
        return path if path in self.routes else "unmatched"

    def __post_init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tenantflow_requests_total",
            "Requests answered",
            ["tenant", "endpoint", "status", "model_version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tenantflow_request_seconds",
            "Time to answer",
            ["tenant", "endpoint", "model_version"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )
        self.events = Counter(
            "tenantflow_events_accepted_total",
            "Webhook events acknowledged",
            ["tenant", "replayed"],
            registry=self.registry,
        )
        self.serving = Gauge(
            "tenantflow_serving_model_version",
            "Version served per tenant, kind and arm",
            ["tenant", "kind", "arm"],
            registry=self.registry,
        )

    def observe(self, tenant_id: str, endpoint: str, version: str, seconds: float) -> None:
        """One answered request (status 200)."""
        self.latency.labels(tenant_id, endpoint, version).observe(seconds)
        self.requests.labels(tenant_id, endpoint, "200", version).inc()

    def exposition(self, models: dict[tuple[str, str, str], Any]) -> bytes:
        """The text format, with the versions currently served."""
        from prometheus_client import generate_latest

        for (tid, kind, arm), m in list(models.items()):
            self.serving.labels(tid, kind, arm).set(float(m.version))
        return generate_latest(self.registry)
