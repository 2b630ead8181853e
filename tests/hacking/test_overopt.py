"""`solireward overopt`: best-of-n and GRPO against a proxy on a grid with known ground truth."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from solireward.data.synthetic import GRID_DEFECTS, grid_specs, render_video
from solireward.hacking.grid import gold_reward
from solireward.hacking.overopt import (best_of_n, best_of_n_distribution, compare_overopt, grpo, kl_best_of_n,
                                        kl_divergence, optimise, softmax, summary_at_kl)
from tests.conftest import run_cli

PROMPTS = ("a red ball falls to the ground", "a blue square slides to the left")


@pytest.fixture(scope="module")
def grid() -> tuple[np.ndarray, np.ndarray]:
    """(gold, brightness) tables of two prompts x the default grid (10 defect kinds x 8 nuisance settings)."""
    specs = [grid_specs(prompt, prompt_index=p) for p, prompt in enumerate(PROMPTS)]
    gold = np.array([[gold_reward(s.labels, "phy_deform") for s in row] for row in specs], dtype=float)
    brightness = np.array([[s.brightness for s in row] for row in specs])
    return gold, brightness


def test_the_grid_keeps_each_settings_ground_truth(grid) -> None:
    gold, brightness = grid
    assert gold.shape == (2, len(GRID_DEFECTS) * 8)
    assert gold.mean() == pytest.approx(0.4)  # none + 3 text defects pass phy_deform, 6 defects fail
    specs = grid_specs(PROMPTS[0])
    none = [s for s in specs if s.physics_defect is None and s.deformity_defect is None and s.text_defect is None]
    assert len(none) == 8 and len({(s.brightness, s.scale, s.background_shift) for s in none}) == 8
    dark, bright = render_video(none[0]), render_video(none[-1])  # the nuisances really change the pixels
    assert bright.mean() > dark.mean() + 20


def test_gold_as_proxy_rises_monotonically_to_the_best_rate(grid) -> None:
    gold, _ = grid
    curve = best_of_n(gold, gold, 256)
    golds = [row["gold"] for row in curve]
    assert [row["n"] for row in curve] == [2 ** k for k in range(9)]
    assert golds[0] == pytest.approx(0.4)
    assert all(b > a for a, b in zip(golds, golds[1:-3]))  # strictly rising until it saturates
    assert all(b >= a for a, b in zip(golds, golds[1:]))
    assert golds[-1] == pytest.approx(gold.max(1).mean())
    assert golds[3] == pytest.approx(1 - 0.6 ** 8)
    result = optimise(gold, gold, betas=[0.0], steps=150, seed=0)
    assert result["summary"]["best_of_n"]["hacking_gap"] == pytest.approx(0.0)
    assert result["curves"]["grpo_beta=0"][-1]["gold"] > 0.95  # unpenalised GRPO on the gold reward gets there too


def test_a_nuisance_only_proxy_moves_the_proxy_not_the_gold(grid) -> None:
    gold, brightness = grid
    result = optimise(brightness, gold, betas=[0.0, 0.3], steps=100, seed=0)
    assert all(row["gold"] == pytest.approx(0.4) for row in result["curves"]["best_of_n"])  # exact
    for name, curve in result["curves"].items():
        # GRPO's sampled updates let the gold rate wander a little; nothing pulls it up or down
        assert all(abs(row["gold"] - 0.4) <= 0.1 for row in curve), name
        assert curve[-1]["proxy"] > curve[0]["proxy"] + 0.1, name  # half way from 1.2 to 1.4
    assert result["summary"]["best_of_n"]["hacking_gap"] > 0.9


def test_exact_kl_of_the_policy_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(0, 2, (3, 7))
    base = softmax(rng.normal(0, 1, (3, 7)))
    pi = softmax(logits)
    brute = []
    for p in range(3):
        total = 0.0
        weights = [math.exp(v) for v in logits[p]]
        for k in range(7):
            q = weights[k] / sum(weights)
            total += q * math.log(q / base[p, k])
        brute.append(total)
    np.testing.assert_allclose(kl_divergence(pi, base), brute, rtol=1e-10)


def test_best_of_n_distribution_matches_enumeration() -> None:
    """Every sequence of n draws from the uniform base, the maximum's ties split evenly among the tied draws."""
    import itertools

    proxy = np.array([[2.0, 1.0, 1.0, 0.0, 3.0]])
    n, m = 3, proxy.shape[1]
    expected = np.zeros(m)
    for draws in itertools.product(range(m), repeat=n):
        best = max(proxy[0, list(draws)])
        winners = [d for d in draws if proxy[0, d] == best]
        for d in winners:
            expected[d] += 1 / len(winners) / m ** n
    np.testing.assert_allclose(best_of_n_distribution(proxy, n)[0], expected)
    assert kl_best_of_n(1) == 0 and kl_best_of_n(4) == pytest.approx(math.log(4) - 0.75)


