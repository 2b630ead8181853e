"""Option dataclasses and YAML files.

Every stage describes its options as a dataclass whose fields carry a default and a `help` text
(``arg("...", default)``); the class checks its values in ``__post_init__``. :func:`build_dataclass`
builds such a class from a mapping (a YAML file, a checkpoint's JSON, merged option values), checking
names, types and choices. :mod:`solireward.commands` turns the same fields into command-line flags.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from solireward.errors import ConfigError

T = TypeVar("T")


def arg(help: str, default: Any = dataclasses.MISSING, *, choices: typing.Sequence[Any] | None = None,
        default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field with a help text (and optionally allowed choices)."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_type(cls: type, name: str) -> tuple[Any, bool]:
    """The type of field `name` of the dataclass `cls` without `| None`, and whether it may be None."""
    tp = _type_hints(cls)[name]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def list_item_type(tp: Any) -> Any:
    """The item type of a `list[X]` / `tuple[X, ...]` annotation (str when not given)."""
    return typing.get_args(tp)[0] if typing.get_args(tp) else str


def is_list_type(tp: Any) -> bool:
    """Whether `tp` is a list or tuple annotation."""
    return typing.get_origin(tp) in (list, tuple)


def parse_key_values(items: typing.Iterable[str], field: str) -> dict[str, str]:
    """`KEY=VALUE` strings as a dict; a malformed item or a key given twice with two values is a ConfigError."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expected KEY=VALUE, got {item!r}", field=field)
        if key in out and out[key] != value:
            raise ConfigError(f"'{key}' given twice with different values ({out[key]!r}, {value!r})", field=field)
        out[key] = value
    return out


def parse_bool(text: str | bool) -> bool:
    """Parse true/false, yes/no, 1/0 (any case); anything else is a ValueError."""
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise ValueError(f"expected true or false, got '{text}'")


def _list_of(item_type: Any):
    """Split one token into items: numbers on spaces or commas ('6 12 18 24'); strings stay whole
    (paths may hold spaces and commas)."""
    def convert(text: str) -> list:
        if item_type is str:
            return [str(text)]
        return [item_type(tok) for tok in str(text).replace(",", " ").split()]
    return convert


def _coerce(cls: type, name: str, value: Any, source: str) -> Any:
    tp, optional = field_type(cls, name)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"must not be null (expected {getattr(tp, '__name__', tp)})", file=source, field=name)
    try:
        if is_list_type(tp):
            item = list_item_type(tp)
            if isinstance(value, str):
                return _list_of(item)(value)
            if isinstance(value, (list, tuple)):
                out: list = []
                for v in value:
                    out.extend(_list_of(item)(v) if isinstance(v, str) else [item(v)])
                return out
            return [item(value)]
        if tp is bool:
            return parse_bool(value)
        if tp is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if tp is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if tp is str:
            if isinstance(value, (dict, list)):
                raise ValueError
            return str(value)
    except (ValueError, TypeError):
        raise ConfigError(f"expected {getattr(tp, '__name__', str(tp))}, got {value!r}",
                          file=source, field=name) from None
    return value


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; an unreadable file or a non-mapping is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("config file does not exist", file=str(path))
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {exc}", file=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of option names to values", file=str(path))
    return data


def check_value(cls: type, f: dataclasses.Field, value: Any, source: str) -> Any:
    """`value` converted to the field's type and checked against its choices (ConfigError otherwise)."""
    value = _coerce(cls, f.name, value, source)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"expected one of {list(choices)}, got {value!r}", file=source, field=f.name)
    return value


def build_dataclass(cls: type[T], values: dict[str, Any], source: str, allow_extra: bool = False) -> T:
    """Instantiate `cls` from a mapping, checking names, types and choices.

    A ConfigError of the class's own checks (``__post_init__``) that names no file is given `source`.
    """
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            if allow_extra:
                continue
            close = [n for n in names if n.startswith(key[:4])][:3]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown option{hint}", file=source, field=key)
        kwargs[key] = check_value(cls, names[key], value, source)
    missing = [n for n, f in names.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing required option(s): {', '.join(missing)}", file=source)
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        if exc.file is not None:
            raise
        raise ConfigError(exc.reason, file=source, row=exc.row, field=exc.field) from None
