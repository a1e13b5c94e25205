"""The worker's ``/exposures`` view: the exposure record of a resource or an alert.

``GET /exposures?resource=R`` or ``?alert_id=A`` answers the record this worker holds
(open, or closed within the retention) as the JSON object ``reachwatch exposure-report``
prints; ``&format=csv`` gives the reader list as CSV for legal and HR. 404 when this
worker holds none (with several workers, ask the one holding the resource's partition,
or read the ``access-exposures`` topic). It names people, so it sits behind the same
bearer token as ``/alerts/recent`` (``web.authorized``).
"""

from __future__ import annotations

import faust
import orjson
from faust.web import Request, Response, View

from reachwatch.models.exposure import readers_csv
from reachwatch.streams.service.followup import FollowUpStage
from reachwatch.streams.service.web import JSON, authorized


def register_exposure_views(app: faust.App, stage: FollowUpStage, token: bytes | None) -> None:
    @app.page("/exposures")
    class ExposuresPage(View):
        async def get(self, request: Request) -> Response:
            if not authorized(request.headers.get("Authorization"), token):
                return self.bytes(
                    b'{"error":"unauthorized"}',
                    status=401,
                    headers={"Content-Type": JSON, "WWW-Authenticate": 'Bearer realm="reachwatch"'},
                )
            resource = request.query.get("resource") or None
            alert_id = request.query.get("alert_id") or None
            if resource is None and alert_id is None:
                return self.bytes(
                    b'{"error":"give resource= or alert_id="}',
                    status=400,
                    headers={"Content-Type": JSON},
                )
            record = stage.exposure(resource=resource, alert_id=alert_id)
            if record is None:
                return self.bytes(
                    b'{"error":"no exposure record here"}',
                    status=404,
                    headers={"Content-Type": JSON},
                )
            if request.query.get("format") == "csv":
                return self.bytes(
                    readers_csv(record).encode(),
                    headers={
                        "Content-Type": "text/csv; charset=utf-8",
                        "Cache-Control": "no-store",
                    },
                )
            return self.bytes(
                orjson.dumps(record), headers={"Content-Type": JSON, "Cache-Control": "no-store"}
            )
