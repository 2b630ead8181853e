"""RewardModel on tiny backbones of every family: forward/backward, padding, save/load, options, errors."""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil

import numpy as np
import pytest
import torch

from solireward.errors import ConfigError, InputError
from solireward.models import FAMILIES, HEADS, RewardModel, RewardModelConfig
from solireward.models.backbones import get_module

PROMPTS = ["a cat", "a red ball bounces across the floor while a dog runs after it in the park"]


def _model(tiny_model_factory, model_type: str, head: str = "progressive_hierarchical_attention",
           task: str = "text_alignment", **kwargs) -> RewardModel:
    folder = tiny_model_factory(model_type)  # built (once) before seeding: building draws random numbers
    torch.manual_seed(0)
    return RewardModel.from_backbone(folder, RewardModelConfig(reduce_sequence=head, reward_task=task, **kwargs))


@pytest.mark.slow
@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_every_head_scores_and_trains(model_type: str, tiny_model_factory, video_frames) -> None:
    for head in HEADS:
        model = _model(tiny_model_factory, model_type, head).train()
        batch = model.collator()(video_frames, PROMPTS)
        scores = model(**batch)
        assert scores.shape == (2,) and scores.dtype == torch.float32, head
        assert torch.isfinite(scores).all(), head
        scores.sum().backward()
        head_grads = [p.grad for p in model.head.parameters()]
        assert all(g is not None and g.abs().sum() > 0 for g in head_grads), head
        layer0 = model.backbone.model.language_model.layers[0]
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in layer0.parameters()), head
        vision = get_module(model.backbone, model.family.vision_module_paths[0])
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in vision.parameters()), head
        if head == "good_token":
            assert model.backbone.lm_head.weight.grad[model.good_token_id].abs().sum() > 0


