"""The service's Prometheus metrics, and their exposition at ``GET /metrics``.

Counted in the process that serves the request (:mod:`prometheus_client` objects, created once
per process in :data:`REGISTRY`, a registry of our own rather than the library's global one):

==========================================  =========  ==========================================
metric                                      labels     what
==========================================  =========  ==========================================
``smpcloud_uploads_accepted_total``         scheme     reports stored (201)
``smpcloud_uploads_refused_total``          reason     reports refused by the service's checks
                                                       (the problem type's slug:
                                                       ``invalid-proof``, ``duplicate-submission``,
                                                       ...; as counted per task in its status)
``smpcloud_partials_accepted_total``        --         key holders' partial decryptions accepted
``smpcloud_partials_refused_total``         reason     ... refused (problem type's slug)
``smpcloud_tasks_created_total``            scheme     tasks created
``smpcloud_http_request_duration_seconds``  method,    histogram of request durations; ``route``
                                            route,     is the route's template
                                            status     (``/v1/tasks/{task_id}/reports``), never the
                                                       raw path, ``unmatched`` when no route
                                                       matched; ``status`` is the class (``2xx``)
``smpcloud_group_commit_batch_size``        --         histogram: reports per group commit
``smpcloud_group_commit_duration_seconds``  --         histogram: time of one group commit
``smpcloud_pool_jobs_in_progress``          --         jobs handed to the worker pool and not
                                                       finished (queued or running)
==========================================  =========  ==========================================

Read from the database at each scrape (so exact across processes and restarts):

==================================  =============  ============================================
``smpcloud_metrics_database_up``    --             1 if the database answered the scrape, else
                                                   0 (then the two below are absent)
``smpcloud_tasks``                  scheme, state  tasks by state (``open``, ``closed``,
                                                   ``insufficient``, ``decrypted``,
                                                   ``withheld``): how tasks ended
``smpcloud_task_reports``           task_id        reports stored, for the
                                                   :data:`MAX_TASK_SERIES` newest open tasks
                                                   only (bounds the label set)
==================================  =============  ============================================

Uploads refused before the route runs (no or a wrong token: 401/403; a body that is not
JSON or too large: 413/422) are not in ``uploads_refused`` (the route never saw them); they
are in the request histogram under their status class.

**Multi-process.** When the environment variable ``PROMETHEUS_MULTIPROC_DIR`` names a
directory (empty at the start of the server, writable by all its processes) *before*
:mod:`prometheus_client` is first imported, every process writes its counters into files
there and ``/metrics`` from any process reports the sum over all of them
(:class:`prometheus_client.multiprocess.MultiProcessCollector`); the pool gauge is summed over
live processes (``livesum``: the supervisor calls
:func:`prometheus_client.multiprocess.mark_process_dead` for a process that exited).

**What the metrics reveal** (and why ``/metrics`` needs the administrator's token unless the
server runs with ``--metrics public``): task ids (not secret; tokens are), how many reports
each recent open task holds, how many tasks are in each state, refusals by reason, and
request timings. Never a token, a ciphertext, a share, a value or a client's id: no label is
taken from a request's headers or body, and the only label from a path is its route template.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import Engine, Subquery, func, select
from sqlalchemy.exc import SQLAlchemyError

from smpcloud.service.db import ReportRow, TaskRow

#: The media type of ``GET /metrics`` (Prometheus text exposition format).
METRICS_MEDIA_TYPE: Final = CONTENT_TYPE_LATEST

#: At most this many open tasks (the newest) get a ``smpcloud_task_reports`` series.
MAX_TASK_SERIES: Final = 100

#: The environment variable that turns on prometheus_client's multi-process mode.
MULTIPROC_DIR_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"

#: This process's metrics (the library's default registry is left alone).
REGISTRY: Final = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
_BATCH_BUCKETS: Final = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

UPLOADS_ACCEPTED: Final = Counter(
    "smpcloud_uploads_accepted",
    "Reports stored, by the task's scheme.",
    ["scheme"],
    registry=REGISTRY,
)
UPLOADS_REFUSED: Final = Counter(
    "smpcloud_uploads_refused",
    "Reports refused by the service's checks, by problem type (slug).",
    ["reason"],
    registry=REGISTRY,
)
PARTIALS_ACCEPTED: Final = Counter(
    "smpcloud_partials_accepted",
    "Key holders' uploads of partial decryptions accepted.",
    registry=REGISTRY,
)
PARTIALS_REFUSED: Final = Counter(
    "smpcloud_partials_refused",
    "Key holders' uploads of partial decryptions refused, by problem type (slug).",
    ["reason"],
    registry=REGISTRY,
)
TASKS_CREATED: Final = Counter(
    "smpcloud_tasks_created",
    "Tasks created, by scheme.",
    ["scheme"],
    registry=REGISTRY,
)
REQUEST_DURATION: Final = Histogram(
    "smpcloud_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status class.",
    ["method", "route", "status"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
GROUP_COMMIT_BATCH: Final = Histogram(
    "smpcloud_group_commit_batch_size",
    "Reports committed together by one group commit of uploads.",
    buckets=_BATCH_BUCKETS,
    registry=REGISTRY,
)
GROUP_COMMIT_DURATION: Final = Histogram(
    "smpcloud_group_commit_duration_seconds",
    "Time of one group commit of uploads (its transaction, fsync included).",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
POOL_JOBS: Final = Gauge(
    "smpcloud_pool_jobs_in_progress",
    "Jobs handed to the worker pool and not finished yet (queued or running).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)

_HTTP_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered HTTP request in the duration histogram.

    Args:
        method: the request's method (any other than the standard ones counts as ``OTHER``,
            so that clients cannot grow the label set).
        route: the matched route's template, or ``unmatched``.
        status: the response's status code (counted by class: ``2xx``, ``4xx``, ...).
        seconds: the time from the request's start to its response's end.
    """
    label = method if method in _HTTP_METHODS else "OTHER"
    REQUEST_DURATION.labels(label, route, f"{status // 100}xx").observe(seconds)


