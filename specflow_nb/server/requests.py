"""Reading a request: its JSON body and query within limits, validated into the API's models; the storage error.

Apart from the handlers because it holds no route and no tornado state: the limits and error shapes that make a
user's malformed request a 4xx (never a 500) are tested and read here on their own.
"""

from __future__ import annotations

import errno
import json
import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from specflow_nb.errors import ConfigError, SpecflowError

M = TypeVar("M", bound=BaseModel)

#: The largest request body (1 MiB): a larger one is a 413 before it is parsed.
MAX_BODY_BYTES = 1 << 20
#: The deepest JSON nesting a request may have (bodies and the ``config`` query): deeper is a 400, never a
#: RecursionError.
MAX_JSON_DEPTH = 64
#: Longest text of a numeric query parameter: a longer one cannot be a sensible version or timeout (no overflow).
MAX_NUMBER_CHARS = 32
#: errno values of path errors a request causes (a name too long, a file where a folder is expected, a link loop):
#: the request's fault, a 400, not a storage error.
REQUEST_PATH_ERRNOS = frozenset(
    e for e in (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.EINVAL, getattr(errno, "EILSEQ", None)) if e
)
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


class RequestTooLarge(SpecflowError):
    """The request body is over :data:`MAX_BODY_BYTES`."""

    http_status = 413


def json_depth(raw: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text ``raw`` (strings skipped), without parsing it."""
    depth = deepest = 0
    for match in _BRACKETS.finditer(_STRINGS.sub(b'""', raw)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes, what: str) -> Any:
    """``raw`` as JSON, with a 400 naming ``what`` for invalid or too deeply nested input."""
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise ConfigError(
            f"{what} is nested more than {MAX_JSON_DEPTH} levels deep.",
            hint="Send a flat JSON object as the OpenAPI document describes.",
            details=[{"loc": [what], "msg": "too deeply nested", "type": "json_depth"}],
        )

    try:
        # NaN and Infinity parse (Python's json does): the models refuse them naming the field (allow_inf_nan=False)
        return json.loads(raw)
    except RecursionError:  # the depth check missed a pathological case: still the request's fault
        raise ConfigError(f"{what} is nested too deeply.") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(
            f"{what} is not valid JSON: {exc}",
            hint="Send a JSON object with Content-Type: application/json.",
        ) from None


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    """Field errors without the offending input (it may hold secrets) or non-JSON context objects."""
    return [
        {"loc": [str(part) for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


class StorageError(SpecflowError):
    """The server could not read or write a project's files (disk full, read-only folder, I/O error): a 503 with the
    reason, not a 500 — the request was fine and may succeed once the storage is fixed."""

    http_status = 503

    @classmethod
    def from_os_error(cls, exc: OSError) -> StorageError:
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        return cls(
            f"The server could not read or write the project's files ({reason}{where}).",
            hint="Check the project's .specflow folder: is the disk full, or the folder read-only or owned by "
            "another user? Fix it, then retry; the last saved state is kept.",
            details={"errno": errno.errorcode.get(exc.errno or 0)},
        )


def validate(model: type[M], data: Any) -> M:
    """Validate ``data`` into ``model``; a failure is a 400 that lists each field's problem."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = validation_details(exc)
        problems = "; ".join(f"{'.'.join(d['loc']) or 'body'}: {d['msg']}" for d in details[:3])
        more = f" (and {len(details) - 3} more)" if len(details) > 3 else ""
        raise ConfigError(
            f"Invalid request: {problems}{more}",
            details=details,
            hint="See the OpenAPI document (specflow_nb/server/openapi.json) for the request's fields.",
        ) from None
