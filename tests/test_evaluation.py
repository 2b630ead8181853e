"""Evaluation metrics on hand-made scores, and `solireward evaluate` end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from solireward.evaluation import (accuracy_at_epsilon, accuracy_with_ties, best_f1, group_advantages,
                                   method_footnote, pair_accuracy, pair_metrics, roc_auc,
                                   top_prompt_share)
from tests.conftest import run_cli

# v1..v8: prompt, label (None = unlabelled), score (None = errored)
VIDEOS = [("v1", "A", 1, 3.0), ("v2", "A", 0, 1.0), ("v3", "B", 1, 2.0), ("v4", "B", 0, 2.0),
          ("v5", "C", 1, 0.5), ("v6", "C", 0, None), ("v7", "C", 0, 0.8), ("v8", "D", None, 1.5)]


def _record(name, prompt, label, score):
    rec = {"video_path": f"/data/{name}.mp4", "prompt": prompt, "label": label}
    if score is None:
        rec["error"] = "VideoReadError: truncated file"
    else:
        rec.update(score=score, score_norm=(score - 1.0) / 2.0)
    return rec


def _pair(win, lose, tie=False):
    side = lambda n: {"video_path": f"/data/{n}.mp4", "prompt": "p"}  # noqa: E731
    return {"win": side(win), "lose": side(lose),
            "meta": {"win": {"quality": 1.0}, "lose": {"quality": 1.0 if tie else 0.0}}}


PAIRS = [_pair("v1", "v2"), _pair("v3", "v4"), _pair("v5", "v7"), _pair("v1", "v7"),   # d = 2, 0, −0.3, 2.2
         _pair("v1", "v3", True), _pair("v3", "v5", True), _pair("v3", "v8", True),    # ties: d = 1, 1.5, 0.5
         _pair("v1", "v6"),            # v6 errored -> skipped_error
         _pair("v1", "missing")]       # not in the score file -> skipped_missing


def test_pair_accuracy_counts_equal_scores_half():
    assert pair_accuracy(np.array([2.0, 0.0, -0.3, 2.2])) == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    assert pair_accuracy(np.array([])) is None


def test_accuracy_with_ties_known_best_threshold():
    # sorted |d|: 0 (win), 0.3 (win, d<0), 0.5 (tie), 1 (tie), 1.5 (tie), 2 (win), 2.2 (win)
    # eps=0: 2/7, 0.3: 2/7, 0.5: 3/7, 1: 4/7, 1.5: 5/7 (all ties right, 2 and 2.2 right), 2: 4/7, 2.2: 3/7
    d = np.array([2.0, 0.0, -0.3, 2.2, 1.0, 1.5, 0.5])
    rel = np.array([1, 1, 1, 1, 0, 0, 0])
    acc, eps = accuracy_with_ties(d, rel)
    assert acc == pytest.approx(5 / 7) and eps == pytest.approx(1.5)
    # a "lose" label (q_win < q_lose) is right when d < −eps
    assert accuracy_with_ties(np.array([-1.0, 0.2]), np.array([-1, 0])) == (1.0, 0.2)
    assert accuracy_with_ties(np.array([]), np.array([])) == (None, None)


def test_roc_auc_matches_hand_count_and_brute_force():
    # Pass {3, 2, 0.5} vs Fail {1, 2, 0.8}: 3 beats all (3), 2 beats 1 and 0.8 and ties 2 (2.5), 0.5 none -> 5.5/9
    scores = np.array([3.0, 1.0, 2.0, 2.0, 0.5, 0.8])
    positive = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    assert roc_auc(scores, positive) == pytest.approx(5.5 / 9)
    rng = np.random.default_rng(0)
    s, y = rng.integers(0, 5, 40).astype(float), rng.random(40) < 0.4
    brute = np.mean([(a > b) + 0.5 * (a == b) for a in s[y] for b in s[~y]])
    assert roc_auc(s, y) == pytest.approx(brute)
    assert roc_auc(scores, np.ones(6, dtype=bool)) is None


def test_best_f1_threshold():
    # descending: 3P, 2P, 2F, 1F, 0.8F, 0.5P. F1 = 2TP / (TP + FP + 3):
    # t=3: 2/4, t=2: 4/6, t=1: 4/7, t=0.8: 4/8, t=0.5: 6/9 -> best 2/3, the highest such t is 2
    scores = np.array([3.0, 1.0, 2.0, 2.0, 0.5, 0.8])
    positive = np.array([1, 0, 1, 0, 1, 0], dtype=bool)
    assert best_f1(scores, positive) == (pytest.approx(2 / 3), 2.0)
    assert best_f1(scores, np.zeros(6, dtype=bool)) == (None, None)


def test_group_advantage_and_top_prompt_share():
    # A: [3, 1] -> +1, −1; B: [2, 2] constant; C: [0.5, 0.8] -> −1, +1; D: one video
    scores = np.array([3.0, 1.0, 2.0, 2.0, 0.5, 0.8, 1.5])
    groups = np.array(list("AABBCCD"), dtype=object)
    adv, n_groups, n_constant = group_advantages(scores, groups)
    np.testing.assert_allclose(adv, [1, -1, np.nan, np.nan, -1, 1, np.nan])
    assert (n_groups, n_constant) == (3, 1)
    # top-3 = 3 (A), 2 (B), 2 (B): prompt B holds 2/3. Null: 3 of 7 videos (sizes 2,2,2,1) all from
    # different prompts with probability 20/35, else the top prompt has 2 -> E[max]/3 = (50/35)/3
    out = top_prompt_share(scores, groups, top_k=3, top_prompts=1, null_samples=4000, seed=0)
    assert out["top_prompts_share"] == pytest.approx(2 / 3)
    assert out["top_prompts_share_expected"] == pytest.approx(50 / 105, abs=0.03)
    assert out["top_k_prompts"] == [{"prompt": "B", "count": 2}]


def _write_inputs(tmp_path: Path, videos=VIDEOS, pairs=PAIRS) -> tuple[Path, Path]:
    scores, pair_file = tmp_path / "scores.json", tmp_path / "pairs.json"
    scores.write_text(json.dumps([_record(*v) for v in videos]))
    pair_file.write_text(json.dumps(pairs))
    return scores, pair_file


def test_evaluate_cli_end_to_end(tmp_path):
    scores, pairs = _write_inputs(tmp_path)
    out = tmp_path / "eval" / "metrics.json"
    assert run_cli("evaluate", "--scores", scores, "--pairs", pairs, "--output", out, "--top_k", 3,
                   "--top_prompts", 1, "--tag", "head=hpqa", "loss=btt", "--tag", "task=phy_deform") == 0
    result = json.loads(out.read_text())
    assert result["tags"] == {"head": "hpqa", "loss": "btt", "task": "phy_deform"}
    assert result["counts"] == {"records": 8, "scored": 7, "errored": 1, "nonfinite": 0, "labelled": 6,
                                "pass": 3, "fail": 3}
    p = result["pairs"]
    assert (p["in_file"], p["evaluated"], p["skipped_missing"], p["skipped_error"], p["win_lose"], p["ties"]) \
        == (9, 7, 1, 1, 4, 3)
    assert p["accuracy"] == pytest.approx(0.625)
    assert p["accuracy_with_ties"] == pytest.approx(5 / 7) and p["tie_threshold"] == pytest.approx(1.5)
    v = result["video"]
    assert v["roc_auc"] == pytest.approx(5.5 / 9) and v["best_f1"] == pytest.approx(2 / 3)
    assert v["best_f1_threshold"] == 2.0 and v["spearman"] is None and "binary" in result["notes"]["video.spearman"]
    dg = result["diagnostics"]
    # Pass scores 3, 2, 0.5: population std sqrt(3.1667/3) = 1.02740; IQR 2.5 − 1.25 = 1.25
    assert dg["pass_score_std"] == pytest.approx(math.sqrt((7 / 6) ** 2 / 3 + (1 / 6) ** 2 / 3 + (4 / 3) ** 2 / 3))
    assert dg["pass_score_iqr"] == pytest.approx(1.25)
    assert dg["top_prompts_share"] == pytest.approx(2 / 3) and dg["top_k"] == 3
    assert (dg["groups"], dg["groups_constant"]) == (3, 1)
    assert dg["mean_abs_advantage_pass"] == pytest.approx(1.0) and dg["mean_advantage_pass"] == pytest.approx(0.0)
    # best per prompt: A -> v1 Pass, B -> tie 2 = 2, first in file order v3 Pass, C -> v7 Fail
    assert dg["best_is_pass_share"] == pytest.approx(2 / 3) and dg["best_is_pass_expected"] == pytest.approx(0.5)
    assert (tmp_path / "eval" / result["sources"]["scores"]).resolve() == scores.resolve()
    md = (tmp_path / "eval" / "metrics.md").read_text()
    assert "| accuracy_with_ties | 0.7143 |" in md and "head=hpqa" in md and "skipped" in md


def test_evaluate_score_norm_without_pairs_and_markdown_path(tmp_path):
    scores, _ = _write_inputs(tmp_path)
    out, md = tmp_path / "m.json", tmp_path / "notes" / "summary.md"
    assert run_cli("evaluate", "--scores", scores, "--output", out, "--markdown", md,
                   "--score_field", "score_norm") == 0
    result = json.loads(out.read_text())
    assert result["pairs"] is None and result["tags"] == {}
    # score_norm = (score − 1)/2 is monotone: same AUC, threshold mapped (2 − 1)/2
    assert result["video"]["roc_auc"] == pytest.approx(5.5 / 9)
    assert result["video"]["best_f1_threshold"] == pytest.approx(0.5)
    assert "Not computed (no pair file)" in md.read_text()


def test_evaluate_graded_labels_single_class_and_nonfinite(tmp_path):
    videos = [("a", "x", 0.6, 1.0), ("b", "x", 0.8, 2.0), ("c", "y", 1.0, 3.0), ("d", "y", 0.9, float("nan"))]
    scores, _ = _write_inputs(tmp_path, videos)
    out = tmp_path / "m.json"
    assert run_cli("evaluate", "--scores", scores, "--output", out) == 0
    result = json.loads(out.read_text())
    assert result["counts"]["nonfinite"] == 1 and result["counts"]["scored"] == 3
    assert result["video"]["spearman"] == pytest.approx(1.0)
    assert result["video"]["roc_auc"] is None and "0 Fail" in result["notes"]["video.roc_auc"]


@pytest.mark.parametrize("record, message", [
    ({"video_path": "/v.mp4", "prompt": "p"}, "row 2, field 'score': record has neither"),
    ({"video_path": "/v.mp4", "score": "high"}, "row 2, field 'score': expected a number"),
    ({"video_path": "/v.mp4", "score": 1.0, "label": 2}, "row 2, field 'label'"),
    ({"prompt": "p", "score": 1.0}, "row 2, field 'video_path'"),
])
def test_evaluate_bad_score_records(tmp_path, capsys, record, message):
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps([_record("ok", "p", 1, 1.0), record]))
    assert run_cli("evaluate", "--scores", scores, "--output", tmp_path / "m.json") == 2
    assert message in capsys.readouterr().err and not (tmp_path / "m.json").exists()


def test_evaluate_bad_pairs_and_tags(tmp_path, capsys):
    scores, pairs = _write_inputs(tmp_path, pairs=[{"win": {"video_path": "/data/v1.mp4"}, "lose": {}}])
    assert run_cli("evaluate", "--scores", scores, "--pairs", pairs, "--output", tmp_path / "m.json") == 2
    assert "row 1, field 'lose.video_path'" in capsys.readouterr().err
    assert run_cli("evaluate", "--scores", scores, "--output", tmp_path / "m.json", "--tag", "head") == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_pair_metrics_cd_and_fixed_epsilon():
    d = np.array([2.0, 0.0, -0.3, 0.1, 1.0, -0.05])
    relation = np.array([1, 1, 1, -1, 0, 0])
    m = pair_metrics(d, relation, tie_epsilon=0.2)
    assert (m["concordant"], m["discordant"], m["score_ties"]) == (1, 2, 1)
    assert m["accuracy"] == pytest.approx(1.5 / 4) and m["accuracy_cd"] == pytest.approx(1 / 3)
    # at ε = 0.2: predictions win, tie, lose, tie, win, tie -> right: 1st, 6th
    assert m["accuracy_with_ties_fixed"] == pytest.approx(2 / 6) == accuracy_at_epsilon(d, relation, 0.2)
    assert m["tie_epsilon"] == 0.2 and pair_metrics(d, relation, None)["accuracy_with_ties_fixed"] is None
    assert pair_metrics(np.array([0.0]), np.array([1]), None)["accuracy_cd"] is None   # C + D = 0


def test_evaluate_stores_interval_and_per_pair_records(tmp_path):
    scores, pairs = tmp_path / "s.json", tmp_path / "p.json"
    scores.write_text(json.dumps([_record(*v) for v in VIDEOS]))
    pairs.write_text(json.dumps(PAIRS))
    out = tmp_path / "m.json"
    assert run_cli("evaluate", "--scores", scores, "--pairs", pairs, "--output", out, "--confidence", 0.9) == 0
    result = json.loads(out.read_text())
    lo, hi = result["pairs"]["accuracy_ci"]
    assert lo <= result["pairs"]["accuracy"] <= hi and result["pairs"]["confidence"] == 0.9
    assert result["per_pair"]["row"] == [1, 2, 3, 4, 5, 6, 7]          # rows 8 and 9 were skipped
    assert result["per_pair"]["relation"] == [1, 1, 1, 1, 0, 0, 0] and result["per_pair"]["prompt_win"][0] == "p"
    assert "accuracy_ci | [" in (tmp_path / "m.md").read_text()


def test_metrics_sources_follow_a_moved_study_folder(tmp_path):
    """`sources` are relative to the metrics file, so `report` finds the score and pair files after a move."""
    from solireward.reporting import load_metrics

    study = tmp_path / "study"
    study.mkdir()
    scores, pairs = _write_inputs(study)
    assert run_cli("evaluate", "--scores", scores, "--pairs", pairs, "--output", study / "eval" / "metrics.json") == 0
    moved = tmp_path / "elsewhere" / "study"
    moved.parent.mkdir()
    study.rename(moved)
    row = load_metrics([str(moved / "eval" / "metrics.json")]).iloc[0]
    assert Path(row["scores_path"]) == (moved / "scores.json").resolve()
    assert Path(row["pairs_path"]) == (moved / "pairs.json").resolve()


def test_published_and_own_accuracies_differ_and_in_prompt_beside_cross_prompt(tmp_path):
    """VideoAlign's calc_accuracy counts d = 0 wrong and may split equal |d| in its prefix scan; ours does not."""
    # (d, relation, prompt of win side, prompt of lose side): d = 0 win; d = 2 win; d = −1 win; two with |d| = 0.5
    rows = [(0.0, 1, "p", "p"), (2.0, 1, "p", "p"), (-1.0, 1, "p", "q"), (0.5, 0, "q", "r"), (0.5, 1, "r", "s")]
    records, pairs = [], []
    for i, (d, relation, pw, pl) in enumerate(rows):
        win, lose = f"/data/w{i}.mp4", f"/data/l{i}.mp4"
        records += [{"video_path": win, "prompt": pw, "score": d, "label": 1},
                    {"video_path": lose, "prompt": pl, "score": 0.0, "label": 1 if relation == 0 else 0}]
        pairs.append({"win": {"video_path": win, "prompt": pw}, "lose": {"video_path": lose, "prompt": pl},
                      "meta": {"win": {"quality": 1.0}, "lose": {"quality": 1.0 if relation == 0 else 0.0}}})
    scores, pair_file, out = tmp_path / "s.json", tmp_path / "p.json", tmp_path / "m.json"
    scores.write_text(json.dumps(records))
    pair_file.write_text(json.dumps(pairs))
    assert run_cli("evaluate", "--scores", scores, "--pairs", pair_file, "--output", out) == 0
    result = json.loads(out.read_text())
    p = result["pairs"]
    assert p["accuracy"] == pytest.approx(2.5 / 4) and p["accuracy_cd"] == pytest.approx(2 / 3)
    assert p["accuracy_videoalign"] == pytest.approx(2 / 4)                  # d = 0 counts wrong
    # ours: every ε predicts both |d| = 0.5 pairs alike -> best 2/5; VideoAlign's prefix {d=0, tie} -> 3/5
    assert p["accuracy_with_ties"] == pytest.approx(2 / 5)
    assert p["accuracy_with_ties_videoalign"] == pytest.approx(3 / 5) and p["tie_threshold_videoalign"] == 0.5
    # in-prompt test pairs: rows 1-2 (½ and 1); cross-prompt win-lose pairs: rows 3 and 5 (0 and 1)
    assert p["in_prompt"]["pairs"] == 2 and p["in_prompt"]["accuracy"] == pytest.approx(0.75)
    assert p["cross_prompt"]["pairs"] == 2 and p["cross_prompt"]["accuracy"] == pytest.approx(0.5)
    for part in ("in_prompt", "cross_prompt"):
        lo, hi = p[part]["accuracy_ci"]
        assert 0 <= lo <= p[part]["accuracy"] <= hi <= 1
    # every Pass x Fail pair of the score file, counted by hand
    passes = [(r["score"], r["prompt"]) for r in records if r["label"] == 1]
    fails = [(r["score"], r["prompt"]) for r in records if r["label"] == 0]
    for part, same in (("in_prompt", True), ("cross_prompt", False)):
        hits = [(sw > sl) + 0.5 * (sw == sl) for sw, pw in passes for sl, pl in fails if (pw == pl) == same]
        assert result["all_pairs"][part]["pairs"] == len(hits)
        assert result["all_pairs"][part]["accuracy"] == pytest.approx(np.mean(hits))
    assert result["uncertainty_method"] == method_footnote()
    md = (tmp_path / "m.md").read_text()
    assert "| test pairs in-prompt | 2 |" in md and "accuracy_with_ties_videoalign" in md