@pytest.mark.parametrize("model_type", list(FAMILIES))
@pytest.mark.parametrize("head", ["progressive_hierarchical_attention", "last_token"])
def test_padding_invariance(model_type: str, head: str, tiny_model_factory, video_frames) -> None:
    model = _model(tiny_model_factory, model_type, head).eval()
    with torch.no_grad():
        alone = model(**model.collator()(video_frames[:1], PROMPTS[:1]))
        for side in ("right", "left"):
            batch = model.collator(side)(video_frames, PROMPTS)
            assert batch["attention_mask"][0].sum() < batch["attention_mask"][1].sum()  # sample 0 is padded
            torch.testing.assert_close(model(**batch)[:1], alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_save_load_gives_identical_scores(model_type: str, tiny_model_factory, video_frames, tmp_path,
                                          monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = _model(tiny_model_factory, model_type, score_mean=0.5, score_std=2.0).eval()
    batch = model.collator()(video_frames, PROMPTS)
    with torch.no_grad():
        before = model(**batch)
    out = tmp_path / "rm"
    out.mkdir()
    (out / "stale.txt").write_text("replaced")  # an existing folder is replaced as a whole
    model.save_pretrained(out)
    assert {"head.safetensors", "solireward_config.json", "model.safetensors", "config.json",
            "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert not (out / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name != "rm"]  # no temporary folders left
    saved = json.loads((out / "solireward_config.json").read_text())
    assert saved["model_type"] == model_type and saved["hierarchical_query_attn_layers"] == [1, 2, 3, 4]
    assert saved["sampling"]["mode"] == "segments" and saved["sampling"]["num_frames"] == 8
    assert saved["question"] == 'Does the video match the prompt "{prompt}"?'
    loaded = RewardModel.from_pretrained(out).eval()
    with torch.no_grad():
        after = loaded(**loaded.collator()(video_frames, PROMPTS))
    assert torch.equal(before, after)
    assert loaded.normalise([1.5, 0.5]) == [0.5, 0.0]
    torch.testing.assert_close(loaded.normalise(after), (after - 0.5) / 2.0)


def test_collator_is_picklable_and_prompts_reach_the_text(tiny_model_factory, video_frames) -> None:
    model = _model(tiny_model_factory, "Qwen2-VL")
    collate = pickle.loads(pickle.dumps(model.collator()))
    batch = collate(video_frames, PROMPTS)
    reference = model.collator()(video_frames, PROMPTS)
    assert batch.keys() == reference.keys() and all(torch.equal(batch[k], reference[k]) for k in batch)
    assert {"mm_token_type_ids", "video_grid_thw", "pixel_values_videos"} <= batch.keys()
    assert batch["mm_token_type_ids"].shape == batch["input_ids"].shape
    text = model.processor.tokenizer.decode(batch["input_ids"][1][batch["attention_mask"][1].bool()])
    assert PROMPTS[1] in text and "<|video_pad|>" in text
    with pytest.raises(InputError, match="no prompt"):
        collate(video_frames[:1], [None])


def test_phy_deform_needs_no_prompt(tiny_model_factory, video_frames) -> None:
    model = _model(tiny_model_factory, "InternVL3", "last_token", task="phy_deform")
    batch = model.collator()(video_frames, None)
    text = model.processor.tokenizer.decode(batch["input_ids"][0])
    assert "physically plausible" in text and "Frame8:" in text
    assert model(**batch).shape == (2,)


def test_score_reads_mp4_files_with_the_stored_sampling(tiny_model_factory, mp4_videos) -> None:
    from solireward.data.video import FrameSampling, read_video_and_fps

    sampling = FrameSampling(num_frames=4)
    model = _model(tiny_model_factory, "Qwen2.5-VL", "mean", sampling=sampling.to_dict())
    scores = model.train().score(mp4_videos, PROMPTS, batch_size=1)
    assert len(scores) == 2 and all(np.isfinite(scores))
    assert model.training  # score() runs in eval mode and restores the mode
    read = [read_video_and_fps(p, sampling) for p in mp4_videos]
    assert [len(f) for f, _ in read] == [4, 4]
    collator = model.collator()
    with torch.no_grad():  # told the rate the 4 sampled frames stand for
        direct = model.eval()(**collator.pad([collator.encode(f, p, fps) for (f, fps), p in zip(read, PROMPTS)]))
    np.testing.assert_allclose(scores, direct.numpy(), atol=1e-5)


def test_lora_trains_adapters_only_and_saves_merged_weights(tiny_model_factory, video_frames, tmp_path) -> None:
    model = _model(tiny_model_factory, "InternVL3-5", "attention")
    model.apply_lora(r=4, alpha=8, dropout=0.0)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".lora_" in n or n.startswith("head.") for n in trainable)
    assert any("language_model.layers.3.mlp.down_proj.lora_A" in n for n in trainable)
    assert not any("vision_tower" in n for n in trainable)
    batch = model.collator()(video_frames, PROMPTS)
    model(**batch).sum().backward()
    with torch.no_grad():  # a training step's worth of change in the adapters
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.add_(0.05 * torch.randn_like(p))
    model.eval()
    with torch.no_grad():
        before = model(**batch)
    model.save_pretrained(tmp_path / "rm")
    loaded = RewardModel.from_pretrained(tmp_path / "rm").eval()
    assert not any(".lora_" in n for n, _ in loaded.named_parameters())
    with torch.no_grad():
        torch.testing.assert_close(loaded(**batch), before, atol=1e-5, rtol=0)
    base = _model(tiny_model_factory, "InternVL3-5", "attention").eval()
    with torch.no_grad():
        assert not torch.allclose(base(**batch), before)


def test_freeze_vision_tower_and_gradient_checkpointing(tiny_model_factory, video_frames) -> None:
    plain = _model(tiny_model_factory, "Qwen2-VL", "last_token").train()
    model = _model(tiny_model_factory, "Qwen2-VL", "last_token").train()
    model.freeze_vision_tower()
    model.gradient_checkpointing_enable()
    assert model.backbone.is_activation_checkpointing and not plain.backbone.is_activation_checkpointing
    batch = model.collator()(video_frames, PROMPTS)
    plain(**batch).sum().backward()
    model(**batch).sum().backward()
    assert all(p.grad is None for p in model.backbone.model.visual.parameters())
    for (name, p), q in zip(model.backbone.model.language_model.named_parameters(),
                            plain.backbone.model.language_model.parameters()):
        torch.testing.assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-4, msg=name)


def test_head_initialisation_follows_the_seed(tiny_model_factory) -> None:
    a, b = (_model(tiny_model_factory, "InternVL3") for _ in range(2))
    folder = tiny_model_factory("InternVL3")
    torch.manual_seed(1)
    c = RewardModel.from_backbone(folder, RewardModelConfig())
    assert all(torch.equal(x, y) for x, y in zip(a.head.parameters(), b.head.parameters()))
    assert not all(torch.equal(x, y) for x, y in zip(a.head.parameters(), c.head.parameters()))


def test_errors_name_what_is_wrong(tiny_model_factory, tmp_path) -> None:
    folder = tiny_model_factory("Qwen2-VL")
    with pytest.raises(InputError, match=r"out of range: the backbone has 4 decoder layers") as err:
        RewardModel.from_backbone(folder, RewardModelConfig(hierarchical_query_attn_layers=[2, 5]))
    assert err.value.field == "hierarchical_query_attn_layers"
    with pytest.raises(InputError, match="unknown head 'pooler'"):
        RewardModel.from_backbone(folder, RewardModelConfig(reduce_sequence="pooler"))
    with pytest.raises(InputError, match="unknown model_type 'LLaVA'"):
        RewardModel.from_backbone(folder, RewardModelConfig(model_type="LLaVA"))
    with pytest.raises(InputError, match="does not match the checkpoint, which is a Qwen2-VL model"):
        RewardModel.from_backbone(folder, RewardModelConfig(model_type="InternVL3"))
    with pytest.raises(InputError, match="no built-in question for reward task 'aesthetics'"):
        RewardModel.from_backbone(folder, RewardModelConfig(reward_task="aesthetics"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="config.json is missing") as err:
        RewardModel.from_backbone(empty)
    assert str(empty) in str(err.value)
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    shutil.copy(folder / "config.json", no_weights / "config.json")
    with pytest.raises(InputError, match="no safetensors weights") as err:
        RewardModel.from_backbone(no_weights)
    assert str(no_weights) in str(err.value)
    with pytest.raises(InputError, match="does not exist") as err:
        RewardModel.from_backbone(tmp_path / "missing")
    with pytest.raises(InputError, match="not a reward-model folder: solireward_config.json is missing"):
        RewardModel.from_pretrained(folder)
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "llava"}))
    (other / "model.safetensors").write_bytes(b"")
    with pytest.raises(InputError, match="unsupported model_type 'llava'") as err:
        RewardModel.from_backbone(other)
    assert "config.json" in str(err.value)