@contextmanager
def pool_job() -> Iterator[None]:
    """Count a job as in progress on the worker pool while the block runs."""
    POOL_JOBS.inc()
    try:
        yield
    finally:
        POOL_JOBS.dec()


def multiprocess_dir() -> str | None:
    """Return ``$PROMETHEUS_MULTIPROC_DIR`` if set and not empty (multi-process mode)."""
    return os.environ.get(MULTIPROC_DIR_ENV) or None


class _Forward(Collector):
    """Collect the metrics of another registry (this process's own, outside multi-process)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


class TaskCollector(Collector):
    """The database's view at scrape time: tasks by state, reports of the newest open tasks.

    Args:
        engine: the service's engine.
        max_series: how many open tasks (the newest) get a report count.
    """

    def __init__(self, engine: Engine, max_series: int = MAX_TASK_SERIES) -> None:
        self._engine = engine
        self._max_series = max_series

    def collect(self) -> Iterator[Metric]:
        """Yield ``smpcloud_tasks`` and ``smpcloud_task_reports`` (three short reads).

        A database that does not answer gives ``smpcloud_metrics_database_up 0`` and neither
        of them, rather than a failed scrape: the process's own counters are still served.
        """
        tasks = GaugeMetricFamily(
            "smpcloud_tasks", "Tasks by scheme and state.", labels=["scheme", "state"]
        )
        reports = GaugeMetricFamily(
            "smpcloud_task_reports",
            f"Reports stored per open task (the {self._max_series} newest open tasks only).",
            labels=["task_id"],
        )
        newest_open = (
            select(TaskRow.id)
            .where(TaskRow.state == "open")
            .order_by(TaskRow.created_at.desc(), TaskRow.id)
            .limit(self._max_series)
            .subquery()
        )
        database_up = GaugeMetricFamily(
            "smpcloud_metrics_database_up",
            "1 if the database answered this scrape's reads, else 0 (then no task metrics).",
        )
        try:
            self._read(tasks, reports, newest_open)
        except SQLAlchemyError:
            database_up.add_metric([], 0)
            yield database_up
            return
        database_up.add_metric([], 1)
        yield database_up
        yield tasks
        yield reports

    def _read(
        self, tasks: GaugeMetricFamily, reports: GaugeMetricFamily, newest_open: Subquery
    ) -> None:
        with self._engine.connect() as conn:
            for scheme, state, count in conn.execute(
                select(TaskRow.scheme, TaskRow.state, func.count()).group_by(
                    TaskRow.scheme, TaskRow.state
                )
            ):
                tasks.add_metric([scheme, state], count)
            counts = dict(
                conn.execute(
                    select(ReportRow.task_id, func.count())
                    .where(ReportRow.task_id.in_(select(newest_open.c.id)))
                    .group_by(ReportRow.task_id)
                ).all()
            )
            for (task_id,) in conn.execute(select(newest_open.c.id)):
                reports.add_metric([task_id], counts.get(task_id, 0))


def render_metrics(engine: Engine) -> bytes:
    """Return the text exposition of every metric (summed over processes in that mode).

    Args:
        engine: the service's engine, read for :class:`TaskCollector`.

    Returns:
        The body of ``GET /metrics`` (media type :data:`METRICS_MEDIA_TYPE`).

    """
    registry = CollectorRegistry(auto_describe=False)
    directory = multiprocess_dir()
    if directory is not None:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Forward(REGISTRY))
    registry.register(TaskCollector(engine))
    return generate_latest(registry)


__all__ = [
    "GROUP_COMMIT_BATCH",
    "GROUP_COMMIT_DURATION",
    "MAX_TASK_SERIES",
    "METRICS_MEDIA_TYPE",
    "MULTIPROC_DIR_ENV",
    "PARTIALS_ACCEPTED",
    "PARTIALS_REFUSED",
    "POOL_JOBS",
    "REGISTRY",
    "REQUEST_DURATION",
    "TASKS_CREATED",
    "UPLOADS_ACCEPTED",
    "UPLOADS_REFUSED",
    "TaskCollector",
    "multiprocess_dir",
    "observe_request",
    "pool_job",
    "render_metrics",
]
