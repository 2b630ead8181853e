"""In-process adapters (VideoAlign-style callable, verl compute_score, GRPO advantages) give the rewards
`solireward infer` and the server give; hostile paths are refused; `infer` survives a symlink loop in a folder."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from solireward.integrations import VideoReward, compute_score, grpo_advantages
from solireward.serving.batcher import ItemError
from tests.conftest import run_cli
from tests.serving.conftest import GOOD, WEIGHTS, all_frames

TOL = 1e-4


def test_videoalign_style_callable_matches_infer(reward_dirs, video_root: Path, expected: dict) -> None:
    reward = VideoReward({name: str(path) for name, path in reward_dirs.items()}, WEIGHTS)
    names = list(GOOD)
    out = reward([video_root / n for n in names], [GOOD[n][1] for n in names])
    for row, name in zip(out, names):
        assert set(row) == {"phys", "text", "reward"}  # calling it: `reward` where .reward() says `Overall`
        assert row["reward"] == pytest.approx(expected[name]["reward"], abs=TOL)
        for model in ("phys", "text"):
            assert row[model] == pytest.approx(expected[name]["scores"][model]["score_norm"], abs=TOL)


def test_videoalign_reward_runs_dancegrpo_style_code_unchanged(reward_dirs, video_root: Path, expected: dict) -> None:
    """DanceGRPO reads reward[0]['VQ'] and ['MQ'] inside a try that turns any error into -1.0: serve two models
    under those names and the same lines must see the checkpoints' normalised scores, never the -1.0."""
    inferencer = VideoReward({"VQ": str(reward_dirs["phys"]), "MQ": str(reward_dirs["text"])}, {"MQ": 0.5})
    absolute_path = str((video_root / "good_a.mp4").resolve())
    try:
        reward = inferencer.reward([absolute_path], [GOOD["good_a.mp4"][1]], use_norm=True)
        vq_reward, mq_reward = torch.tensor(reward[0]["VQ"]), torch.tensor(reward[0]["MQ"])
    except Exception:  # noqa: BLE001 - DanceGRPO's own fallback, which must not be taken
        vq_reward = mq_reward = torch.tensor(-1.0)
    scores = expected["good_a.mp4"]["scores"]
    assert vq_reward.item() == pytest.approx(scores["phys"]["score_norm"], abs=TOL)
    assert mq_reward.item() == pytest.approx(scores["text"]["score_norm"], abs=TOL)
    assert set(reward[0]) == {"VQ", "MQ", "Overall"}
    assert reward[0]["Overall"] == pytest.approx(expected["good_a.mp4"]["reward"], abs=TOL)
    raw = inferencer.reward([absolute_path], [GOOD["good_a.mp4"][1]], use_norm=False)[0]
    assert raw["VQ"] == pytest.approx(scores["phys"]["score"], abs=TOL)
    assert raw["Overall"] == pytest.approx(scores["phys"]["score"] + 0.5 * scores["text"]["score"], abs=TOL)


def test_videoalign_reward_sampling_overrides(reward_dirs, video_root: Path) -> None:
    reward = VideoReward({"phys": str(reward_dirs["phys"])})
    path = [str(video_root / "good_a.mp4")]
    default = reward.reward(path, ["a"])[0]["phys"]
    assert reward.reward(path, ["a"], num_frames=4)[0]["phys"] == pytest.approx(default, abs=TOL)  # the checkpoint's
    assert reward.reward(path, ["a"], num_frames=2)[0]["phys"] != pytest.approx(default, abs=TOL)
    assert reward.reward(path, ["a"], fps=2.0)[0]["phys"] != pytest.approx(default, abs=TOL)
    with pytest.raises(ValueError, match="fps and num_frames"):
        reward.reward(path, ["a"], fps=2.0, num_frames=4)