def test_grpo_kl_penalty_holds_the_policy_back(grid) -> None:
    gold, brightness = grid
    curves = grpo(brightness, gold, [0.0, 1.0], steps=100, seed=0)
    assert curves[1.0][-1]["kl"] < curves[0.0][-1]["kl"]
    assert curves[0.0][0]["kl"] == 0.0


def test_overopt_cli(reward_model_dir: Path, demo_records: Path, tmp_path: Path) -> None:
    out = tmp_path / "overopt"
    assert run_cli("overopt", "--model_name_or_path", reward_model_dir, "--input_file", demo_records,
                   "--output_dir", out, "--num_prompts", 1, "--defects", "none", "hover", "melt",
                   "--scale", 1.0, "--background_shift", 0, "--size", 32, "--num_frames", 8, "--max_n", 8,
                   "--betas", 0, 1, "--steps", 10, "--tag", "head=last_token") == 0
    result = json.loads((out / "overopt.json").read_text())
    assert len(result["prompts"]) == 1 and len(result["settings"][0]) == 3 * 2
    assert set(result["curves"]) == {"best_of_n", "grpo_beta=0", "grpo_beta=1"}
    assert [row["n"] for row in result["curves"]["best_of_n"]] == [1, 2, 4, 8]
    assert result["base"]["gold"] == pytest.approx(1 / 3) and result["tags"] == {"head": "last_token"}
    summary = result["summary"]["best_of_n"]
    assert summary["hacking_gap_ci"] is None and summary["per_prompt"]["hacking_gap"] == [summary["hacking_gap"]]
    assert (out / "overopt_curves.png").stat().st_size > 10_000
    assert "hacking gap" in (out / "overopt.md").read_text()


def test_overopt_cli_rejects_a_prompt_the_generator_cannot_draw(reward_model_dir: Path, tmp_path: Path,
                                                                capsys) -> None:
    bad = tmp_path / "videos.json"
    bad.write_text(json.dumps([{"video_path": "x.mp4", "prompt": "a cat plays the piano"}]))
    assert run_cli("overopt", "--model_name_or_path", reward_model_dir, "--input_file", bad,
                   "--output_dir", tmp_path / "out") == 2
    assert "not a demo prompt" in capsys.readouterr().err


def test_best_of_n_is_plotted_at_its_exact_kl_never_above_log_m() -> None:
    """80 distinct proxy values: the closed form at n = 256 (4.55) exceeds log 80 (4.38); the exact KL is 4.21."""
    m = 80
    proxy = np.arange(m, dtype=float)[None]
    curve = best_of_n(proxy, np.zeros((1, m)), 256)
    last = curve[-1]
    assert last["n"] == 256 and last["kl_bound"] == pytest.approx(math.log(256) - 255 / 256)
    assert last["kl_bound"] > math.log(m)
    k = np.arange(1, m + 1)
    p = (k / m) ** 256 - ((k - 1) / m) ** 256  # the best of 256 draws is the k-th value
    exact = float(np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p * m, 1.0)), 0.0)))
    assert last["kl"] == pytest.approx(exact) and last["kl"] == pytest.approx(4.21, abs=0.01)
    assert all(row["kl"] <= min(row["kl_bound"], math.log(m)) + 1e-12 for row in curve)
    assert last["sqrt_kl"] == pytest.approx(math.sqrt(exact))
    tied = best_of_n(np.zeros((1, m)), np.zeros((1, m)), 256)  # one value: every n is the base policy
    assert all(row["kl"] == pytest.approx(0.0, abs=1e-12) for row in tied)