def test_bad_saved_config_is_named(tiny_model_factory, tmp_path) -> None:
    model = _model(tiny_model_factory, "Qwen2-VL", "mean")
    model.save_pretrained(tmp_path / "rm")
    config_file = tmp_path / "rm" / "solireward_config.json"
    values = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**values, "reduce_sequnce": "mean"}))
    with pytest.raises(ConfigError, match="reduce_sequnce"):
        RewardModel.from_pretrained(tmp_path / "rm")
    config_file.write_text(json.dumps({**values, "sampling": {**values["sampling"], "num_frames": 0}}))
    with pytest.raises(ConfigError, match="num_frames"):
        RewardModel.from_pretrained(tmp_path / "rm")


def test_bfloat16_backbone_keeps_a_float32_head(tiny_model_factory, video_frames) -> None:
    torch.manual_seed(0)
    model = RewardModel.from_backbone(tiny_model_factory("InternVL3"), RewardModelConfig(reward_task="text_alignment"),
                                      torch_dtype="bfloat16", attn_implementation="eager")
    assert model.backbone.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.head.parameters())
    scores = model(**model.collator()(video_frames, PROMPTS))
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()


def test_bad_dtype_and_attention_are_named(tiny_model_factory) -> None:
    folder = tiny_model_factory("InternVL3")
    with pytest.raises(InputError, match="'float8'") as err:
        RewardModel.from_backbone(folder, torch_dtype="float8")
    assert err.value.field == "torch_dtype"
    with pytest.raises(InputError, match="'flash'") as err:
        RewardModel.from_backbone(folder, attn_implementation="flash")
    assert err.value.field == "attn_implementation"


@pytest.mark.skipif(importlib.util.find_spec("flash_attn") is not None, reason="flash-attn is installed")
def test_flash_attention_without_the_package_is_a_clear_error(tiny_model_factory) -> None:
    with pytest.raises(InputError, match="flash-attn package"):
        RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), attn_implementation="flash_attention_2")


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_fps_sampling_reaches_the_processor(model_type: str, tiny_model_factory, video_frames) -> None:
    from solireward.data.video import FrameSampling

    model = _model(tiny_model_factory, model_type, "last_token",
                   sampling=FrameSampling(mode="fps", fps=4.0).to_dict())
    batch = model.collator()(video_frames, PROMPTS)
    if model_type == "Qwen2.5-VL":
        # temporal_patch_size 2 frames at 4 frames per second: each temporal patch spans half a second
        torch.testing.assert_close(batch["second_per_grid_ts"], torch.tensor([0.5, 0.5]))
    assert torch.isfinite(model(**batch)).all()
