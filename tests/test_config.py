"""Options: defaults < YAML < flags, with every YAML value checked."""

from __future__ import annotations

import pytest


def test_bad_yaml_value_is_an_error_even_when_a_flag_overrides_it(tmp_path):
    import argparse
    import dataclasses

    from solireward.config import add_dataclass_arguments, arg, parse_dataclasses
    from solireward.errors import ConfigError

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
