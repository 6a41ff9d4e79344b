"""Every Prometheus metric the bot exposes, defined in one place.

Each Runtime owns a `Metrics` with a registry of its own (not prometheus_client's global one),
so several bots in one process (the tests) never collide. Labels stay low-cardinality: a
method, an outcome, a reason from a fixed set, a lane kind; never a channel, user or team id.
The modules that do the work call the small methods here; none of them names a metric.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

# Seconds: people notice a wait from about one second; CustomGPT answers take up to a minute.
ANSWER_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0, 300.0)
QUEUE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)
LANE_KINDS = ("update", "post", "reactions")

#: The outcome of a question that was answered in full.
ANSWERED = "answered"

CONTENT_TYPE = CONTENT_TYPE_LATEST


def lane_kind(lane: str) -> str:
    """A scheduler lane's kind: `post:C123` is a post lane; the channel never becomes a label."""
    return "post" if lane.startswith("post:") else lane


def reason_for(error: BaseException) -> str:
    """A failure reason from an error's type (`AuthError` → `auth_error`): a fixed set."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).lower()


class _QueueDepth(Collector):
    """Calls waiting in the schedulers' lanes, per lane kind, read when scraped: the queues are
    the truth, so no gauge can drift from them."""

    def __init__(self) -> None:
        self.sources: list[Callable[[], Mapping[str, int]]] = []

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "slack_queue_depth", "Slack calls waiting in the scheduler", labels=["lane"]
        )
        totals = dict.fromkeys(LANE_KINDS, 0)
        for source in self.sources:
            for lane, queued in source().items():
                kind = lane_kind(lane)
                totals[kind] = totals.get(kind, 0) + queued
        for kind, queued in totals.items():
            family.add_metric([kind], queued)
        return [family]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.questions_received = Counter(
            "questions_received", "Questions the bot took on (after deduplication)", registry=r
        )
        self.questions_answered = Counter(
            "questions_answered", "Questions answered in full", registry=r
        )
        self.questions_failed = Counter(
            "questions_failed", "Questions that ended without a full answer", ["reason"], registry=r
        )
        self.answers_in_flight = Gauge(
            "answers_in_flight", "Questions being answered now", registry=r
        )
        self.first_text_seconds = Histogram(
            "answer_first_text_seconds",
            "From taking a question to the first answer text visible in Slack",
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.final_text_seconds = Histogram(
            "answer_final_text_seconds",
            "From taking a question to the complete answer in Slack",
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.customgpt_first_chunk_seconds = Histogram(
            "customgpt_first_chunk_seconds",
            "From asking CustomGPT to its first chunk of answer",
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.customgpt_total_seconds = Histogram(
            "customgpt_answer_seconds",
            "From asking CustomGPT to the end of its answer",
            buckets=ANSWER_BUCKETS,
            registry=r,
        )
        self.slack_calls = Counter(
            "slack_calls", "Slack write calls sent", ["method", "outcome"], registry=r
        )
        self.rate_limit_pauses = Counter(
            "slack_rate_limit_pauses", "429s that paused a scheduler lane", ["lane"], registry=r
        )
        self.queue_wait_seconds = Histogram(
            "slack_queue_wait_seconds",
            "From a Slack call entering the scheduler to its sending",
            ["lane"],
            buckets=QUEUE_BUCKETS,
            registry=r,
        )
        self.store_errors = Counter(
            "store_errors", "Store (Redis) calls that failed", ["operation"], registry=r
        )
        self.indexing_watches = Gauge(
            "indexing_watches_active", "Projects being watched until they are ready", registry=r
        )
        self.event_loop_lag_seconds = Gauge(
            "event_loop_lag_seconds", "How late the event loop ran the last lag probe", registry=r
        )
        self._queues = _QueueDepth()
        r.register(self._queues)

    # -- what the rest of the bot calls ---------------------------------------------------

    def question_ended(self, outcome: str) -> None:
        """One outcome per question taken: `ANSWERED`, else the reason it was not."""
        if outcome == ANSWERED:
            self.questions_answered.inc()
        else:
            self.questions_failed.labels(reason=outcome).inc()

    def slack_call(self, method: str, outcome: str) -> None:
        """`outcome`: "ok", "429" or "error"."""
        self.slack_calls.labels(method=method, outcome=outcome).inc()

    def rate_limited(self, lane: str) -> None:
        self.rate_limit_pauses.labels(lane=lane_kind(lane)).inc()

    def queue_waited(self, lane: str, seconds: float) -> None:
        self.queue_wait_seconds.labels(lane=lane_kind(lane)).observe(max(0.0, seconds))

    def watch_queues(self, source: Callable[[], Mapping[str, int]]) -> None:
        """Count `source()` (lane name → calls queued) in the queue depth gauge."""
        self._queues.sources.append(source)

    def store_error(self, operation: str) -> None:
        self.store_errors.labels(operation=operation).inc()

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (served as `CONTENT_TYPE`)."""
        return generate_latest(self.registry)
