"""``GET /metrics``: the Prometheus exposition of this process (every worker's in multi-process mode).

Not for the public: nginx (deploy/nginx) refuses it from outside; Prometheus scrapes each replica on
the internal network.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from kefu.api.deps import RuntimeDep
from kefu.errors import NotFound

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    recorded = runtime.assistant.metrics
    if recorded is None:
        raise NotFound("this process records no metrics (its runtime was built without them)")
    body = await to_thread.run_sync(recorded.render)  # the scrape-time gauges read the database
    return Response(body, media_type=CONTENT_TYPE_LATEST)
