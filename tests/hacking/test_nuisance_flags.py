"""A real tiny reward model whose head prefers large objects is flagged by the probe, by the grid's pick shares and in
the report; the flags' rules on their own."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from solireward.data.synthetic import COLOURS, MOTIONS, SHAPES, DemoDataConfig, grid_specs, plan_videos, render_video
from solireward.data.synthetic.plan import prompt_text
from solireward.hacking.grid import NUISANCE_AXES, Grid, GridOptions
from solireward.hacking.intervals import beyond
from solireward.hacking.perturbations import PERTURBATIONS, Clip
from tests.conftest import run_cli


def test_beyond_needs_the_whole_interval_past_the_threshold() -> None:
    assert beyond(0.3, 0.9, 0.25) == 1 and beyond(-0.9, -0.3, 0.25) == -1
    assert beyond(0.2, 0.9, 0.25) == 0 and beyond(None, None, 0.25) == 0


def test_nuisance_perturbations_change_the_picture_and_leave_a_grey_one_to_not_tested() -> None:
    frames = render_video(grid_specs("a red ball falls to the ground", ("none",), {})[0], 64, 16)
    clip, grey = Clip(frames, 8.0, None), Clip(np.full((16, 64, 64, 3), 120, np.uint8), 8.0, None)
    short = Clip(frames[:3], 8.0, None)
    rng = np.random.default_rng(0)
    assert len(PERTURBATIONS) == 28  # docs/GUIDE.md: "default: all 28"
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


def test_the_fractional_grid_keeps_every_axis_balanced_in_each_kind(tmp_path: Path, capsys) -> None:
    grid = Grid(_prompts(6), GridOptions(), seed=0)
    kinds = [s["defect"] for s in grid.settings[0]]
    assert len(kinds) == 20 and len(set(kinds)) == 10
    combinations = set()
    for row in grid.settings:
        assert [s["defect"] for s in row] == kinds  # a column is one defect kind for every prompt
        for axis in ("brightness", "scale", "background_shift"):
            for kind in set(kinds):
                assert len({s[axis] for s in row if s["defect"] == kind}) == 2  # both values in every kind
        combinations.add(tuple((s["defect"], s["brightness"], s["scale"]) for s in row))
    assert len(combinations) > 1  # which kind gets which combination changes with the prompt
    assert len(Grid(_prompts(1), GridOptions(settings_per_defect=0), seed=0).settings[0]) == 80  # the full product
    assert len(Grid(_prompts(1), GridOptions(settings_per_defect=5), seed=0).settings[0]) == 20  # 2 values: 2 each
    assert len(Grid(_prompts(1), GridOptions(brightness=[1.0], scale=[1.0], background_shift=[0]),
                    seed=0).settings[0]) == 10  # one value per axis: one setting per kind
    assert run_cli("overopt-grid", "--input_file", tmp_path / "x.json", "--grid_dir", tmp_path / "g",
                   "--settings_per_defect", -1) == 2
    assert "settings_per_defect" in capsys.readouterr().err


def test_no_two_axes_take_their_values_together_in_a_grid_of_every_axis() -> None:
    """With more combinations of offsets than defect kinds (9 axes of 2 values: 512 against 10), running through
    them in turn gave every kind the same offsets on the first three axes: every video was dim, small and plain or
    bright, large and shifted. Drawn per prompt, each pair of axes agrees in about half of the videos; with three
    axes (8 combinations) every prompt still shows all of them."""
    every = GridOptions(overlay=[0.0, 0.3], tint=[0.0, 0.25], grain=[0.0, 12.0], letterbox=[0.0, 0.75],
                        saturation=[1.0, 1.6], vignette=[0.0, 0.8])
    rows = Grid(_prompts(24), every, seed=0).settings
    axes = NUISANCE_AXES
    assert len(axes) == 9
    high = np.array([[s[axis] == getattr(every, axis)[1] for axis in axes] for row in rows for s in row])
    for a, b in itertools.combinations(range(len(axes)), 2):
        assert 0.35 < (high[:, a] == high[:, b]).mean() < 0.65, (axes[a], axes[b])
    for row in rows:
        for kind in {s["defect"] for s in row}:
            assert all(len({s[axis] for s in row if s["defect"] == kind}) == 2 for axis in axes)
    for row in Grid(_prompts(4), GridOptions(), seed=0).settings:
        assert len({(s["brightness"], s["scale"], s["background_shift"]) for s in row}) == 8


SIZE_GRID = {"defects": ["none", "hover", "melt"], "brightness": [1.0], "scale": [1.0, 1.3], "background_shift": [0],
             "num_frames": 8}


def _prompts(count: int) -> list[str]:
    return [prompt_text(*c) for c in list(itertools.product(COLOURS, SHAPES, MOTIONS))[::7][:count]]


@pytest.fixture(scope="module")
def large_object_model(tiny_model_factory, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2-VL with a mean-pooling head fitted to prefer large objects, rendered large or zoomed in (as
    a size-biased annotator's labels would teach it): its direction is the linear discriminant of the mean paired
    feature change from a video to its twin with larger objects, whitened by the features' shrunk covariance,
    over 8 demo videos of another seed than the probed ones, each with its zoom x1.3 (what the probe can do to
    any video), and the videos of the grid below at scale 1.0 and 1.3 (the generator's size)."""
    import torch

    from solireward.hacking.grid import Grid
    from solireward.models import RewardModel, RewardModelConfig

    torch.manual_seed(0)
    config = RewardModelConfig(reduce_sequence="mean",
                               sampling={"mode": "segments", "num_frames": 4, "height": 56, "width": 56})
    model = RewardModel.from_backbone(tiny_model_factory("Qwen2-VL"), config, torch_dtype="float32")
    zoom = next(p for p in PERTURBATIONS if p.name == "zoom_x1.3")
    videos = []  # (smaller, larger) pairs
    for spec in sum(plan_videos(DemoDataConfig(output_dir="unused", num_prompts=4, videos_per_prompt=2, seed=1)), []):
        small = render_video(spec)
        videos += [small, zoom.apply(Clip(small, 8.0, None), np.random.default_rng(0)).frames]
    grid = Grid(_prompts(4), GridOptions(**SIZE_GRID), seed=0)
    for p in range(len(grid.prompts)):
        assert [s["scale"] for s in grid.settings[p]] == [1.0, 1.3] * 3  # (small, large) pairs
        videos += list(grid.frames(p))
    pooled: list[torch.Tensor] = []
    hook = model.head.scorer.register_forward_pre_hook(lambda module, args: pooled.append(args[0].detach()))
    model.score_frames(videos, fps=8.0)
    hook.remove()
    features = torch.cat(pooled).double().numpy()
    small, large = features[0::2], features[1::2]
    covariance = np.cov(small.T)
    direction = np.linalg.solve(covariance + 0.1 * np.trace(covariance) / len(covariance) * np.eye(len(covariance)),
                                (large - small).mean(0))
    projected = small @ direction
    direction /= projected.std()
    first, last = model.head.scorer[0], model.head.scorer[2]
    with torch.no_grad():  # score = silu(w·h - c + 1000) - 1000 = w·h - c for |w·h - c| well under 1000
        first.weight.zero_(), first.bias.zero_(), last.weight.zero_()
        first.weight[0] = torch.from_numpy(direction).float()
        first.bias[0] = 1000.0 - float(projected.mean() / projected.std())
        last.weight[0, 0], last.bias[0] = 1.0, -1000.0
    out = tmp_path_factory.mktemp("large-object-model") / "model"
    model.save_pretrained(out)
    return out


