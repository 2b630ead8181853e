"""`solireward tiny-model`: offline folders that load like real checkpoints, deterministically."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from solireward.models import FAMILIES
from solireward.models.backbones import decoder_layers, load_backbone, text_hidden_size
from tests.conftest import run_cli


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_tiny_model_loads_offline_like_a_checkpoint(model_type: str, tiny_model_factory, monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = tiny_model_factory(model_type)
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert size < 3_000_000, size
    model, processor, family = load_backbone(folder)  # family detected from config.json
    assert family.name == model_type
    assert len(decoder_layers(model, family)) == 4 and text_hidden_size(model) == 64
    n_params = sum(p.numel() for p in model.parameters())
    assert 100_000 < n_params < 500_000, n_params
    config = json.loads((folder / "config.json").read_text())
    if family.text_model_type:
        assert config["text_config"]["model_type"] == family.text_model_type
    tokenizer = processor.tokenizer
    for token in family.special_tokens:
        assert tokenizer.convert_tokens_to_ids(token) != tokenizer.unk_token_id
        assert len(tokenizer.encode(token, add_special_tokens=False)) == 1
    assert len(tokenizer.encode("good", add_special_tokens=False)) == 1


def test_tiny_model_is_deterministic_from_its_seed(tiny_model_factory, tmp_path) -> None:
    first = load_file(str(tiny_model_factory("InternVL3") / "model.safetensors"))
    assert run_cli("tiny-model", "--model_type", "InternVL3", "--output_dir", tmp_path / "same", "--seed", 0) == 0
    assert run_cli("tiny-model", "--model_type", "InternVL3", "--output_dir", tmp_path / "other", "--seed", 1) == 0
    same = load_file(str(tmp_path / "same" / "model.safetensors"))
    other = load_file(str(tmp_path / "other" / "model.safetensors"))
    assert first.keys() == same.keys()
    assert all(torch.equal(first[k], same[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    assert (tmp_path / "same" / "tokenizer.json").read_text() == (tmp_path / "other" / "tokenizer.json").read_text()


def test_tiny_model_sizes_are_flags(tmp_path) -> None:
    out = tmp_path / "wide"
    assert run_cli("tiny-model", "--model_type", "Qwen2-VL", "--output_dir", out, "--hidden_size", 32,
                   "--num_layers", 3, "--vision_layers", 1, "--image_size", 28) == 0
    model, _, family = load_backbone(out)
    assert len(decoder_layers(model, family)) == 3 and text_hidden_size(model) == 32
    assert model.config.vision_config.depth == 1


def test_tiny_model_rejects_bad_sizes(tmp_path, capsys) -> None:
    assert run_cli("tiny-model", "--model_type", "InternVL3", "--output_dir", tmp_path / "x", "--image_size", 50) == 2
    assert "image_size" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_tiny_model_rejects_unknown_family(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit):
        run_cli("tiny-model", "--model_type", "LLaVA", "--output_dir", tmp_path / "x")
    assert "LLaVA" in capsys.readouterr().err