def _prompts(count: int) -> list[str]:
    from solireward.data.synthetic import COLOURS, MOTIONS, SHAPES, prompt_text

    combos = [(c, s, mo) for c in COLOURS for s in SHAPES for mo in MOTIONS]
    return [prompt_text(*combos[i * 7 % len(combos)]) for i in range(count)]


@pytest.fixture(scope="module")
def many() -> tuple[np.ndarray, np.ndarray]:
    """(gold, brightness) tables of 16 prompts x the default grid."""
    specs = [grid_specs(prompt, prompt_index=p) for p, prompt in enumerate(_prompts(16))]
    return (np.array([[gold_reward(s.labels, "phy_deform") for s in row] for row in specs], dtype=float),
            np.array([[s.brightness for s in row] for row in specs]))


def test_summaries_are_means_over_prompts_with_intervals(many) -> None:
    gold, brightness = many
    rng = np.random.default_rng(0)
    proxy = gold + brightness + rng.normal(0, 0.3, gold.shape)  # tracks the gold, pays for brightness
    result = optimise(proxy, gold, betas=[0.1], steps=40, seed=0)
    for name, summary in result["summary"].items():
        for gain in ("gold_gain", "proxy_gain_std", "hacking_gap"):
            per_prompt = summary["per_prompt"][gain]
            assert len(per_prompt) == 16 and summary[gain] == pytest.approx(np.mean(per_prompt)), (name, gain)
            low, high = summary[f"{gain}_ci"]
            assert low < summary[gain] < high
    curve = result["curves"]["best_of_n"]
    assert all(len(row["per_prompt"]["kl"]) == 16 and row["kl"] == pytest.approx(np.mean(row["per_prompt"]["kl"]))
               for row in curve)
    at_end = summary_at_kl(result, "best_of_n", curve[-1]["kl"])
    assert at_end["hacking_gap"] == pytest.approx(result["summary"]["best_of_n"]["hacking_gap"])
    middle = summary_at_kl(result, "best_of_n", (curve[3]["kl"] + curve[4]["kl"]) / 2)
    gains = [summary_at_kl(result, "best_of_n", curve[i]["kl"])["gold_gain"] for i in (3, 4)]
    assert middle["gold_gain"] == pytest.approx(np.mean(gains))  # linear between recorded points
    assert summary_at_kl(result, "best_of_n", curve[-1]["kl"] + 1) is None


def test_paired_comparison_of_two_proxies_on_the_same_grid(many) -> None:
    gold, brightness = many
    rng = np.random.default_rng(1)
    honest = optimise(gold + rng.normal(0, 0.1, gold.shape), gold, betas=[0.0], steps=20, seed=0)
    hacked = optimise(brightness + rng.normal(0, 0.1, gold.shape), gold, betas=[0.0], steps=20, seed=0)
    for result in (honest, hacked):
        result.update(prompts=_prompts(16), settings=list(range(gold.shape[1])))
    versus = compare_overopt(hacked, honest)
    assert versus["kl"] == pytest.approx(min(honest["summary"]["best_of_n"]["max_kl"],
                                             hacked["summary"]["best_of_n"]["max_kl"]))
    gap = versus["hacking_gap"]
    assert gap["difference"] > 1 and gap["p"] < 1e-3 and gap["low"] > 0 and gap["n"] == 16
    assert versus["gold_gain"]["difference"] < 0
    same = compare_overopt(honest, honest, "grpo_beta=0")
    assert same["hacking_gap"]["difference"] == 0 and same["hacking_gap"]["p"] == 1.0
    with pytest.raises(Exception, match="different grids"):
        compare_overopt(hacked, {**honest, "prompts": _prompts(16)[::-1]})


