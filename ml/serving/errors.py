"""The API's errors: one JSON shape (``{"error": {"code", "message", "tenant_id", "details"}}``) for all.

Every error says what was wrong and what to do; 429s carry ``Retry-After``, 401s
``WWW-Authenticate``.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from ml.serving.metrics import Metrics

_encode = msgspec.json.Encoder().encode


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer encoded by msgspec (the encoder the serving benchmark was measured with)."""
    return Response(_encode(data), status_code=status, media_type="application/json", headers=headers)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        tenant_id: str | None = None,
        retry_after: float | None = None,
        details: list[Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.tenant_id, self.retry_after, self.details = tenant_id, retry_after, details

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.tenant_id:
            err["tenant_id"] = self.tenant_id
        if self.details:
            err["details"] = self.details
        return {"error": err}


def seconds_until(ts: float) -> int:
    """``Retry-After`` seconds: whole, at least one."""
    return max(1, math.ceil(ts))


def error_response(exc: ApiError, path: str, metrics: Metrics) -> Response:
    headers = {"Retry-After": str(seconds_until(exc.retry_after))} if exc.retry_after is not None else None
    if exc.status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    metrics.requests.labels(exc.tenant_id or "-", metrics.endpoint(path), str(exc.status), "-").inc()
    return json_response(exc.body(), exc.status, headers)


def install_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Render :class:`ApiError` and FastAPI's validation errors (422, naming the field) in the one shape."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        return error_response(exc, request.url.path, metrics)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        details = [
            {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "reason": e["msg"]} for e in exc.errors()
        ]
        tenant = getattr(request.state, "tenant_id", None)
        metrics.requests.labels(tenant or "-", metrics.endpoint(request.url.path), "422", "-").inc()
        first = details[0] if details else {"field": "body", "reason": "invalid"}
        more = f" (and {len(details) - 1} more problems)" if len(details) > 1 else ""
        body = {
            "error": {
                "code": "invalid_request",
                "tenant_id": tenant,
                "message": f"{first['field'] or 'body'}: {first['reason']}{more}",
                "details": details,
            }
        }
        return JSONResponse(body, status_code=422)
