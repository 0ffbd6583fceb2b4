"""Run config derived from the plain dataclasses the domain code takes, so each default lives in
one place (the dataclass) and every knob shows in the launchpad: a field per dataclass field, a
nested Config per nested dataclass, lists where the dataclass has tuples. `dataclass_from_config`
builds the dataclass back by keyword."""

import dataclasses
from collections.abc import Mapping
from typing import Any, get_args, get_origin, get_type_hints

import dagster as dg
from pydantic import BaseModel, Field, create_model

from price_alchemy_assets.dataclass_docs import attribute_docs


def config_class(
    name: str,
    source: type,
    *,
    defaults: object | None = None,
    exclude: tuple[str, ...] = (),
    extra: Mapping[str, tuple[type, Any]] | None = None,
    base: type[BaseModel] = dg.Config,
    doc: str | None = None,
) -> type:
    """A `base` subclass with `source`'s fields (but `exclude`) and `extra` ones {name: (type, default)};
    defaults from `defaults` (an instance of `source`), else from `source()`."""
    defaults = source() if defaults is None else defaults
    hints, described = get_type_hints(source), attribute_docs(source)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(source):
        if field.name in exclude:
            continue
        kind, default = hints[field.name], getattr(defaults, field.name)
        if dataclasses.is_dataclass(kind):
            nested = config_class(f"{name}{_camel(field.name)}", kind, defaults=default)
            fields[field.name] = (nested, Field(default_factory=nested, description=described.get(field.name)))
        else:
            fields[field.name] = (
                _config_type(kind),
                Field(default=_config_value(default), description=described.get(field.name)),
            )
    for field_name, (kind, default) in (extra or {}).items():
        fields[field_name] = (kind, Field(default=default))
    made = create_model(name, __base__=base, __module__=base.__module__, **fields)
    made.__doc__ = doc or source.__doc__ or base.__doc__
    return made


def dataclass_from_config(source: type, config: BaseModel | Mapping[str, Any]):
    """`source` with the config's values for its fields (those the config lacks keep their defaults)."""
    values = config.model_dump() if isinstance(config, BaseModel) else config
    hints = get_type_hints(source)
    chosen = {}
    for field in dataclasses.fields(source):
        if field.name not in values:
            continue
        kind, value = hints[field.name], values[field.name]
        if dataclasses.is_dataclass(kind):
            value = dataclass_from_config(kind, value)
        elif get_origin(kind) is tuple:
            value = tuple(value)
        elif get_origin(kind) is dict:
            value = dict(value)
        chosen[field.name] = value
    return source(**chosen)


def _config_type(kind: Any) -> Any:
    """Dagster config has lists, not tuples."""
    if get_origin(kind) is tuple:
        return list[next(arg for arg in get_args(kind) if arg is not Ellipsis)]
    return kind


def _config_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, dict) else value


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))