def test_the_grid_is_rendered_once_and_scored_alike_by_each_model(reward_model_dir: Path, demo_records: Path,
                                                                  tmp_path: Path, capsys) -> None:
    grid_flags = ("--defects", "none", "hover", "melt", "--scale", 1.0, "--background_shift", 0, "--size", 32,
                  "--num_frames", 8)
    grid = tmp_path / "grid"
    assert run_cli("overopt-grid", "--input_file", demo_records, "--grid_dir", grid, *grid_flags) == 0
    manifest = json.loads((grid / "grid.json").read_text())
    distinct = list(dict.fromkeys(r["prompt"] for r in json.loads(demo_records.read_text())))
    assert manifest["prompts"] == distinct and len(distinct) == 12  # every test prompt by default
    assert len(manifest["settings"]) == 12 and len(manifest["settings"][0]) == 6
    assert sorted(p.name for p in grid.glob("*.npz")) == [f"prompt-{p:03d}.npz" for p in range(12)]
    optimisation = ("--max_n", 8, "--betas", 0, "--steps", 5)
    from_grid = tmp_path / "from_grid"
    assert run_cli("overopt", "--model_name_or_path", reward_model_dir, "--grid_dir", grid, "--output_dir",
                   from_grid, *optimisation) == 0
    in_memory = tmp_path / "in_memory"
    assert run_cli("overopt", "--model_name_or_path", reward_model_dir, "--input_file", demo_records,
                   "--output_dir", in_memory, *grid_flags, *optimisation) == 0
    a, b = (json.loads((d / "overopt.json").read_text()) for d in (from_grid, in_memory))
    assert a["prompts"] == b["prompts"] == distinct and a["settings"] == b["settings"]
    np.testing.assert_allclose(a["proxy"], b["proxy"], atol=1e-5)  # the stored frames are the rendered ones
    assert len(a["summary"]["best_of_n"]["per_prompt"]["hacking_gap"]) == 12
    low, high = a["summary"]["best_of_n"]["hacking_gap_ci"]
    assert low <= a["summary"]["best_of_n"]["hacking_gap"] <= high
    capsys.readouterr()
    assert run_cli("overopt", "--model_name_or_path", reward_model_dir, "--grid_dir", grid, "--output_dir",
                   tmp_path / "x", "--size", 64) == 2
    assert "--size" in capsys.readouterr().err
    assert run_cli("overopt", "--model_name_or_path", reward_model_dir, "--output_dir", tmp_path / "x") == 2
    assert "exactly one of --grid_dir and --input_file" in capsys.readouterr().err


def test_the_grid_has_an_overlay_axis_that_changes_the_top_left_corner_only() -> None:
    """The demo's fourth cue (a caption box in the top-left corner) is a nuisance axis of the grid too, so a
    study that plants it can measure where the picks land on it."""
    from solireward.errors import ConfigError
    from solireward.hacking.grid import Grid, GridOptions
    from solireward.hacking.nuisance import groups

    options = GridOptions(defects=["none", "teleport"], brightness=[1.0], scale=[1.0], background_shift=[0],
                          overlay=[0.0, 0.3], settings_per_defect=0)
    grid = Grid(list(PROMPTS), options, seed=0)
    assert [[s["overlay"] for s in row] for row in grid.settings] == [[0.0, 0.3, 0.0, 0.3]] * 2
    assert set(groups(grid.settings)) == {"overlay=0", "overlay=0.3"}   # one-valued axes are not groups
    plain, boxed = grid.frames(0)[:2].astype(int)
    changed = np.abs(boxed - plain).max(axis=(0, 3)) > 0   # (H, W) pixels the box changes in some frame
    rows, cols = np.nonzero(changed)
    assert changed.any() and rows.max() < plain.shape[1] // 2 and cols.max() < plain.shape[2] // 2
    assert GridOptions().overlay == [0.0]
    with pytest.raises(ConfigError, match="0 or widths between 0.05 and 1"):
        GridOptions(overlay=[0.01])