def test_verl_compute_score_finds_the_video_in_the_decoded_response(reward_dirs, video_root: Path,
                                                                   expected: dict) -> None:
    from solireward.errors import InputError

    kwargs = {"models": [f"{n}={p}" for n, p in reward_dirs.items()], "weights": WEIGHTS, "video_root": str(video_root)}
    response = "I generated the clip you asked for; it is at good_c.mp4."
    result = compute_score(data_source="video_gen", solution_str=response, ground_truth=None,
                           extra_info={"prompt": GOOD["good_c.mp4"][1], "num_turns": None}, **kwargs)
    assert result["score"] == pytest.approx(expected["good_c.mp4"]["reward"], abs=TOL)
    assert set(result) == {"score", "phys", "text"}
    with pytest.raises(InputError, match="solution_str.*no word of the text names a video file under --video_root"):
        compute_score(data_source="video_gen", solution_str="see ../secret.mp4", ground_truth=None,
                      extra_info={}, **kwargs)


def test_verl_compute_score_takes_float_frames(reward_dirs, video_root: Path, expected: dict) -> None:
    frames, fps = all_frames(video_root / "good_a.mp4")
    video = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255  # (T, C, H, W) in [0, 1]
    result = compute_score("video_gen", video, None, {"fps": fps, "prompt": GOOD["good_a.mp4"][1]},
                           models=[f"{n}={p}" for n, p in reward_dirs.items()], weights=WEIGHTS)
    assert result["score"] == pytest.approx(expected["good_a.mp4"]["reward"], abs=TOL)
    assert result["text"] == pytest.approx(expected["good_a.mp4"]["scores"]["text"]["score_norm"], abs=TOL)


def test_grpo_advantages_are_the_evaluation_ones_with_zero_for_no_signal() -> None:
    from solireward.evaluation import group_advantages

    rewards = np.array([1.0, 2.0, 3.0, 5.0, 5.0, 7.0])
    groups = np.array(["a", "a", "a", "b", "b", "c"])
    advantages = grpo_advantages(rewards, groups)
    reference, _, _ = group_advantages(rewards, groups)
    np.testing.assert_allclose(advantages[:3], reference[:3])
    np.testing.assert_allclose(advantages[:3], (rewards[:3] - 2.0) / np.std(rewards[:3]))
    assert advantages[3:].tolist() == [0.0, 0.0, 0.0]  # equal rewards; a group of one
    with pytest.raises(ValueError, match="one group per reward"):
        grpo_advantages(rewards, groups[:2])


@pytest.mark.parametrize("path", ["../secret.mp4", "escape.mp4", "sub/up/secret.mp4", "/etc/hostname",
                                  "sub/../../secret.mp4", "loop.mp4"])
def test_checked_path_refuses_what_leaves_the_root(video_root: Path, path: str) -> None:
    from solireward.serving.paths import checked_path

    with pytest.raises(ItemError) as info:
        checked_path(path, video_root.resolve())
    assert info.value.kind == "path"


def test_checked_path_accepts_the_root_and_needs_one(video_root: Path) -> None:
    from solireward.serving.paths import checked_path

    root = video_root.resolve()
    assert checked_path("sub/good_b.mp4", root) == str(root / "sub" / "good_b.mp4")
    assert checked_path("alias.mp4", root) == str(root / "good_a.mp4")
    with pytest.raises(ItemError, match="--video_root"):
        checked_path("good_a.mp4", None)


def test_find_video_takes_the_last_word_naming_a_file_under_the_root(video_root: Path) -> None:
    from solireward.serving.paths import find_video

    root = video_root.resolve()
    text = "<|im_start|>user\nredo good_c.mp4<|im_end|>\n<|im_start|>assistant\nsaved: sub/good_b.mp4.<|im_end|>"
    assert find_video(text, root) == str(root / "sub" / "good_b.mp4")
    assert find_video("good_a.mp4 then ../secret.mp4 and missing.mp4", root) == str(root / "good_a.mp4")
    assert find_video("video=good_c.mp4; also good_a.mp4", root, r"video=(\S+?);") == str(root / "good_c.mp4")
    with pytest.raises(ItemError, match="no word of the text names a video file under --video_root") as info:
        find_video("only escape.mp4 and loop.mp4 here", root)
    assert info.value.kind == "path" and str(root) not in info.value.message


