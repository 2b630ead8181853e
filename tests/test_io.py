"""Atomic output helpers: all-or-nothing writes with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from solireward.errors import InputError
from solireward.io import atomic_path, atomic_write, markdown_cell, pair_quality, read_json, write_json


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "out.json"
    write_json(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(target) as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert read_json(target) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]


def test_outputs_are_readable_by_others(tmp_path):
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", [1])
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("x")
    finally:
        os.umask(old)
    for name in ("a.json", "b.txt"):
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode & stat.S_IROTH, f"{name} has mode {oct(mode)}"


def test_pair_quality_required_or_defaulted():
    meta = {"win": {"quality": 1}, "lose": {"quality": 0.5}}
    assert pair_quality(meta, "win", "p.json", 3) == 1.0 and pair_quality(meta, "lose", "p.json", 3) == 0.5
    # evaluation's reading: a pair without qualities is win-lose
    assert pair_quality(None, "win", "p.json", 3, default=1.0) == 1.0
    assert pair_quality({"win": {}}, "lose", "p.json", 3, default=0.0) == 0.0
    for bad, field in ((None, "meta"), ({"win": 1.0}, "meta"), ({"win": {}}, "meta.win.quality"),
                       ({"win": {"quality": True}}, "meta.win.quality"),
                       ({"win": {"quality": "1"}}, "meta.win.quality"),
                       ({"win": {"quality": float("nan")}}, "meta.win.quality")):
        with pytest.raises(InputError) as info:  # training's reading: every quality is required
            pair_quality(bad, "win", "p.json", 3)
        assert info.value.field == field and info.value.row == 3 and "p.json" in str(info.value)


def test_markdown_cell_formats_floats_and_marks_missing_values() -> None:
    assert markdown_cell(0.123456) == "0.1235"
    assert markdown_cell(0.5, 2, signed=True) == "+0.50" and markdown_cell(-0.5, 2, signed=True) == "-0.50"
    assert markdown_cell(None) == markdown_cell(float("nan")) == "–"
    assert markdown_cell(None, missing="n/a") == "n/a"
    assert markdown_cell(12) == "12" and markdown_cell("bt") == "bt"