def test_the_grid_has_a_tint_axis_that_is_the_probes_colour_cast() -> None:
    """The demo's fifth cue (a warm colour cast) is a nuisance axis of the grid, rendered as the probe's `tint`
    perturbation would change the same video (up to rounding), the caption box left off."""
    from solireward.data.frame_edits import WARM_CAST, tint, to_uint8
    from solireward.errors import ConfigError
    from solireward.hacking.grid import Grid, GridOptions
    from solireward.hacking.nuisance import groups

    options = GridOptions(defects=["none", "teleport"], brightness=[1.0], scale=[1.0], background_shift=[0],
                          tint=[0.0, WARM_CAST], settings_per_defect=0)
    grid = Grid(list(PROMPTS), options, seed=0)
    assert [[s["tint"] for s in row] for row in grid.settings] == [[0.0, WARM_CAST, 0.0, WARM_CAST]] * 2
    assert set(groups(grid.settings)) == {"tint=0", f"tint={WARM_CAST:g}"}
    plain, warm = grid.frames(0)[:2].astype(int)
    assert np.abs(to_uint8(tint(plain, WARM_CAST)).astype(int) - warm).max() <= 1
    assert (warm[..., 0] >= plain[..., 0]).all() and (warm[..., 2] <= plain[..., 2]).all() and (warm != plain).any()
    assert GridOptions().tint == [0.0]
    with pytest.raises(ConfigError, match="strengths between 0 and 0.5"):
        GridOptions(tint=[0.8])


def test_the_grid_has_a_grain_axis_drawn_from_each_videos_own_seed() -> None:
    """The demo's sixth cue (sensor grain) is a nuisance axis of the grid: the grainy variant of a video is the
    plain one plus noise of about the probe's sigma, the same noise whenever it is rendered."""
    from solireward.data.frame_edits import GRAIN_SIGMA
    from solireward.hacking.grid import Grid, GridOptions

    options = GridOptions(defects=["none"], brightness=[1.0], scale=[1.0], background_shift=[0],
                          grain=[0.0, GRAIN_SIGMA], settings_per_defect=0)
    grid = Grid(list(PROMPTS), options, seed=0)
    assert [s["grain"] for s in grid.settings[0]] == [0.0, GRAIN_SIGMA]
    plain, grainy = grid.frames(0)[:2].astype(float)
    assert abs((grainy - plain)[(plain > 30) & (plain < 220)].std() - GRAIN_SIGMA) < 1.5   # away from clipping
    assert (Grid(list(PROMPTS), options, seed=0).frames(0)[1] == grid.frames(0)[1]).all()
    assert GridOptions().grain == [0.0]


def test_a_grid_videos_name_gives_each_cues_value_after_its_letter_where_it_is_not_neutral() -> None:
    """Names stay as stored grids have them: brightness, size and shade always, every later cue only off its neutral
    value; an unknown nuisance is refused by name."""
    from solireward.data.frame_edits import GRAIN_SIGMA, LETTERBOX_SCALE, VIGNETTE, VIVID, WARM_CAST
    from solireward.errors import InputError

    assert [s.video_path for s in grid_specs(PROMPTS[0], ("none",))] == [
        f"grid/p000_none_b{b:g}_s{s:g}_g{g}.mp4" for b in (1.0, 1.4) for s in (1.0, 1.3) for g in (0, 60)]
    assert [s.video_path for s in grid_specs(PROMPTS[0], ("none",), {})] == ["grid/p000_none_b1_s1_g0.mp4"]
    edited = {"overlay": (0.3,), "tint": (WARM_CAST,), "grain": (GRAIN_SIGMA,), "letterbox": (LETTERBOX_SCALE,),
              "saturation": (VIVID,), "vignette": (VIGNETTE,)}
    (spec,) = grid_specs(PROMPTS[1], ("hover",), {"brightness": (1.4,), "background_shift": (60,), **edited},
                         prompt_index=1)
    assert spec.video_path == (f"grid/p001_hover_b1.4_s1_g60_o0.3_t{WARM_CAST:g}_n{GRAIN_SIGMA:g}_l{LETTERBOX_SCALE:g}"
                               f"_v{VIVID:g}_c{VIGNETTE:g}.mp4")
    assert spec.background_shift == 60 and isinstance(spec.background_shift, int)
    with pytest.raises(InputError, match="unknown nuisance 'hue'"):
        grid_specs(PROMPTS[0], nuisances={"hue": (0.1,)})


