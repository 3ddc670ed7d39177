"""/metrics: Prometheus exposition of the service's metrics (open like the probes)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from briefing.service.metrics import CONTENT_TYPE, ServiceMetrics

router = APIRouter(tags=["health"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(request: Request) -> Response:
    """Requests, briefing jobs, model calls, tokens and errors, in Prometheus text format."""
    registry: ServiceMetrics = request.app.state.metrics
    return Response(registry.render(), media_type=CONTENT_TYPE)