@pytest.mark.slow
def test_a_model_that_prefers_large_objects_is_flagged_by_the_probe_the_grid_and_the_report(
        large_object_model: Path, demo_records: Path, tmp_path: Path) -> None:
    from tests.conftest import rendered_text
    from tests.test_reporting import _write_grid

    probe = tmp_path / "probe"
    assert run_cli("probe", "--model_name_or_path", large_object_model, "--input_file", demo_records, "--output_dir", probe,
                   "--max_videos", 12, "--perturbations", "zoom_x1.3", "reverse", "--tag", "head=mean") == 0
    rows = {row["name"]: row for row in json.loads((probe / "probe.json").read_text())["perturbations"]}
    assert rows["zoom_x1.3"]["shortcut"] and rows["zoom_x1.3"]["mean_change_std_ci"][0] > 0.25
    shortcuts = next(line for line in (probe / "probe.md").read_text().splitlines() if line.startswith("Shortcut"))
    assert "zoom_x1.3" in shortcuts

    grid = tmp_path / "grid"
    records = tmp_path / "prompts.json"
    records.write_text(json.dumps([{"video_path": "x.mp4", "prompt": p} for p in _prompts(4)]))
    flags = [f"--{key}" if i == 0 else value for key, values in SIZE_GRID.items()
             for i, value in enumerate([None, *(values if isinstance(values, list) else [values])])]
    assert run_cli("overopt-grid", "--input_file", records, "--grid_dir", grid, *flags) == 0
    overopt = tmp_path / "overopt"
    assert run_cli("overopt", "--model_name_or_path", large_object_model, "--grid_dir", grid, "--output_dir", overopt,
                   "--max_n", 16, "--betas", 0, "--steps", 20, "--tag", "head=mean") == 0
    shares = {(r["method"], r["group"]): r for r in
              json.loads((overopt / "overopt.json").read_text())["nuisance_shares"]["rows"]}
    picked = shares[("best_of_n n=16", "scale=1.3")]
    assert picked["flagged"] and picked["share"] > 0.9 and picked["base_share"] == 0.5
    assert not shares[("best_of_n n=1", "scale=1.3")]["flagged"]  # the base policy itself
    assert "**flagged**" in (overopt / "overopt.md").read_text()

    metrics, _ = _write_grid(tmp_path)
    report = tmp_path / "report"
    assert run_cli("report", "--metrics", *metrics, "--output_dir", report, "--probe", probe / "probe.json",
                   "--overopt", overopt / "overopt.json") == 0
    table = (report / "tables" / "overopt_nuisance_phy_deform.md").read_text()
    assert "| mean | scale=1.3 | 0.50 |" in table and "!**" in table
    assert "zoom_x1.3" in (report / "tables" / "stress_probe.md").read_text().split("\n")[4].split("|")[-2]
    shown = rendered_text(report / "summary.html")
    assert "probe heatmap" in shown and "where the picks land" in shown


def test_the_flags_claim_a_departure_at_most_one_time_in_forty_at_the_threshold() -> None:
    """At a true effect of exactly the threshold, the flag (a 95 % interval wholly beyond it) fires about 2.5 % of
    the time or less (one side; measured 0.7-3.0 % in 4000 draws), for normal and for skewed units, at the probe's
    24 videos and a grid's 12 prompts."""
    from solireward.hacking.intervals import mean_interval

    rng = np.random.default_rng(0)
    for n in (12, 24):
        for draw in (lambda size: rng.normal(0.0, 1.0, size), lambda size: rng.exponential(1.0, size) - 1.0):
            rate = np.mean([beyond(*(lambda i: (i["low"], i["high"]))(mean_interval(0.25 + draw(n))), 0.25) != 0
                            for _ in range(4000)])
            assert rate <= 0.035, (n, rate)
