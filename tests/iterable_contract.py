"""Iterable's API contract (Swagger 2.0) as validators of request bodies and responses.

The contract is `shared/reference/iterable-api-docs.json`, beside the repository. Validation uses
maintained libraries, not checks of our own:

- `openapi-spec-validator` checks the document itself as Swagger 2.0 (it is one of the few maintained
  validators that still reads 2.0; `openapi-core` and most others read OpenAPI 3 only);
- `openapi-schema-validator`'s OpenAPI 3.0 schema validators (built on `jsonschema`) check bodies.
  A Swagger 2.0 Schema Object and an OpenAPI 3.0 one are the same JSON Schema draft-4 subset for every
  keyword this contract uses (`SCHEMA_KEYWORDS`, kept true by a test), and the OpenAPI dialect knows
  the formats draft 4 does not (`int32`, `int64`, `double`), so an `int32` count above 2^31 fails.
  Requests are checked with the write validator and responses with the read one (`readOnly`).
- `$ref`s resolve inside the whole document through a `referencing` registry, so every schema is
  validated where it stands in the contract (by a JSON pointer), not copied out of it.

Objects are read as closed: a property the contract does not define fails (JSON Schema would allow
it). In a request it is a field Iterable ignores, usually a misspelt one; in an answer it is a field
real Iterable never sends, which a client could come to rely on. Objects without `properties`
(`dataFields`) stay open.

Two defects of the document are read as what they mean, since a literal reading asks for answers
Iterable cannot give (`_read_as_meant`):

- `JsObject` is the Scala (Play JSON) type of a JSON object; the generator that wrote the document
  listed its field `underlying` as if it were a property. Its JSON form is the object itself, so it
  is read as `{"type": "object"}` (a catalog item's `value`);
- an integer described as "epoch time in milliseconds" but formatted `int32` (a list's `createdAt`)
  is read as `int64`: no time after January 1970 fits 32 bits in milliseconds.

How answers are read (the contract leaves these to the reader):

- a declared status (or `default`) with a schema: the body must fit it. A `type: string` schema is the body's text
  (the contract uses it for text/plain, CSV and HTML answers, with or without `produces`);
- a declared status without a schema (most 400s, 401s, 201s and 202s) and an error status the
  operation does not declare: the body must be the contract's envelope, `IterableApiResponse`.
  Swagger 2.0 says a Responses Object need not list every possible error; a success status must be
  declared;
- `produces` names the content types of the success answers; errors are the JSON envelope.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from openapi_schema_validator import OAS30ReadValidator, OAS30WriteValidator, oas30_format_checker
from openapi_spec_validator import OpenAPIV2SpecValidator
from openapi_spec_validator.validation.exceptions import DuplicateOperationIDError
from referencing import Registry
from referencing.jsonschema import DRAFT4


def _find_contract() -> Path:
    """The contract beside the repository (``../shared/reference``), or where SMARTINGEST_ITERABLE_CONTRACT
    points: a checkout elsewhere can still run the contract tests instead of skipping them."""
    named = os.environ.get("SMARTINGEST_ITERABLE_CONTRACT")
    beside = Path(__file__).resolve().parents[2] / "shared" / "reference" / "iterable-api-docs.json"
    return Path(named) if named else beside


CONTRACT_PATH = _find_contract()
BASE_URI = "urn:iterable-api-docs"
ENVELOPE = "#/definitions/IterableApiResponse"
JSON_TYPES = ("application/json",)

# The Schema Object keywords whose meaning Swagger 2.0 and OpenAPI 3.0 share (JSON Schema draft 4 and
# annotations). A keyword outside this set (`discriminator`, `x-nullable`, ...) would need a look at
# how the two differ before bodies are validated with the OpenAPI 3.0 dialect.
SCHEMA_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "format",
        "description",
        "title",
        "properties",
        "required",
        "items",
        "enum",
        "default",
        "example",
        "x-example",
        "uniqueItems",
        "additionalProperties",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "pattern",
        "readOnly",
        "allOf",
    }
)


def _pointer(*parts: str) -> str:
    """A JSON pointer into the document (RFC 6901 escaping)."""
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _walk_schemas(schema: Any) -> Iterator[dict[str, Any]]:
    """Every Schema Object in a schema, itself first (through properties, items, additionalProperties)."""
    if not isinstance(schema, dict):
        return
    yield schema
    for sub in (schema.get("properties") or {}).values():
        yield from _walk_schemas(sub)
    yield from _walk_schemas(schema.get("items"))
    yield from _walk_schemas(schema.get("additionalProperties"))
    for sub in schema.get("allOf") or ():
        yield from _walk_schemas(sub)


@dataclass(frozen=True)
class Operation:
    """One operation of the contract, found by method and path template."""

    contract: Contract
    method: str
    template: str
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"

    @property
    def body_schema(self) -> str | None:
        """The JSON pointer of the request body's schema; None when the operation takes no body."""
        for i, parameter in enumerate(self.spec.get("parameters", [])):
            if parameter.get("in") == "body":
                return _pointer("paths", self.template, self.method.lower(), "parameters", str(i), "schema")
        return None

    def request_problems(self, body: Any) -> list[str]:
        """Where a request body (parsed JSON) does not fit the contract; [] when it fits."""
        pointer = self.body_schema
        if pointer is None:
            return [f"{self.name} takes no body in the contract"]
        return self.contract.problems(pointer, body, OAS30WriteValidator)

    def response_problems(self, status: int, content_type: str, body: bytes) -> list[str]:
        """Where an answer does not fit the contract's answer for its status; [] when it fits."""
        media_type = content_type.split(";")[0].strip().lower()
        responses = self.spec.get("responses", {})
        key = str(status) if str(status) in responses else "default"
        declared = responses.get(key)
        if declared is None and status < 400:
            return [f"{self.name}: the contract declares no {status} answer"]
        schema = declared.get("schema") if declared else None
        pointer = _pointer("paths", self.template, self.method.lower(), "responses", key, "schema")
        if schema is None:
            pointer, schema = ENVELOPE, {"$ref": ENVELOPE}
        elif status < 400 and "produces" in self.spec and media_type not in self.spec["produces"]:
            return [f"{self.name} {status}: content type {media_type!r}, the contract produces {self.spec['produces']}"]
        if media_type in JSON_TYPES:
            try:
                value = json.loads(body)
            except ValueError as exc:
                return [f"{self.name} {status}: the {media_type} body is not JSON ({exc})"]
        elif schema.get("type") == "string":
            value = body.decode("utf-8")
        else:
            return [f"{self.name} {status}: a {media_type!r} body where the contract has a JSON schema"]
        return [f"{self.name} {status}: {p}" for p in self.contract.problems(pointer, value, OAS30ReadValidator)]


