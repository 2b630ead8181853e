"""Security checks: no remote code, no unpickling of files, weights written only as safetensors.

The source checks parse every module of the package (and scan the workflow's rule files) rather than
grepping lines, so a call split over several lines or spelt through an alias is still found.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import run_cli

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "solireward"
SOURCES = sorted(PACKAGE.rglob("*.py"))
WORKFLOW = sorted(p for p in (REPO / "workflow").rglob("*") if p.suffix in (".smk", ".py") or p.name == "Snakefile")
# functions that unpickle whatever file they are given
UNPICKLERS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "load"),
              ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"), ("cloudpickle", "loads"),
              ("joblib", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"), ("shelve", "open"),
              ("marshal", "load"), ("marshal", "loads")}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
# spelt in two parts so that no line of this file sets the flag (the project's own grep would flag it)
REMOTE_CODE = "trust_remote" + "_code"


def _calls(path: Path) -> list[tuple[ast.Call, str, str]]:
    """(call, object name, attribute) of every `obj.attr(...)` call in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else (owner.attr if isinstance(owner, ast.Attribute) else "")
            found.append((node, name, node.func.attr))
    return found


def _keyword(call: ast.Call, name: str) -> object:
    for keyword in call.keywords:
        if keyword.arg == name:
            return keyword.value.value if isinstance(keyword.value, ast.Constant) else keyword.value
    return None


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(REPO)}:{node.lineno}"


def test_the_checks_see_the_package() -> None:
    assert len(SOURCES) > 10 and any(p.name == "reward_model.py" for p in SOURCES)
    assert any(p.name == "Snakefile" for p in WORKFLOW)


def _remote_code_lines(path: Path) -> list[int]:
    """Lines of a module that set trust_remote_code to anything but a literal False (keyword or dict key)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == REMOTE_CODE:
            if not (isinstance(node.value, ast.Constant) and node.value.value is False):
                lines.append(node.value.lineno)
        elif isinstance(node, ast.Dict):
            lines += [k.lineno for k, v in zip(node.keys, node.values)
                      if isinstance(k, ast.Constant) and k.value == REMOTE_CODE
                      and not (isinstance(v, ast.Constant) and v.value is False)]
    return lines


def test_no_remote_code() -> None:
    offenders = [f"{path.relative_to(REPO)}:{line}" for path in SOURCES for line in _remote_code_lines(path)]
    for path in WORKFLOW:
        offenders += [f"{path.relative_to(REPO)}:{i}" for i, line in enumerate(path.read_text().splitlines(), 1)
                      if re.search(r"trust_remote_code\s*[=:]\s*True", line)]
    assert offenders == []


def test_torch_load_only_with_weights_only() -> None:
    offenders = [_where(path, call) for path in SOURCES for call, owner, attr in _calls(path)
                 if owner == "torch" and attr == "load" and _keyword(call, "weights_only") is not True]
    assert offenders == []


def test_nothing_unpickles_files() -> None:
    offenders = [_where(path, call) for path in SOURCES for call, owner, attr in _calls(path)
                 if (owner, attr) in UNPICKLERS
                 or (owner in ("np", "numpy") and attr == "load" and _keyword(call, "allow_pickle") not in (None, False))]
    imports = [_where(path, node) for path in SOURCES for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
               if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "dill", "cloudpickle", "joblib")
               and any(alias.name in ("load", "loads", "Unpickler") for alias in node.names)]
    assert offenders + imports == []


def test_the_source_checks_catch_offenders(tmp_path: Path) -> None:
    """The checks above are not vacuous: they flag each pattern in a sample module."""
    sample = tmp_path / "bad.py"
    sample.write_text("import torch, pickle\n"
                      f"m = Auto.from_pretrained(p,\n    {REMOTE_CODE}=True)\n"
                      "s = torch.load(f)\n"
                      "t = torch.load(f, weights_only=False)\n"
                      "u = torch.load(f, weights_only=True)\n"
                      "v = pickle.load(open(f, 'rb'))\n")
    calls = _calls(sample)
    assert [c.lineno for c, o, a in calls if o == "torch" and a == "load" and _keyword(c, "weights_only") is not True] \
        == [4, 5]
    assert [c.lineno for c, o, a in calls if (o, a) in UNPICKLERS] == [7]
    assert _remote_code_lines(sample) == [3]


def _pickled(path: Path) -> bool:
    """Whether a file holds a pickle or torch.save output (zip archive with a data.pkl, or a raw pickle)."""
    head = path.read_bytes()[:4]
    return head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05") or head == b"PK\x03\x04"


@pytest.mark.parametrize("family", ["Qwen2-VL", "InternVL3"])
def test_saved_models_and_checkpoints_hold_no_pickles(family: str, tiny_model_factory, tmp_path: Path) -> None:
    """A trained reward model, its checkpoints and a tiny backbone: weights in safetensors, state in JSON."""
    from safetensors import safe_open

    from solireward.data.video_write import write_video

    backbone = tiny_model_factory(family)
    pairs = tmp_path / "train.json"
    videos = tmp_path / "videos"
    videos.mkdir()
    rng = np.random.default_rng(0)
    records = []
    for i in range(4):
        path = videos / f"v{i}.mp4"
        write_video(path, rng.integers(0, 256, (4, 28, 28, 3), dtype=np.uint8))
        records.append({"video_path": str(path), "prompt": f"clip {i}"})
    pairs.write_text(json.dumps([{"win": records[i], "lose": records[i + 2],
                                  "meta": {"win": {"quality": 1.0}, "lose": {"quality": 0.0}}} for i in range(2)]))
    out = tmp_path / "model"
    assert run_cli("train", "--model_name_or_path", backbone, "--train_data", pairs, "--output_dir", out,
                   "--max_steps", 2, "--save_steps", 1, "--per_device_train_batch_size", 4, "--num_frames", 2,
                   "--height", 28, "--width", 28, "--dataloader_num_workers", 0, "--gradient_checkpointing", "false",
                   "--learning_rate", 1e-3, "--warmup_ratio", 0, "--seed", 0) == 0
    files = [p for folder in (out, backbone) for p in folder.rglob("*") if p.is_file()]
    assert any(p.name == "model.safetensors" for p in files) and (out / "checkpoints").is_dir()
    assert [p for p in files if p.suffix in PICKLE_SUFFIXES or _pickled(p)] == []
    for weights in (p for p in files if p.suffix == ".safetensors"):
        with safe_open(str(weights), "pt") as handle:  # a real safetensors file, not a renamed pickle
            assert list(handle.keys()), weights
