"""Request bodies validated by pydantic models, errors turned into a 400 with the JSON error shape.

pydantic because hand-written checks drift from the documented shape; the same
models later describe the API in ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from torua.errors import BadRequest
from torua.http.errors import read_json

__all__ = ["Body", "parse_body", "validate"]

M = TypeVar("M", bound=BaseModel)


class Body(BaseModel):
    """Base of every request body: unknown fields and loose types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise BadRequest(f"{where}: {first['msg']}", code="invalid_field") from None


async def parse_body(model: type[M], *, max_bytes: int = 1024 * 1024) -> M:
    return validate(model, await read_json(max_bytes))
