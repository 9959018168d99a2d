"""Prometheus metrics: requests and latency per route template and status,
and the version of the served model.

With several uvicorn workers each worker is its own process with its own
counters. `wordvec serve` then sets PROMETHEUS_MULTIPROC_DIR (a fresh
temporary directory) before the workers start, prometheus_client writes each
worker's samples there, and /metrics sums them over all workers, whichever
worker answers the scrape. Without that variable /metrics shows the one
process that answers.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from index.search import VectorIndex

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Bucket edges in seconds: a search is a millisecond or two, so resolution
# sits between 0.5 ms and 100 ms, with a few coarse buckets for outliers.
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
)  # fmt: skip

# The *_created samples double the size of every scrape and carry nothing a
# dashboard here uses.
disable_created_metrics()

REQUESTS = Counter(
    "wordvec_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "wordvec_http_request_duration_seconds",
    "Time from receiving a request to sending the end of its response.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
)
# A gauge rather than an Info metric, because prometheus_client's
# multiprocess mode cannot collect Info; "liveall" keeps one sample per live
# worker, so a half-finished rollout shows both versions.
MODEL_INFO = Gauge(
    "wordvec_model_info",
    "1 for the model version a worker serves, 0 for versions it served before.",
    ["model_version"],
    multiprocess_mode="liveall",
)

_served_version: list[str] = []
# The counter and histogram child of each (method, route, status) seen: a
# dict hit instead of two `labels()` calls (their argument checks and lock)
# per request. It holds one entry per time series the metrics already hold.
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request and record its latency."""
    key = (method, route, status)
    children = _children.get(key)
    if children is None:
        labels = (method, route, str(status))
        children = (REQUESTS.labels(*labels), LATENCY.labels(*labels))
        _children[key] = children
    children[0].inc()
    children[1].observe(seconds)


def record_model(model: VectorIndex) -> None:
    """Mark `model.version` as the served version of this process."""
    for old in _served_version:
        MODEL_INFO.labels(old).set(0)
    _served_version[:] = [model.version]
    MODEL_INFO.labels(model.version).set(1)


def render() -> tuple[bytes, str]:
    """Return the exposition text of all metrics and its content type."""
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_this_process() -> None:
    """Drop this worker's live gauges from the shared directory at shutdown."""
    if os.environ.get(MULTIPROC_ENV):
        mark_process_dead(os.getpid())
