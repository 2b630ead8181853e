"""A real tiny reward model whose head follows a nuisance is flagged by the probe, by the grid's pick shares and in
the report; the flags' rules on their own."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from solireward.data.synthetic import COLOURS, MOTIONS, SHAPES, grid_specs, render_video
from solireward.data.synthetic.plan import prompt_text
from solireward.hacking.intervals import beyond
from solireward.hacking.perturbations import PERTURBATIONS, Clip
from tests.conftest import run_cli


def test_beyond_needs_the_whole_interval_past_the_threshold() -> None:
    assert beyond(0.3, 0.9, 0.25) == 1 and beyond(-0.9, -0.3, 0.25) == -1
    assert beyond(0.2, 0.9, 0.25) == 0 and beyond(None, None, 0.25) == 0


def test_nuisance_perturbations_change_the_picture_and_leave_a_grey_one_to_not_tested() -> None:
    frames = render_video(grid_specs("a red ball falls to the ground", ("none",), (1.0,), (1.0,), (0,))[0], 64, 16)
    clip, grey = Clip(frames, 8.0, None), Clip(np.full((16, 64, 64, 3), 120, np.uint8), 8.0, None)
    short = Clip(frames[:3], 8.0, None)
    rng = np.random.default_rng(0)
    assert len(PERTURBATIONS) == 25  # docs/GUIDE.md: "default: all 25"
    for p in (p for p in PERTURBATIONS if p.apply):
        changed = p.apply(clip, rng).frames
        assert changed.shape != frames.shape or not np.array_equal(changed, frames), p.name
    for name in ("hue", "contrast", "sharpen", "zoom_x1.3", "pan"):  # nothing there to change
        p = next(p for p in PERTURBATIONS if p.name == name)
        assert np.array_equal(p.apply(grey, rng).frames, grey.frames), name
    for name in ("speed_x2", "speed_x0.5"):  # too short for a speed change
        p = next(p for p in PERTURBATIONS if p.name == name)
        assert np.array_equal(p.apply(short, rng).frames, short.frames), name
    zoomed = next(p for p in PERTURBATIONS if p.name == "zoom_x1.3").apply(clip, rng).frames
    red = np.array(COLOURS["red"])
    area = [(np.abs(f.astype(int) - red).sum(-1) < 60).sum() for f in (frames, zoomed)]
    assert area[1] > 1.4 * area[0]  # objects larger (1.3² ≈ 1.69)


def _prompts(count: int) -> list[str]:
    return [prompt_text(*c) for c in list(itertools.product(COLOURS, SHAPES, MOTIONS))[::5][:count]]


@pytest.fixture(scope="module")
def bright_model(tiny_model_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2-VL with a mean-pooling head set to the direction its features move in when a video is made
    brighter (the mean paired feature difference of 6 demo videos at gain 1.4 vs 1.0): it prefers bright videos."""
    import torch

    from solireward.models import RewardModel, RewardModelConfig

    torch.manual_seed(0)
    config = RewardModelConfig(reduce_sequence="mean",
                               sampling={"mode": "segments", "num_frames": 4, "height": 56, "width": 56})
    model = RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), config, torch_dtype="float32")
    videos = [render_video(s, 64, 16) for p, prompt in enumerate(_prompts(6))
              for s in grid_specs(prompt, ("none",), (1.0, 1.4), (1.0,), (0,), seed=3, prompt_index=p)]
    pooled: list[torch.Tensor] = []
    hook = model.head.scorer.register_forward_pre_hook(lambda module, args: pooled.append(args[0].detach()))
    model.score_frames(videos, fps=8.0)
    hook.remove()
    features = torch.cat(pooled).double()
    direction = (features[1::2] - features[0::2]).mean(0)
    first, last = model.head.scorer[0], model.head.scorer[2]
    with torch.no_grad():  # score = silu(k·u·h + 10) - 10 ≈ k·u·h, u the unit direction
        first.weight.zero_(), first.bias.zero_(), last.weight.zero_()
        first.weight[0] = (direction / direction.norm() ** 2).float()
        first.bias[0], last.weight[0, 0], last.bias[0] = 10.0, 1.0, -10.0
    out = tmp_path_factory.mktemp("bright-model") / "model"
    model.save_pretrained(out)
    return out


@pytest.mark.slow
def test_a_model_that_prefers_a_nuisance_is_flagged_by_the_probe_the_grid_and_the_report(
        bright_model: Path, demo_records: Path, tmp_path: Path) -> None:
    from tests.conftest import rendered_text
    from tests.test_reporting import _write_grid

    probe = tmp_path / "probe"
    assert run_cli("probe", "--model_name_or_path", bright_model, "--input_file", demo_records, "--output_dir", probe,
                   "--max_videos", 8, "--perturbations", "brightness", "frames_x2", "--tag", "head=mean") == 0
    rows = {row["name"]: row for row in json.loads((probe / "probe.json").read_text())["perturbations"]}
    assert rows["brightness"]["shortcut"] and rows["brightness"]["mean_change_std_ci"][0] > 0.25
    shortcuts = next(line for line in (probe / "probe.md").read_text().splitlines() if line.startswith("Shortcut"))
    assert "brightness" in shortcuts

    grid = tmp_path / "grid"
    records = tmp_path / "prompts.json"
    records.write_text(json.dumps([{"video_path": "x.mp4", "prompt": p} for p in _prompts(4)]))
    assert run_cli("overopt-grid", "--input_file", records, "--grid_dir", grid, "--defects", "none", "hover", "melt",
                   "--brightness", 1.0, 1.4, "--scale", 1.0, 1.3, "--background_shift", 0, "--size", 64,
                   "--num_frames", 8) == 0
    settings = json.loads((grid / "grid.json").read_text())["settings"]
    assert [len(row) for row in settings] == [6] * 4  # 3 kinds x 2 of the 4 nuisance combinations
    for row in settings:  # each kind at both brightnesses and both sizes
        for kind in ("none", "hover", "melt"):
            assert {(s["brightness"], s["scale"]) for s in row if s["defect"] == kind} in (
                {(1.0, 1.0), (1.4, 1.3)}, {(1.0, 1.3), (1.4, 1.0)})
    overopt = tmp_path / "overopt"
    assert run_cli("overopt", "--model_name_or_path", bright_model, "--grid_dir", grid, "--output_dir", overopt,
                   "--max_n", 16, "--betas", 0, "--steps", 20, "--tag", "head=mean") == 0
    shares = {(r["method"], r["group"]): r for r in
              json.loads((overopt / "overopt.json").read_text())["nuisance_shares"]["rows"]}
    picked = shares[("best_of_n n=16", "brightness=1.4")]
    assert picked["flagged"] and picked["share"] > 0.9 and picked["base_share"] == 0.5
    assert not shares[("best_of_n n=1", "brightness=1.4")]["flagged"]  # the base policy itself
    assert "**flagged**" in (overopt / "overopt.md").read_text()

    metrics, _ = _write_grid(tmp_path)
    report = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics, "--output_dir", report, "--probe", probe / "probe.json",
                   "--overopt", overopt / "overopt.json") == 0
    table = (report / "tables" / "overopt_nuisance_phy_deform.md").read_text()
    assert "| mean | brightness=1.4 | 0.50 |" in table and "!**" in table
    assert "brightness" in (report / "tables" / "stress_probe.md").read_text().split("\n")[4].split("|")[-2]
    shown = rendered_text(report / "summary.html")
    assert "probe heatmap" in shown and "where the picks land" in shown
