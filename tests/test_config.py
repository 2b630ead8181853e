"""Options: defaults < YAML < flags, with every YAML value checked."""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from solireward.commands._options import add_dataclass_arguments, parse_dataclasses
from solireward.config import arg, build_dataclass, parse_bool
from solireward.errors import ConfigError


def test_bad_yaml_value_is_an_error_even_when_a_flag_overrides_it(tmp_path):
    @dataclasses.dataclass
    class Options:
        max_steps: int = arg("steps", 10)

    config = tmp_path / "train.yaml"
    config.write_text("max_steps: many\n")
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, Options)
    with pytest.raises(ConfigError, match="max_steps") as info:
        parse_dataclasses([Options], parser.parse_args(["--max_steps", "4"]), str(config))
    assert str(config) in str(info.value)
    config.write_text("max_steps: 7\n")
    assert parse_dataclasses([Options], parser.parse_args(["--max_steps", "4"]), str(config))[0].max_steps == 4


def test_parse_bool_is_a_plain_value_error() -> None:
    assert parse_bool("Yes") is True and parse_bool("0") is False and parse_bool(False) is False
    with pytest.raises(ValueError, match="expected true or false, got 'maybe'"):
        parse_bool("maybe")


def test_a_check_of_the_class_itself_is_given_the_source() -> None:
    @dataclasses.dataclass
    class Options:
        share: float = arg("a share", 0.5)

        def __post_init__(self) -> None:
            if not 0 <= self.share <= 1:
                raise ConfigError(f"expected a share between 0 and 1, got {self.share}", field="share")

    with pytest.raises(ConfigError) as info:
        build_dataclass(Options, {"share": 2}, "study.yaml")
    assert str(info.value) == "study.yaml, field 'share': expected a share between 0 and 1, got 2.0"
    with pytest.raises(ConfigError, match="missing required option"):
        build_dataclass(dataclasses.make_dataclass("Required", [("path", str, arg("a path"))]), {}, "x.yaml")
