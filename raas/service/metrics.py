"""Prometheus metrics of the reservation service: `GET /metrics` (staff and admins only).

Two kinds of figures (docs/metrics.md):
- HTTP traffic, counted by an ASGI middleware: requests by method, route *template*
  (`/reservations/{reservation_id}`, never the raw path, so the label set stays small) and status,
  and their duration. These live in the process: with several worker processes, each counts
  its own.
- The service's data, read from the database at scrape time (a custom collector): bookings by
  status and how many are running now, robots by status and how many are online, leases issued
  and revoked. Counting rows makes these right across restarts and workers.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
)
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raas.service.crud import wear as wear_crud
from raas.service.deps import Staff
from raas.service.models import (
    Lease,
    Reservation,
    ReservationStatus,
    Revocation,
    Robot,
    RobotStatus,
)
from raas.service.notify import CHANNELS
from raas.service.state import ServiceState

# No `*_created` series: a counter's start time as a family of its own confuses readers and
# doubles the series; Prometheus does not need it (docs/metrics.md).
disable_created_metrics()  # type: ignore[no-untyped-call]

UNMATCHED = "<unmatched>"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DatabaseCollector(Collector):
    """Bookings, robots and leases, counted in the database on every scrape."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state = self.state
        now = state.clock()
        timeout = timedelta(seconds=state.settings.heartbeat_timeout_s)
        with state.db.read() as db:
            by_status = dict(
                db.execute(
                    select(Reservation.status, func.count()).group_by(Reservation.status)
                ).all()
            )
            running = db.scalar(
                select(func.count()).where(
                    Reservation.status == ReservationStatus.confirmed.value,
                    Reservation.starts_at <= now,
                    Reservation.ends_at > now,
                )
            )
            robots = db.execute(
                select(Robot.status, Robot.last_heartbeat_at, Robot.health_blocked)
            ).all()
            robot_names = db.execute(select(Robot.id, Robot.name, Robot.estop_latched)).all()
            wear_alerts = wear_crud.alert_counts(db)
            leases = db.scalar(select(func.count()).select_from(Lease))
            revoked = db.scalar(select(func.count()).where(Lease.revoked_at.is_not(None)))
            revocations = db.scalar(select(func.count()).select_from(Revocation))

        bookings = GaugeMetricFamily(
            "raas_reservations", "Reservations in the database by status", labels=["status"]
        )
        for rs in ReservationStatus:
            bookings.add_metric([rs.value], by_status.get(rs.value, 0))
        yield bookings
        yield GaugeMetricFamily(
            "raas_reservations_running", "Confirmed reservations running now", value=running or 0
        )
        robot_status = GaugeMetricFamily(
            "raas_robots", "Robots by status (as set by staff or reported)", labels=["status"]
        )
        counts = {s.value: 0 for s in RobotStatus}
        online = blocked = 0
        for robot_status_value, beat, health_blocked in robots:
            counts[robot_status_value] = counts.get(robot_status_value, 0) + 1
            online += beat is not None and now - beat <= timeout
            blocked += bool(health_blocked)
        for name, n in counts.items():
            robot_status.add_metric([name], n)
        yield robot_status
        yield GaugeMetricFamily(
            "raas_robots_online", "Robots with a heartbeat within the timeout", value=online
        )
        yield GaugeMetricFamily(
            "raas_robots_health_blocked",
            "Robots blocked by a failed health check",
            value=blocked,
        )
        alerts = GaugeMetricFamily(
            "raas_robot_wear_alerts",
            "Standing maintenance alerts (actuator x metric past its wear threshold)",
            labels=["robot"],
        )
        for robot_id, name, _ in robot_names:
            alerts.add_metric([name], wear_alerts.get(robot_id, 0))
        yield alerts
        yield GaugeMetricFamily(
            "raas_robots_estop_latched",
            "Robots stopped by a REST e-stop that staff have not cleared",
            value=sum(bool(latched) for _, _, latched in robot_names),
        )
        yield CounterMetricFamily("raas_leases_issued", "Leases signed", value=leases or 0)
        yield CounterMetricFamily("raas_leases_revoked", "Leases revoked", value=revoked or 0)
        yield CounterMetricFamily(
            "raas_lease_revocations",
            "Entries in the revocation feed daemons follow",
            value=revocations or 0,
        )


class NotifyCollector(Collector):
    """This process's wake-ups (raas/service/notify.py): per process, like the HTTP counts."""

    def __init__(self, state: ServiceState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        notifier = self.state.notify
        stats = notifier.stats()
        published = CounterMetricFamily(
            "raas_notify_published", "Publishes by this process, by channel", labels=["channel"]
        )
        received = CounterMetricFamily(
            "raas_notify_received",
            "Notifications from other service processes (PostgreSQL NOTIFY), by channel",
            labels=["channel"],
        )
        wakes = CounterMetricFamily(
            "raas_notify_wakes",
            "Waits of long-polls and streams that ended, by channel and reason "
            "(notify: woken by a publish; poll: the poll interval passed)",
            labels=["channel", "reason"],
        )
        for channel in CHANNELS:
            published.add_metric([channel], stats.get(("published", channel), 0))
            received.add_metric([channel], stats.get(("received", channel), 0))
            for reason in ("notify", "poll"):
                wakes.add_metric([channel, reason], stats.get(("wakes", channel, reason), 0))
        yield published
        yield received
        yield wakes
        yield GaugeMetricFamily(
            "raas_notify_listening",
            "1 while this process LISTENs on PostgreSQL (0: SQLite, or polling while it "
            "reconnects)",
            value=int(notifier.listening),
        )
        yield CounterMetricFamily(
            "raas_notify_reconnects",
            "Times the notification listener lost its connection",
            value=stats.get(("reconnects",), 0),
        )
        yield CounterMetricFamily(
            "raas_notify_publish_errors",
            "Failed attempts to send notifications (retried after reconnecting)",
            value=stats.get(("publish_errors",), 0),
        )


class ServiceMetrics:
    """One registry per app (tests build many apps in one process)."""

    def __init__(self, state: ServiceState) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "raas_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "raas_http_request_duration_seconds",
            "Time to answer a request (whole response), by route template",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(DatabaseCollector(state))
        self.registry.register(NotifyCollector(state))

    def render(self) -> bytes:
        return _generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware), so streaming responses pass through untouched."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None) or UNMATCHED
            method = scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(time.perf_counter() - start)


router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(_: Staff, request: Request) -> Response:
    """Prometheus metrics of the service (staff and admins: scrape with a staff API token)."""
    service_metrics: ServiceMetrics = request.app.state.metrics
    return Response(service_metrics.render(), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI, state: ServiceState) -> None:
    """Count every request and serve GET /metrics."""
    service_metrics = ServiceMetrics(state)
    app.state.metrics = service_metrics
    app.add_middleware(MetricsMiddleware, metrics=service_metrics)
    app.include_router(router)
