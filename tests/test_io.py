"""Atomic output helpers: all-or-nothing writes with ordinary permissions."""

from __future__ import annotations

import os
import stat

import pytest

from solireward.io import atomic_path, atomic_write, read_json, write_json


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

