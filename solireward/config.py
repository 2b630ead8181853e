"""Configuration dataclasses ↔ command-line flags ↔ YAML files.

Every stage describes its options as a dataclass whose fields carry a default and a
`help` text (``arg("...", default)``). :func:`add_dataclass_arguments` turns such a class
into argparse flags (snake_case, as in the release: ``--model_type``), and
:func:`parse_dataclass` builds the instance with the precedence
*field default < YAML file (``--config``) < command-line flag*.
"""

from __future__ import annotations

import argparse
import dataclasses
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


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def parse_bool(text: str | bool) -> bool:
    """Parse true/false, yes/no, 1/0 (any case)."""
    if isinstance(text, bool):
        return text
    lowered = str(text).strip().lower()
    if lowered in ("1", "true", "yes", "y", "on"):
        return True
    if lowered in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got '{text}'")


def _list_of(item_type: Any):
    """Split one token into items: numbers on spaces or commas ('6 12 18 24'); strings stay whole
    (paths may hold spaces and commas)."""
    def convert(text: str) -> list:
        if item_type is str:
            return [str(text)]
        return [item_type(tok) for tok in str(text).replace(",", " ").split()]
    return convert


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """Add one flag per field of the dataclass `cls` to `parser`."""
    group = parser.add_argument_group(title or cls.__name__, (cls.__doc__ or "").strip().splitlines()[0]
                                      if cls.__doc__ else None)
    hints = _field_types(cls)
    for f in dataclasses.fields(cls):
        tp, optional = _unwrap_optional(hints[f.name])
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": f.name}
        shown = default
        if typing.get_origin(tp) in (list, tuple):
            item = typing.get_args(tp)[0] if typing.get_args(tp) else str
            kwargs.update(nargs="+", type=str, metavar=item.__name__.upper())
            shown = " ".join(map(str, default)) if default else default
        elif tp is bool:
            kwargs.update(nargs="?", const=True, type=parse_bool, metavar="BOOL")
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        required = default is None and not optional and f.default is dataclasses.MISSING \
            and f.default_factory is dataclasses.MISSING
        suffix = " (required)" if required else f" (default: {shown})"
        group.add_argument(f"--{f.name}", help=f"{help_text}{suffix}", **kwargs)


def _coerce(cls: type, name: str, value: Any, source: str) -> Any:
    tp, optional = _unwrap_optional(_field_types(cls)[name])
    if value is None:
        if optional:
            return None
        raise ConfigError(f"must not be null (expected {getattr(tp, '__name__', tp)})", file=source, field=name)
    try:
        if typing.get_origin(tp) in (list, tuple):
            item = typing.get_args(tp)[0] if typing.get_args(tp) else str
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
    except (ValueError, TypeError, argparse.ArgumentTypeError):
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


def _checked(cls: type, f: dataclasses.Field, value: Any, source: str) -> Any:
    """`value` converted to the field's type and checked against its choices (ConfigError otherwise)."""
    value = _coerce(cls, f.name, value, source)
    choices = f.metadata.get("choices")
    if choices and value not in choices:
        raise ConfigError(f"expected one of {list(choices)}, got {value!r}", file=source, field=f.name)
    return value


def build_dataclass(cls: type[T], values: dict[str, Any], source: str, allow_extra: bool = False) -> T:
    """Instantiate `cls` from a mapping, checking names, types and choices."""
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            if allow_extra:
                continue
            close = [n for n in names if n.startswith(key[:4])][:3]
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigError(f"unknown option{hint}", file=source, field=key)
        kwargs[key] = _checked(cls, names[key], value, source)
    missing = [n for n, f in names.items() if n not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"missing required option(s): {', '.join('--' + m for m in missing)}", file=source)
    return cls(**kwargs)


def parse_dataclasses(classes: typing.Sequence[type], args: argparse.Namespace,
                      config_file: str | None = None) -> tuple:
    """Build each class in `classes` from defaults < YAML file < CLI flags.

    A YAML key that belongs to none of the classes is a ConfigError naming the file and key.
    """
    values: dict[str, Any] = load_yaml(config_file) if config_file else {}
    known = {f.name for cls in classes for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}", file=str(config_file),
                          field=unknown[0])
    cli = vars(args)
    source = "command line" if not config_file else f"{config_file} / command line"
    out = []
    for cls in classes:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        names = set(fields)
        for key in names & values.keys():  # a bad YAML value is an error even when a flag overrides it
            _checked(cls, fields[key], values[key], str(config_file))
        merged = {k: v for k, v in values.items() if k in names}
        merged.update({k: v for k, v in cli.items() if k in names})
        out.append(build_dataclass(cls, merged, source))
    return tuple(out)


def parse_dataclass(cls: type[T], args: argparse.Namespace, config_file: str | None = None) -> T:
    """Build `cls` from defaults, then the YAML file, then CLI flags."""
    return parse_dataclasses([cls], args, config_file)[0]


def to_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain, YAML/JSON-serialisable dict."""
    return dataclasses.asdict(obj)