def _read_as_meant(document: dict[str, Any]) -> None:
    """Read the document's two known defects as what they mean, in place (see the module docstring)."""
    definitions = document.get("definitions", {})
    if "underlying" in definitions.get("JsObject", {}).get("properties", {}):
        definitions["JsObject"] = {"type": "object", "description": "a JSON object (Play JSON's JsObject)"}
    for schema in Contract.schemas(document):
        description = str(schema.get("description", "")).lower()
        if schema.get("format") == "int32" and "epoch time in milliseconds" in description:
            schema["format"] = "int64"


class Contract:
    """The contract document, with every object closed and its known defects read as meant (module docstring)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        closed = copy.deepcopy(document)
        _read_as_meant(closed)
        for schema in self.schemas(closed):
            if "properties" in schema and "additionalProperties" not in schema:
                schema["additionalProperties"] = False
        self.registry: Registry = Registry().with_resource(BASE_URI, DRAFT4.create_resource(closed))

    @staticmethod
    def schemas(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Every Schema Object of the document: definitions, body parameters, responses."""
        for definition in document.get("definitions", {}).values():
            yield from _walk_schemas(definition)
        for item in document.get("paths", {}).values():
            for operation in item.values():
                if not isinstance(operation, dict):
                    continue
                for parameter in operation.get("parameters", []):
                    yield from _walk_schemas(parameter.get("schema"))
                for response in operation.get("responses", {}).values():
                    yield from _walk_schemas(response.get("schema"))

    def schema_keywords(self) -> set[str]:
        """Every keyword used in the document's Schema Objects."""
        return {keyword for schema in self.schemas(self.document) for keyword in schema}

    def operation(self, method: str, template: str) -> Operation | None:
        """The operation for `GET /api/users/{email}`, or None when the contract has none."""
        spec = self.document["paths"].get(template, {}).get(method.lower())
        return Operation(self, method.upper(), template, spec) if spec is not None else None

    def problems(self, pointer: str, value: Any, validator: type = OAS30ReadValidator) -> list[str]:
        """The schema errors of `value` against the schema at `pointer` in the document."""
        checker = validator({"$ref": BASE_URI + pointer}, registry=self.registry, format_checker=oas30_format_checker)
        return [
            f"{'/'.join(str(p) for p in error.absolute_path) or '(body)'}: {error.message}"
            for error in sorted(checker.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))
        ]

    def document_errors(self) -> list[str]:
        """What openapi-spec-validator finds wrong with the document that could touch a body or an answer.

        Iterable's document has defects that cannot: reused operationIds (operations are found here
        by method and path), query parameters declared as arrays of objects, and parameter defaults
        outside their own format or enum (`'None'` for an enum). Those are left out; anything else is
        returned, described.
        """
        found: list[str] = []
        for error in OpenAPIV2SpecValidator(self.document).iter_errors():
            if isinstance(error, DuplicateOperationIDError):
                continue
            location = list(error.absolute_path)
            schema = error.schema if isinstance(error.schema, dict) else {}
            if len(location) == 5 and location[0] == "paths" and location[3] == "parameters":
                parameter = self.document["paths"][location[1]][location[2]]["parameters"][location[4]]
                if parameter.get("in") != "body":
                    continue
            if schema.get("in") not in (None, "body") and error.instance == schema.get("default"):
                continue
            found.append(f"{'/'.join(map(str, location)) or '(document)'}: {error.message}")
        return found


@cache
def load_contract(path: Path = CONTRACT_PATH) -> Contract:
    """The contract, read once per test session."""
    return Contract(json.loads(path.read_text(encoding="utf-8")))
