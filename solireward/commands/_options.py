"""Option dataclasses as argparse flags, and the layering defaults < YAML file < command-line flags.

:func:`add_dataclass_arguments` adds one snake_case flag per field (as in the release:
``--model_type``), with the field's help text and default; :func:`parse_dataclasses` builds the
instances with the precedence *field default < YAML file (``--config``) < command-line flag*.

Renamed options: a dataclass may list old spellings in a ``DEPRECATED`` class variable, ``(old key,
old value or None) -> (new key, new value or None)``. They stay accepted (hidden from ``--help``) in
flags and YAML files, are rewritten to the new spelling and logged as a warning, for one release.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import typing
from typing import Any, TypeVar

from solireward.config import (build_dataclass, check_value, field_type, is_list_type, list_item_type, load_yaml,
                               parse_bool, parse_key_values)
from solireward.errors import ConfigError

T = TypeVar("T")
logger = logging.getLogger(__name__)
Renames = dict[tuple[str, "str | None"], tuple[str, "str | None"]]


def deprecated_names(classes: typing.Sequence[type]) -> Renames:
    """The ``DEPRECATED`` renames of `classes`, value renames first (they must see the old value)."""
    renames: Renames = {}
    for cls in classes:
        renames.update(getattr(cls, "DEPRECATED", {}))
    return dict(sorted(renames.items(), key=lambda item: item[0][1] is None))


def upgrade_deprecated(classes: typing.Sequence[type], values: dict[str, Any], where: str = "",
                       warn: bool = True) -> dict[str, Any]:
    """`values` with old option spellings of `classes` rewritten to the new ones, each logged as a warning
    (naming `where` the value came from) unless `warn` is false."""
    out = dict(values)
    for (old, old_value), (new, new_value) in deprecated_names(classes).items():
        if old not in out or (old_value is not None and out[old] != old_value):
            continue
        value = out.pop(old)
        out[new] = value if new_value is None else new_value
        before = f"{old} {old_value}" if old_value is not None else old
        if warn:
            logger.warning("%s: option '%s' is deprecated and will be removed in the next release; use '%s %s'",
                           where, before, new, out[new])
    return out


def bool_flag(text: str) -> bool:
    """The argparse type of a boolean flag: true/false, yes/no, 1/0 (any case)."""
    try:
        return parse_bool(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_dataclass_arguments(parser: argparse.ArgumentParser, cls: type, title: str | None = None) -> None:
    """Add one flag per field of the dataclass `cls` to `parser`, in a group titled `title`."""
    group = parser.add_argument_group(title or cls.__name__, (cls.__doc__ or "").strip().splitlines()[0]
                                      if cls.__doc__ else None)
    deprecated = deprecated_names([cls])
    fields = {f.name for f in dataclasses.fields(cls)}
    for old in dict.fromkeys(key for key, _ in deprecated if key not in fields):
        group.add_argument(f"--{old}", dest=old, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    for f in dataclasses.fields(cls):
        tp, optional = field_type(cls, f.name)
        help_text = f.metadata.get("help", "")
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
        kwargs: dict[str, Any] = {"default": argparse.SUPPRESS, "dest": f.name}
        shown = default
        if is_list_type(tp):
            kwargs.update(nargs="+", type=str, metavar=list_item_type(tp).__name__.upper())
            shown = " ".join(map(str, default)) if default else default
        elif tp is bool:
            kwargs.update(nargs="?", const=True, type=bool_flag, metavar="BOOL")
        elif tp in (int, float, str):
            kwargs["type"] = tp
        else:
            kwargs["type"] = str
        if f.metadata.get("choices"):
            choices = f.metadata["choices"]
            old = [value for key, value in deprecated if key == f.name and value is not None]
            kwargs["choices"] = (*choices, *old)
            if old:
                kwargs["metavar"] = "{" + ",".join(map(str, choices)) + "}"
        required = default is None and not optional and f.default is dataclasses.MISSING \
            and f.default_factory is dataclasses.MISSING
        suffix = " (required)" if required else f" (default: {shown})"
        group.add_argument(f"--{f.name}", help=f"{help_text}{suffix}", **kwargs)


def add_config_argument(parser: argparse.ArgumentParser,
                        help: str = "YAML file of option values (CLI flags win)") -> None:
    """The ``--config FILE.yaml`` flag: a YAML file of option values, overridden by flags."""
    parser.add_argument("--config", default=None, help=help)


def parse_dataclasses(classes: typing.Sequence[type], args: argparse.Namespace,
                      config_file: str | None = None) -> tuple:
    """Build each class in `classes` from defaults < YAML file < CLI flags.

    A YAML key that belongs to none of the classes is a ConfigError naming the file and key.
    """
    source = command_line_source(config_file)
    values = upgrade_deprecated(classes, load_yaml(config_file), str(config_file)) if config_file else {}
    known = {f.name for cls in classes for f in dataclasses.fields(cls)}
    unknown = [k for k in values if k not in known]
    if unknown:
        raise ConfigError(f"unknown option(s): {', '.join(unknown)}", file=str(config_file),
                          field=unknown[0])
    cli = upgrade_deprecated(classes, vars(args), "command line")
    out = []
    for cls in classes:
        fields = {f.name: f for f in dataclasses.fields(cls)}
        names = set(fields)
        for key in names & values.keys():  # a bad YAML value is an error even when a flag overrides it
            check_value(cls, fields[key], values[key], str(config_file))
        merged = {k: v for k, v in values.items() if k in names}
        merged.update({k: v for k, v in cli.items() if k in names})
        out.append(build_dataclass(cls, merged, source))
    return tuple(out)


def parse_dataclass(cls: type[T], args: argparse.Namespace, config_file: str | None = None) -> T:
    """Build `cls` from defaults, then the YAML file, then CLI flags."""
    return parse_dataclasses([cls], args, config_file)[0]


def command_line_source(config_file: str | None) -> str:
    """How errors name where merged option values came from."""
    return f"{config_file} / command line" if config_file else "command line"


def add_tag_argument(parser: argparse.ArgumentParser, output: str, example: str | None = None) -> None:
    """`--tag KEY=VALUE ...`: labels stored under 'tags' in `output`, by which `solireward report` groups cells."""
    hint = f" (e.g. {example})" if example else ""
    parser.add_argument("--tag", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help=f"label stored under 'tags' in {output} so `solireward report` can group cells{hint}; "
                             "repeatable")


def parse_tags(items: list[str]) -> dict[str, str]:
    """`key=value` strings as a dict; a malformed or contradictory tag is a ConfigError."""
    return parse_key_values(items, "tag")
