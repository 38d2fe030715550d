"""The API server's error answer: a ``kind: Status`` body with the HTTP code, its reason and a message."""

from __future__ import annotations

from typing import Any

import aiohttp.web

REASONS = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 409: "Conflict", 410: "Expired",
           415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
           503: "ServiceUnavailable"}


class ApiError(Exception):
    def __init__(self, code: int, message: str, details: dict[str, Any] | None = None, reason: str | None = None):
        super().__init__(message)
        self.code, self.message, self.details, self.reason = code, message, details, reason

    def response(self) -> aiohttp.web.StreamResponse:
        body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure", "code": self.code,
                "reason": self.reason or REASONS.get(self.code, "InternalError"), "message": self.message}
        if self.details:
            body["details"] = self.details
        headers = {"Retry-After": "1"} if self.code == 429 else None
        return aiohttp.web.json_response(body, status=self.code, headers=headers)
