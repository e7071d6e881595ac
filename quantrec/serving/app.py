"""The HTTP adapter of the scoring service (FastAPI): validation, status codes, metrics.

As thin as a component: every decision is in ``service`` (which version, cold start,
miss) and ``scorer`` (the numbers). Endpoints::

    POST /score    {"user_id": str, "candidates": [str, ...], "ts"?: ISO 8601, "country"?: str}
                   -> 200 {"version", "user_id", "ts", "cold_start", "cache_miss", "unknown_items",
                           "candidates": [{"item_id", "score", "p_purchase", "expected_gmv",
                                           "predicted_gmv"}, ...] best first}
                   422: bad request (empty / oversized / duplicate candidates, unknown fields,
                        non-string ids, a time before the cache's as-of day), with a message;
                   503: cannot score now (Redis unreachable, no active version, models of the
                        active version not loadable); 500: anything else. Every outcome counted.
    GET /healthz   200 while the process runs
    GET /readyz    200 when the pointer is readable and the models of its version are loaded
                   (they agree by construction: the models are loaded BY the pointer's name), else 503
    GET /metrics   Prometheus text: latency histogram, requests by outcome, cold starts, misses,
                   unknown items, errors by kind, model loads, the serving version
"""

# no ``from __future__ import annotations``: FastAPI must see the request model class
# defined inside ``create_app`` (its size limit is the service's), not a string

import datetime as dt
import json
from typing import Any

from quantrec.serving.service import ScoringService


def create_app(service: ScoringService) -> Any:
    """A FastAPI app over ``service`` (its config's ``max_candidates`` bounds a request)."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from pydantic import BaseModel, ConfigDict, Field, StrictStr

    from quantrec.redact import redact
    from quantrec.serving.cache import CacheError
    from quantrec.serving.scorer import ScoringInputError
    from quantrec.serving.service import ServiceError

    limit = service.config.max_candidates

    class ScoreRequest(BaseModel):
        """One request: a user and the candidate items to rank."""

        model_config = ConfigDict(extra="forbid")
        user_id: StrictStr = Field(min_length=1, max_length=256)
        candidates: list[StrictStr] = Field(min_length=1, max_length=limit)
        ts: dt.datetime | None = None
        country: StrictStr | None = Field(default=None, max_length=256)

    app = FastAPI(title="quantrec scoring", description=__doc__)
    metrics = service.metrics

    def bad_request(detail: str) -> JSONResponse:
        metrics.requests.labels("bad_request").inc()
        return JSONResponse(status_code=422, content={"detail": redact(detail)})

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body") or "body"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return bad_request("invalid request: " + "; ".join(parts))

    @app.post("/score")
    def score(request: ScoreRequest) -> Response:
        if any(not c for c in request.candidates):
            return bad_request("candidates: empty item id")
        if len(set(request.candidates)) != len(request.candidates):
            return bad_request("candidates: duplicate item ids")
        try:
            result = service.score(request.user_id, request.candidates, request.ts, request.country)
        except ScoringInputError as e:
            return JSONResponse(status_code=422, content={"detail": redact(str(e))})
        except (CacheError, ServiceError) as e:
            raise HTTPException(status_code=503, detail=redact(str(e))) from None
        # serialised here: FastAPI's generic encoder walks every field of every candidate
        # (about 2 ms for 100 candidates); the body is plain str / float / bool already
        return Response(content=json.dumps(result.to_dict(), allow_nan=False), media_type="application/json")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        ok, details = service.ready()
        return JSONResponse(status_code=200 if ok else 503, content={"ready": ok, **details})

    @app.get("/metrics")
    def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(content=body, media_type=content_type)

    return app


CONFIG_ENV = "QUANTREC_SERVE_CONFIG"


def app_from_env() -> Any:
    """The app of a uvicorn worker (``uvicorn quantrec.serving.app:app_from_env --factory``):
    the ``ServiceConfig`` comes as JSON in $QUANTREC_SERVE_CONFIG (``quantrec serve`` sets
    it); the models of the active version are loaded before the worker accepts requests."""
    import os

    from quantrec.serving.service import ServiceConfig

    raw = os.environ.get(CONFIG_ENV)
    if not raw:
        raise ValueError(f"${CONFIG_ENV} is not set: start the service with `quantrec serve`")
    service = ScoringService(ServiceConfig(**json.loads(raw)))
    warm_up(service)
    return create_app(service)


def warm_up(service: ScoringService) -> str:
    """Load the models of the version the cache points at now; returns a one-line status
    (never raises: a cache that is down or empty is served as 503 until it is back)."""
    from quantrec.redact import redact
    from quantrec.serving.cache import CacheError
    from quantrec.serving.service import ServiceError

    try:
        version = service.active_version()
        service.models_for(version)
        return f"serving version {version}"
    except (CacheError, ServiceError) as e:
        return redact(f"not ready yet: {e}")