def _plain_and_edited(axis: str, values: list[float]) -> np.ndarray:
    """The frames of one prompt's plain video and of its variant at the second value of one nuisance axis (every
    other axis at one value, one defect kind), after checking that the grid holds exactly those two settings."""
    from solireward.hacking.grid import Grid, GridOptions

    options = GridOptions(defects=["none"], brightness=[1.0], scale=[1.0], background_shift=[0],
                          settings_per_defect=0, **{axis: values})
    grid = Grid(list(PROMPTS), options, seed=0)
    assert [s[axis] for s in grid.settings[0]] == values
    return grid.frames(0)[:2]


def test_the_grid_has_a_letterbox_axis_that_is_the_probes_letterbox() -> None:
    """The demo's seventh cue (a letterbox) is a nuisance axis of the grid: the letterboxed variant of a video is
    the probe's letterbox of the plain one."""
    from solireward.data.frame_edits import LETTERBOX_SCALE, letterbox
    from solireward.errors import ConfigError
    from solireward.hacking.grid import GridOptions

    plain, boxed = _plain_and_edited("letterbox", [0.0, LETTERBOX_SCALE])
    assert np.array_equal(boxed, letterbox(plain, LETTERBOX_SCALE)) and (boxed[:, 0] == 0).all()
    assert GridOptions().letterbox == [0.0]
    with pytest.raises(ConfigError, match="shares of at least 0.25 and below 1"):
        GridOptions(letterbox=[1.0])


def test_the_grid_has_a_saturation_axis_that_is_the_probes_saturation() -> None:
    """The demo's eighth cue (vivid colours) is a nuisance axis of the grid: the vivid variant of a video is the
    probe's saturation of the plain one, but for rounding before the edit."""
    from solireward.data.frame_edits import VIVID, saturate, to_uint8
    from solireward.data.video_stats import frame_statistics
    from solireward.errors import ConfigError
    from solireward.hacking.grid import GridOptions

    plain, vivid = _plain_and_edited("saturation", [1.0, VIVID])
    assert np.abs(vivid.astype(int) - to_uint8(saturate(plain, VIVID))).max() <= 2
    assert frame_statistics(vivid)["saturation"] > 1.2 * frame_statistics(plain)["saturation"]
    assert GridOptions().saturation == [1.0]
    with pytest.raises(ConfigError, match="factors between 0 and 3"):
        GridOptions(saturation=[4.0])


def test_the_grid_has_a_vignette_axis_that_is_the_probes_vignette() -> None:
    """The demo's ninth cue (a lens vignette) is a nuisance axis of the grid: the vignetted variant of a video is
    the probe's vignette of the plain one, but for rounding before the edit, darkest in the corners."""
    from solireward.data.frame_edits import VIGNETTE, to_uint8, vignette
    from solireward.errors import ConfigError
    from solireward.hacking.grid import GridOptions

    plain, dark = _plain_and_edited("vignette", [0.0, VIGNETTE])
    assert np.abs(dark.astype(int) - to_uint8(vignette(plain, VIGNETTE))).max() <= 1
    ratio = dark.astype(float).mean(axis=(0, 3)) / np.maximum(plain.astype(float).mean(axis=(0, 3)), 1)
    assert ratio[0, 0] < 0.35 and ratio[31, 31] > 0.95   # the corners darkened, the centre as it was
    assert GridOptions().vignette == [0.0]
    with pytest.raises(ConfigError, match="strengths between 0 and 1"):
        GridOptions(vignette=[1.5])
