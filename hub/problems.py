"""RFC 9457 problem details: how every HTTP API of the hub says no.

Shared by the ingest gateway (`producers.gateway`) and the ops API (`hub.ops.api`): a refusal is
raised as a `Refusal` and rendered by one handler, so bodies have one shape everywhere and never
echo input (field errors carry the path, pydantic's error type and a message, no values).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import ClassVar, Protocol

from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

__all__ = ["FieldErrorBody", "Problem", "Refusal"]


class _FieldError(Protocol):
    @property
    def field(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def message(self) -> str: ...


class FieldErrorBody(BaseModel):
    """One broken rule: the field path, pydantic's error type and a message without input."""

    model_config = ConfigDict(frozen=True)

    field: str
    type: str
    message: str


class Problem(BaseModel):
    """Why a request was refused (RFC 9457 problem details); ``errors`` only on 422."""

    model_config = ConfigDict(frozen=True)

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldErrorBody] | None = None


class Refusal(Exception):
    """An answer other than success: raised by an endpoint, rendered by ``response()``."""

    media_type: ClassVar[str | None] = "application/problem+json"

    def __init__(
        self,
        status: HTTPStatus,
        detail: str,
        *,
        errors: Sequence[_FieldError] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = tuple(errors)
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        """The problem-details response for this refusal."""
        problem = Problem(
            title=self.status.phrase,
            status=self.status.value,
            detail=self.detail,
            errors=[
                FieldErrorBody(field=e.field, type=e.type, message=e.message) for e in self.errors
            ]
            if self.status is HTTPStatus.UNPROCESSABLE_ENTITY
            else None,
        )
        if self.media_type is None:
            return JSONResponse(
                problem.model_dump(mode="json", exclude_none=True),
                status_code=self.status.value,
                headers=self.headers,
            )
        return JSONResponse(
            problem.model_dump(mode="json", exclude_none=True),
            status_code=self.status.value,
            headers=self.headers,
            media_type=self.media_type,
        )
