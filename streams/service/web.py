"""The worker's HTTP views on Faust's web server: ``/metrics``, ``/alerts/recent``, ``/status``.

- ``/metrics``: every reachwatch metric and Faust's sensor metrics, one registry, in the
  Prometheus text format.
- ``/alerts/recent``: a JSON array of the latest message of the alerts this worker
  published, newest first, each exactly the object on the alerts topic (Grafana's
  Infinity table reads it); kept in a changelog table (``streams.service.alertlog``), so
  a restart keeps them. ``?limit=N&offset=M`` pages; ``?state=open|closed``, ``?kind=``,
  ``?severity=`` filter.
- ``/status``: model version, counters, table sizes and assigned partitions (no entities).

The web server binds 127.0.0.1 unless ``web_host`` says otherwise. When a bearer token is
configured (``web_token_file``), ``/metrics`` and ``/alerts/recent`` answer 401 without
``Authorization: Bearer <token>``. With ``alerts_token_file`` too, ``/alerts/recent``
demands that second token and the first opens ``/metrics`` only: Prometheus, which needs
counts, then cannot read alert samples (who read what), which Grafana's table can.
``/status`` stays open for liveness probes, since it names no principal or resource
(counters, table sizes, model version, partitions). Faust's own pages (``/table`` would
serve window state per entity, ``/router`` the key placement) are switched off in
``app.py``.

The worker fails closed (``guard_web_exposure``): a web server on any address other than
loopback without a token refuses to start, unless ``insecure_open_web`` is set, which is
then logged as a warning at every start. Alert samples name who read what; an open port
on a shared network would hand them to anyone who asks.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import faust
import orjson
from faust.web import Request, Response, View

from reachwatch.models.errors import ConfigError
from reachwatch.streams.service.metrics import Metrics, render
from reachwatch.streams.service.recent import RecentAlerts
from reachwatch.streams.service.settings import Settings

JSON = "application/json"
# Names that resolve to loopback on every host; any other name may resolve to anything.
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    """True if binding ``host`` keeps the server unreachable from other machines.

    An empty host and the wildcards bind every interface; a host name other than
    ``localhost`` is not trusted to resolve to loopback.

    >>> [is_loopback(h) for h in ("127.0.0.1", "::1", "localhost", "0.0.0.0", "", "worker-1")]
    [True, True, True, False, False, False]
    """
    host = host.strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def guard_web_exposure(settings: Settings) -> None:
    """Refuse a web server beyond loopback without a token, unless explicitly opted out.

    Raises ``ConfigError`` (one line for the CLI); with ``insecure_open_web`` it logs a
    warning instead, so an open worker is never silent.
    """
    if not settings.web_enabled or is_loopback(settings.web_host):
        return
    if settings.web_token_file is not None:
        return
    where = f"{settings.web_host or '*'}:{settings.web_port}"
    if settings.insecure_open_web:
        log.warning(
            "INSECURE: /metrics and /alerts/recent (alert samples: who read what) are open "
            "to anyone who can reach %s (insecure_open_web is set)",
            where,
        )
        return
    raise ConfigError(
        f"refusing to serve /metrics and /alerts/recent on {where} without a bearer token: "
        "set REACHWATCH_WEB_TOKEN_FILE, bind 127.0.0.1 (--web-host), or accept the risk "
        "with --insecure-open-web (REACHWATCH_INSECURE_OPEN_WEB=1)"
    )


def read_token(path: Path | None) -> bytes | None:
    """The bearer token stored in ``path`` (whitespace stripped); None when no file is set.

    A missing, unreadable or empty file is a configuration error: starting open when the
    operator asked for a guard would be worse than not starting.
    """
    if path is None:
        return None
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read web token file {path}: {exc}") from None
    if not token:
        raise ConfigError(f"web token file {path} is empty")
    return token


def authorized(header: str | None, token: bytes | None) -> bool:
    """True if ``header`` (an ``Authorization`` value) carries ``token``, or no token is set.

    The comparison takes the same time however much of the token matches, so response
    timing does not leak it byte by byte.

    >>> authorized("Bearer s3cret", b"s3cret"), authorized("Bearer guess", b"s3cret")
    (True, False)
    """
    if token is None:
        return True
    if not header:
        return False
    scheme, _, presented = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(presented.strip().encode(), token)


def parse_limit(raw: str | None, capacity: int) -> int:
    """The ``?limit=`` of /alerts/recent, clamped to ``0..capacity`` (all when absent/bad)."""
    try:
        return max(0, min(int(raw), capacity)) if raw else capacity
    except ValueError:
        return capacity


def parse_offset(raw: str | None) -> int:
    """The ``?offset=`` of /alerts/recent: a non-negative integer, 0 when absent or bad."""
    try:
        return max(0, int(raw)) if raw else 0
    except ValueError:
        return 0


def register_views(
    app: faust.App,
    *,
    metrics: Metrics,
    recent: RecentAlerts,
    status: Callable[[], Mapping[str, Any]],
    token: bytes | None = None,
    alerts_token: bytes | None = None,
) -> None:
    """Add the three views to ``app`` (before it starts).

    ``token`` guards ``/metrics``, and ``/alerts/recent`` unless ``alerts_token`` is given.
    """

    def refused(view: View, request: Request, needed: bytes | None) -> Response | None:
        if authorized(request.headers.get("Authorization"), needed):
            return None
        return view.bytes(
            b'{"error":"unauthorized"}',
            status=401,
            headers={"Content-Type": JSON, "WWW-Authenticate": 'Bearer realm="reachwatch"'},
        )

    @app.page("/metrics")
    class MetricsPage(View):
        async def get(self, request: Request) -> Response:
            denied = refused(self, request, token)
            if denied is not None:
                return denied
            body, content_type = render(metrics.registry)
            # aiohttp refuses a charset inside content_type=, so set the header itself.
            return self.bytes(body, headers={"Content-Type": content_type})

    @app.page("/alerts/recent")
    class RecentAlertsPage(View):
        async def get(self, request: Request) -> Response:
            denied = refused(self, request, token if alerts_token is None else alerts_token)
            if denied is not None:
                return denied
            limit = parse_limit(request.query.get("limit"), recent.capacity)
            query = getattr(recent, "query", None)  # the changelog-backed alert log
            if query is None:
                body = orjson.dumps(recent.newest(limit))
            else:
                body = orjson.dumps(
                    query(
                        state=request.query.get("state") or None,
                        kind=request.query.get("kind") or None,
                        severity=request.query.get("severity") or None,
                        limit=limit,
                        offset=parse_offset(request.query.get("offset")),
                    )
                )
            return self.bytes(body, headers={"Content-Type": JSON, "Cache-Control": "no-store"})

    @app.page("/status")
    class StatusPage(View):
        async def get(self, request: Request) -> Response:
            return self.json(dict(status()))
