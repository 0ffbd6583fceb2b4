"""Request bodies read the strict way, before Litestar converts them.

Litestar turns a JSON body into its struct with `msgspec.convert(strict=False)`, which takes
"3" for an integer, and it lets bytes that are not UTF-8 or JSON nested a thousand deep escape
as a 500. The app's before-request hook reads the body of every route that takes one: it must
arrive in time, be UTF-8 JSON and be the route's struct with no coercion, else a 4xx naming
what is wrong. The one loosening is JSON Schema's: a number with no fractional part (3.0) is an
integer. Litestar's own conversion then runs on a body known to be good, so the handler and the
OpenAPI schema keep the struct.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request
from litestar._openapi.schema_generation import SchemaCreator
from litestar._openapi.schema_generation.plugins import StructSchemaPlugin
from litestar.exceptions import ClientException, ValidationException
from litestar.openapi.spec import Schema
from litestar.status_codes import HTTP_408_REQUEST_TIMEOUT
from litestar.typing import FieldDefinition

from price_alchemy_assets.service.schemas import NOT_BLANK

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(?P<field>.*)`$", re.DOTALL)
_IN_PLAIN_WORDS = {f"Expected `str` matching regex {NOT_BLANK!r}": "must not be blank"}


class RequestTimeout(ClientException):
    """408, and the connection is closed: what is left of a body that came too slowly is not read."""

    status_code = HTTP_408_REQUEST_TIMEOUT


def rejected(key: str, message: str) -> ValidationException:
    """A 400 in Litestar's shape, its detail naming the field (a path like listings[1].name)."""
    return ValidationException(detail=f"{key}: {message}", extra=[{"key": key, "message": message, "source": "body"}])


def strict_json_bodies(read_seconds: float) -> Callable[[Request], Awaitable[None]]:
    """The app's before-request hook: a route that takes a body gets it only if it is its struct,
    sent within `read_seconds`."""

    async def check(request: Request) -> None:
        expected = request.route_handler.parsed_data_field
        if expected is None:
            return
        try:
            async with asyncio.timeout(read_seconds):
                body = await request.body()
        except TimeoutError:
            raise RequestTimeout(
                detail=f"the request body did not arrive within {read_seconds:g} s",
                headers={"connection": "close"},
            ) from None
        strict_value(body, expected.annotation)

    return check


class ClosedStructSchemaPlugin(StructSchemaPlugin):
    """Publishes `additionalProperties: false` for a struct that forbids unknown fields, so the
    schema says what the service enforces (Litestar's own plugin leaves objects open). It extends
    a class from litestar._openapi, not public API: litestar is pinned in requirements.lock."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: SchemaCreator) -> Schema:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        if msgspec.inspect.type_info(field_definition.type_).forbid_unknown_fields:
            schema.additional_properties = False
        return schema


def strict_value(body: bytes, struct: type[msgspec.Struct]) -> Any:
    """`body` as `struct`, or the 400 saying why not."""
    try:
        value = msgspec.json.decode(body)
        return msgspec.convert(_integral_numbers_as_int(value), struct, strict=True)
    except UnicodeDecodeError:
        raise rejected("body", _not_utf8(body)) from None
    except RecursionError:
        raise rejected("body", "JSON nested too deeply") from None
    except msgspec.ValidationError as error:
        raise rejected(*_key_and_message(str(error))) from None
    except msgspec.DecodeError as error:
        raise rejected("body", f"not valid JSON: {error}") from None


def _not_utf8(body: bytes) -> str:
    """Where the first byte that is not UTF-8 is (msgspec's error counts within one string)."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as error:
        return f"not UTF-8: byte 0x{body[error.start]:02x} at offset {error.start}"
    return "not UTF-8"


def _integral_numbers_as_int(value: Any) -> Any:
    """3.0 -> 3 anywhere in a decoded body: JSON Schema counts it as an integer, msgspec's strict mode
    does not (and an integer is a valid float, so no float field is changed)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {key: _integral_numbers_as_int(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_integral_numbers_as_int(item) for item in value]
    return value


def _key_and_message(error: str) -> tuple[str, str]:
    """msgspec's "Expected `int`, got `str` - at `$.listings[1].item_condition_id`" as
    ("listings[1].item_condition_id", "Expected `int`, got `str`"); an unknown field is its own key."""
    parts = _AT.match(error)
    message, path = parts["message"], (parts["path"] or "").removeprefix(".")
    if unknown := _UNKNOWN_FIELD.match(message):
        path = f"{path}.{unknown['field']}" if path else unknown["field"]
    return path or "body", _IN_PLAIN_WORDS.get(message, message)
