"""Iterable's response envelope and the error the sandbox raises to produce one.

Every /api error (and every single-user success) answers with the contract's `IterableApiResponse`:
`{"msg": str, "code": <one of ApiCode>, "params": object}`. `code` and `msg` are required by the
contract; the sandbox always sends `params` too (an object, empty when there is nothing to add), so
clients can read it without a key check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, Protocol, get_args

import orjson
from starlette.responses import Response

# The `code` enum of IterableApiResponse, verbatim from the contract.
ApiCode = Literal[
    "Success",
    "BadApiKey",
    "BadAuthorizationHeader",
    "BadJsonBody",
    "BadParams",
    "BatchTooLarge",
    "DatabaseError",
    "EmailAlreadyExists",
    "ExternalKeyConflict",
    "Forbidden",
    "ForbiddenParamsError",
    "ForgottenUserError",
    "GenericError",
    "InvalidEmailAddressError",
    "InvalidJwtPayload",
    "InvalidUserIdError",
    "JwtUserIdentifiersMismatched",
    "NotFound",
    "QueueEmailError",
    "RateLimitExceeded",
    "RequestFieldsTypesMismatched",
    "Unauthorized",
    "UniqueFieldsLimitExceeded",
    "UnknownEmailError",
    "UnknownUserIdError",
    "UserIdAlreadyExists",
]
API_CODES: frozenset[str] = frozenset(get_args(ApiCode))

# Envelope code used when the sandbox answers a bare HTTP status (fault bursts).
_CODE_FOR_STATUS: dict[int, ApiCode] = {
    400: "BadParams",
    401: "BadApiKey",
    403: "Forbidden",
    404: "NotFound",
    409: "ExternalKeyConflict",
    413: "BatchTooLarge",
    429: "RateLimitExceeded",
}


class ApiError(Exception):
    """An /api request that fails with HTTP `status` and envelope `code`.

    Raised anywhere below the routes (also inside the storage worker thread); the route layer turns
    it into the envelope response.
    """

    def __init__(self, status: int, code: ApiCode, msg: str, params: dict[str, Any] | None = None):
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg
        self.params = params or {}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson."""
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type="application/json")


def envelope(
    code: ApiCode,
    msg: str,
    status: int = 200,
    params: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An `IterableApiResponse` with the given HTTP status."""
    return json_response({"msg": msg, "code": code, "params": params or {}}, status, headers)


def error_response(error: ApiError) -> Response:
    """The envelope response for an `ApiError`."""
    return envelope(error.code, error.msg, error.status, error.params)


def code_for_status(status: int) -> ApiCode:
    """The envelope code that best names a bare HTTP error status (5xx and unknown: GenericError)."""
    return _CODE_FOR_STATUS.get(status, "GenericError")


class Mismatch(Protocol):
    """A value whose type does not fit its field's type."""

    @property
    def field(self) -> str: ...
    @property
    def fixed_type(self) -> str: ...
    @property
    def request_type(self) -> str: ...


def type_mismatch_error(
    mismatches: Sequence[tuple[str | None, Mismatch]], extra_params: dict[str, Any] | None = None
) -> ApiError:
    """400 ``RequestFieldsTypesMismatched`` naming every mismatch; a mismatch's scope, when given, is the
    event name whose fields it concerns (events type their fields per event name)."""
    described = "; ".join(
        f"field '{m.field}'{'' if scope is None else f' of event {scope!r}'} is of type {m.fixed_type} but the "
        f"request has a value of type {m.request_type}"
        for scope, m in mismatches
    )
    fields = [
        {
            **({} if scope is None else {"eventName": scope}),
            "field": m.field,
            "fixedType": m.fixed_type,
            "requestType": m.request_type,
        }
        for scope, m in mismatches
    ]
    return ApiError(
        400,
        "RequestFieldsTypesMismatched",
        f"Request fields types mismatched: {described}. Nothing in this request was applied.",
        {"mismatchedFields": fields, **(extra_params or {})},
    )
