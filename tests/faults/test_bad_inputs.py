"""Bad configs, pair files and inference inputs: each is an error (exit 2) naming the file and the field or row.

Cases already covered elsewhere are not repeated here: label CSV/JSONL rows, columns and label values
(tests/data/test_annotations.py), unknown train YAML keys (tests/training/test_trainer.py), inference records
without video_path (tests/test_inference.py), score records and pair sides in evaluate
(tests/test_evaluation.py), workflow config keys and types (tests/workflow/test_workflow.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.training.conftest import fast_args

GOOD_PAIR = {"win": {"video_path": "/v/a.mp4", "prompt": "p"}, "lose": {"video_path": "/v/b.mp4", "prompt": "q"},
             "meta": {"win": {"quality": 1.0}, "lose": {"quality": 0.0}}}


def _error(capsys: pytest.CaptureFixture) -> str:
    return capsys.readouterr().err


@pytest.mark.parametrize("yaml_text, field, words", [
    ("max_steps: many\n", "max_steps", "int"),
    ("learning_rate: [0.1, 0.2]\n", "learning_rate", "float"),
    ("batching: sideways\n", "batching", "in_batch"),
    ("pairing: sideways\n", "pairing", "cross_prompt"),
    ("reward_margin: 'wide'\n", "reward_margin", "float"),
])
def test_train_yaml_with_a_wrong_type_names_file_and_field(demo_pairs: Path, tiny_qwen: Path, tmp_path: Path,
                                                           capsys, yaml_text: str, field: str, words: str) -> None:
    config = tmp_path / "train.yaml"
    config.write_text(yaml_text)
    out = tmp_path / "out"
    # the fast flags set max_steps and learning_rate on the command line, which would win over the file
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, out, **{field: None}), "--config", config) == 2
    err = _error(capsys)
    assert str(config) in err and field in err and words in err, err
    assert not (out / "model.safetensors").exists()


def test_train_yaml_that_is_not_a_mapping(demo_pairs: Path, tiny_qwen: Path, tmp_path: Path, capsys) -> None:
    config = tmp_path / "list.yaml"
    config.write_text("- max_steps\n- 3\n")
    assert run_cli(*fast_args(tiny_qwen, demo_pairs, tmp_path / "out"), "--config", config) == 2
    assert str(config) in _error(capsys)


@pytest.mark.parametrize("content, where", [
    ({"pairs": [GOOD_PAIR]}, "expected a JSON list"),
    ([GOOD_PAIR, {"lose": GOOD_PAIR["lose"], "meta": GOOD_PAIR["meta"]}], "row 1"),
    ([GOOD_PAIR, {**GOOD_PAIR, "meta": {"win": {"quality": "good"}, "lose": {"quality": 0.0}}}], "meta.win.quality"),
    ([{**GOOD_PAIR, "win": {"prompt": "no path"}}], "win"),
    ([], "no pairs"),
])
def test_bad_pair_file_into_train(tiny_qwen: Path, tmp_path: Path, capsys, content: object, where: str) -> None:
    pairs = tmp_path / "train.json"
    pairs.write_text(json.dumps(content))
    assert run_cli(*fast_args(tiny_qwen, tmp_path, tmp_path / "out")) == 2
    err = _error(capsys)
    assert str(pairs) in err and where in err, err


def test_pair_file_that_is_not_json(tiny_qwen: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "train.json").write_text("[{\"win\": ")
    assert run_cli(*fast_args(tiny_qwen, tmp_path, tmp_path / "out")) == 2
    assert f"{tmp_path / 'train.json'}" in (err := _error(capsys)) and "not valid JSON" in err


def test_bad_files_into_evaluate(tmp_path: Path, capsys) -> None:
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"video_path": "/v/a.mp4", "score": 1.0}))  # an object, not a list
    assert run_cli("evaluate", "--scores", scores, "--output", tmp_path / "m.json") == 2
    assert str(scores) in _error(capsys)
    scores.write_text(json.dumps([{"video_path": "/v/a.mp4", "score": 1.0, "label": 1},
                                  {"video_path": "/v/b.mp4", "score": 0.0, "label": 0}]))
    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"win": {}, "lose": {}}))
    assert run_cli("evaluate", "--scores", scores, "--pairs", pairs, "--output", tmp_path / "m.json") == 2
    assert str(pairs) in _error(capsys)
    pairs.write_text(json.dumps([{"lose": GOOD_PAIR["lose"], "meta": GOOD_PAIR["meta"]}]))
    assert run_cli("evaluate", "--scores", scores, "--pairs", pairs, "--output", tmp_path / "m.json") == 2
    err = _error(capsys)
    assert str(pairs) in err and "win" in err, err
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("name, content, words", [
    ("object.json", json.dumps({"video_path": "a.mp4"}), "expected a JSON list"),
    ("prompt.json", json.dumps([{"video_path": "a.mp4", "prompt": 7}]), "field 'prompt'"),
    ("list_in_line.jsonl", json.dumps({"video_path": "a.mp4"}) + "\n[1, 2]\n", "row 2"),
    ("videos.xlsx", "video_path\na.mp4\n", "unsupported extension"),
    ("broken.json", "[{\"video_path\": ", "not valid JSON"),
])
def test_bad_inference_inputs(tmp_path: Path, capsys, name: str, content: str, words: str) -> None:
    model = tmp_path / "model"
    model.mkdir()  # never loaded: the input is checked first
    source = tmp_path / name
    source.write_text(content)
    output = tmp_path / "scores.json"
    assert run_cli("infer", "--model_name_or_path", model, "--input_file", source, "--output_file", output) == 2
    err = _error(capsys)
    assert str(source) in err and words in err, err
    assert not output.exists()


@pytest.mark.parametrize("yaml_text, field", [("batch_sise: 4\n", "batch_sise"), ("batch_size: four\n", "batch_size")])
def test_bad_inference_yaml(tmp_path: Path, capsys, yaml_text: str, field: str) -> None:
    config = tmp_path / "infer.yaml"
    config.write_text(yaml_text)
    source = tmp_path / "in.json"
    source.write_text(json.dumps([{"video_path": "a.mp4"}]))
    assert run_cli("infer", "--config", config, "--model_name_or_path", tmp_path, "--input_file", source,
                   "--output_file", tmp_path / "out.json") == 2
    err = _error(capsys)
    assert str(config) in err and field in err, err


def test_bad_frame_setting_in_inference_yaml_names_the_file(tiny_model_factory, tmp_path: Path, capsys) -> None:
    from solireward.models import RewardModel

    model = tmp_path / "model"
    RewardModel.from_backbone(tiny_model_factory("Qwen2-VL")).save_pretrained(model)
    config = tmp_path / "infer.yaml"
    config.write_text("num_frames: eight\n")
    source = tmp_path / "in.json"
    source.write_text(json.dumps([{"video_path": "a.mp4"}]))
    assert run_cli("infer", "--config", config, "--model_name_or_path", model, "--input_file", source,
                   "--output_file", tmp_path / "out.json") == 2
    err = _error(capsys)
    assert "num_frames" in err and str(config) in err, err