def test_infer_on_a_folder_with_a_symlink_loop_records_it_as_an_error(reward_dirs, video_root: Path,
                                                                      tmp_path: Path) -> None:
    folder = tmp_path / "videos"
    folder.mkdir()
    (folder / "a.mp4").write_bytes((video_root / "good_a.mp4").read_bytes())
    (folder / "loop.mp4").symlink_to("loop.mp4")
    with contextlib.redirect_stderr(io.StringIO()):
        rc = run_cli("infer", "--model_name_or_path", reward_dirs["phys"], "--input_file", folder,
                     "--output_file", tmp_path / "out.json", "--num_workers", 0)
    assert rc == 3
    records = {Path(r["video_path"]).name: r for r in json.loads((tmp_path / "out.json").read_text())}
    assert "score" in records["a.mp4"] and "symbolic-link loop" in records["loop.mp4"]["error"]


def test_loopback_addresses_are_recognised() -> None:
    from solireward.serving.config import is_loopback

    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.5", "example.org"]))


def test_a_request_is_422_when_every_video_failed_for_itself_and_5xx_when_the_server_failed_one() -> None:
    from solireward.serving.state import request_failure

    assert request_failure([{"reward": 1.0}, ItemError("video", "unreadable")]) is None
    assert request_failure([{"reward": 1.0}, ItemError("crash", "ended 3 workers")]) is None  # the video's own
    status, message = request_failure([ItemError("path", "no video named"), ItemError("frames", "bad frame")])
    assert status == 422
    assert message == ("all 2 videos of the request failed, none has a reward: video 0 (path): no video named; "
                       "video 1 (frames): bad frame")
    # one server fault among good videos: no floor reward in a 200, the whole request fails (503: retry)
    status, message = request_failure([{"reward": 1.0}, ItemError("worker", "no worker ready")])
    assert status == 503 and message.startswith("the server could not score 1 of the 2 videos because of its own")
    assert request_failure([ItemError("worker", "x"), ItemError("model", "nan")])[0] == 500
    assert request_failure([ItemError("model", "nan")] * 7)[1].endswith("; ... and 2 more")


def test_a_conservative_ensemble_is_mean_minus_lambda_std_of_the_models(reward_dirs, video_root: Path,
                                                                         expected: dict) -> None:
    from solireward.conservative import EnsembleOptions

    folders = {name: str(path) for name, path in reward_dirs.items()}
    names = list(GOOD)
    for method, lam in (("mean_minus_std", 2.0), ("min", 1.0)):
        reward = VideoReward(folders, ensemble=EnsembleOptions(method, lam))
        rows = reward.reward([video_root / n for n in names], [GOOD[n][1] for n in names])
        for row, name in zip(rows, names):
            norms = np.array([expected[name]["scores"][m]["score_norm"] for m in ("phys", "text")])
            want = norms.mean() - lam * norms.std() if method == "mean_minus_std" else norms.min()
            assert row["Overall"] == pytest.approx(want, abs=TOL)


def test_the_in_process_rewards_refuse_a_model_whose_scores_collapsed(reward_dirs, video_root: Path,
                                                                       tmp_path: Path) -> None:
    collapsed = tmp_path / "collapsed"
    shutil.copytree(reward_dirs["phys"], collapsed)
    config = json.loads((collapsed / "solireward_config.json").read_text())
    (collapsed / "solireward_config.json").write_text(json.dumps({**config, "collapsed": True}))
    with pytest.raises(Exception, match="its scores collapsed in training") as error:
        VideoReward({"phys": str(collapsed)})
    assert str(collapsed) in str(error.value)
    with pytest.raises(Exception, match="its scores collapsed in training"):   # verl's reward function too
        compute_score(data_source="video_gen", solution_str="good_a.mp4", ground_truth=None, extra_info={},
                      models=[f"phys={collapsed}"], video_root=str(video_root))
