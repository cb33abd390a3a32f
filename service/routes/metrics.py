"""`/metrics`: Prometheus text format (service/metrics.py), needing the `read` scope like every GET."""

from __future__ import annotations

from typing import cast

import structlog
from fastapi import APIRouter, Request, Response
from redis.exceptions import RedisError

from service.deps import PoolDep, SettingsDep
from service.errors import PlatformRoute
from service.metrics import ClusterSnapshot, HttpMetrics, read_cluster, render

log = structlog.get_logger("api")
router = APIRouter(tags=["metrics"], route_class=PlatformRoute)
# The classic text format (what generate_latest writes for these names), read by every Prometheus version.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
EXPOSITION = {"description": "Prometheus text format", "content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}


@router.get("/metrics", response_class=Response, responses={200: EXPOSITION})
async def get_metrics(request: Request, pool: PoolDep, settings: SettingsDep) -> Response:
    """The API's HTTP metrics and the cluster's job, queue and worker metrics. With Redis out of reach the
    answer is still a 200: the HTTP families and `redis_up 0`, without the job families."""
    snapshot: ClusterSnapshot | None = None
    try:
        snapshot = await read_cluster(pool, settings.queue_name)
    except (RedisError, OSError) as exc:
        log.warning("metrics.redis_unavailable", error=type(exc).__name__)
    return Response(render(cast(HttpMetrics, request.state.metrics), snapshot), media_type=CONTENT_TYPE)
