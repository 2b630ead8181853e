"""`solireward pairs`: task labels, prompt split, cross-/in-prompt pairs, ties, seeds, pairwise source."""

from __future__ import annotations

import csv
import json
from itertools import chain
from pathlib import Path

import pytest

from tests.conftest import run_cli

N_PROMPTS, PER_PROMPT = 20, 6


def _label_table(path: Path, all_pass: bool = False) -> Path:
    """A label table: per prompt, video 0 fails physics, video 1 fails deformity, videos 2-5 pass both.

    Extra videos test the group rule: 'half_null' (physics Pass, deformity null) and 'only_physics'
    (no deformity row) are dropped; 'fail_and_null' (physics Fail, deformity null) is Fail.
    """
    rows = []
    for p in range(N_PROMPTS):
        for k in range(PER_PROMPT):
            video = f"/data/p{p:02d}_v{k}.mp4"
            physics = 1 if all_pass or k != 0 else 0
            deformity = 1 if all_pass or k != 1 else 0
            rows += [(video, f"prompt {p:02d}", "physics", physics), (video, f"prompt {p:02d}", "deformity", deformity)]
    rows += [("/data/half_null.mp4", "prompt 00", "physics", 1), ("/data/half_null.mp4", "prompt 00", "deformity", None),
             ("/data/only_physics.mp4", "prompt 01", "physics", 1),
             ("/data/fail_and_null.mp4", "prompt 02", "physics", 0 if not all_pass else 1),
             ("/data/fail_and_null.mp4", "prompt 02", "deformity", None if not all_pass else 1)]
    with path.open("w") as handle:
        for video, prompt, dimension, label in rows:
            handle.write(json.dumps({"video_path": video, "prompt": prompt, "dimension": dimension, "label": label,
                                     "n_pass": 0, "n_fail": 0, "n_annotators": 0, "agreement": 1.0,
                                     "status": "ok" if label is not None else "split"}) + "\n")
    return path


@pytest.fixture()
def labels(tmp_path: Path) -> Path:
    return _label_table(tmp_path / "labels.jsonl")


def _load(out: Path) -> tuple[dict, dict, dict]:
    pairs = {s: json.loads((out / f"{s}.json").read_text()) for s in ("train", "val", "test")}
    videos = {s: json.loads((out / f"videos_{s}.json").read_text()) for s in ("train", "val", "test")}
    return pairs, videos, json.loads((out / "summary.json").read_text())


def _check_pairs(pairs: dict, videos: dict, in_prompt: bool) -> None:
    """Invariants of every split: no L x L, no self-pairs, no repeats, sides in the split, own prompts."""
    prompts = {s: {v["prompt"] for v in vs} for s, vs in videos.items()}
    assert not (prompts["train"] & prompts["val"]) and not (prompts["train"] & prompts["test"]) \
        and not (prompts["val"] & prompts["test"])
    for split, split_pairs in pairs.items():
        info = {v["video_path"]: v for v in videos[split]}
        seen = set()
        for pair in split_pairs:
            win, lose, meta = pair["win"], pair["lose"], pair["meta"]
            assert set(win) == {"video_path", "prompt"} and set(lose) == {"video_path", "prompt"}
            assert win["video_path"] in info and lose["video_path"] in info            # both in this split
            assert win["prompt"] == info[win["video_path"]]["prompt"]                 # each side its own prompt
            assert lose["prompt"] == info[lose["video_path"]]["prompt"]
            assert info[win["video_path"]]["label"] == 1 and meta["win"]["quality"] == 1.0
            assert meta["lose"]["quality"] == info[lose["video_path"]]["label"]      # 0 Fail, 1 tie with a Pass
            assert win["video_path"] != lose["video_path"]
            key = frozenset((win["video_path"], lose["video_path"]))
            assert key not in seen
            seen.add(key)
            if in_prompt:
                assert win["prompt"] == lose["prompt"]


def test_cross_prompt_counts_ties_and_invariants(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    assert run_cli("pairs", "--labels", labels, "--task", "phy_deform", "--output_dir", out,
                   "--pairs_per_video", 2, "--tie_ratio", 0.25, "--seed", 3) == 0
    pairs, videos, summary = _load(out)
    _check_pairs(pairs, videos, in_prompt=False)
    # Drawn regardless of prompt: with 16 train prompts about 15/16 of the pairs cross prompts.
    crossing = [p["win"]["prompt"] != p["lose"]["prompt"] for p in pairs["train"]]
    assert sum(crossing) / len(crossing) > 0.8 and summary["splits"]["train"]["cross_prompt_pairs"] == sum(crossing)
    assert len({p["lose"]["prompt"] for p in pairs["train"] if p["meta"]["lose"]["quality"] == 0.0}) == 16
    assert summary["videos_dropped_incomplete"] == 2                    # half_null, only_physics
    all_videos = {v["video_path"]: v["label"] for v in chain(*videos.values())}
    assert len(all_videos) == N_PROMPTS * PER_PROMPT + 1 and all_videos["/data/fail_and_null.mp4"] == 0
    assert "/data/half_null.mp4" not in all_videos
    assert sorted(s["prompts"] for s in summary["splits"].values()) == [2, 2, 16]
    for split, s in summary["splits"].items():
        n_videos = len(videos[split])
        assert s["videos"] == n_videos and s["pass"] + s["fail"] == n_videos
        non_ties = round(2 * n_videos / 2)                                # every video has a partner
        ties = round(non_ties * 0.25 / 0.75)
        tie_pairs = [p for p in pairs[split] if p["meta"]["lose"]["quality"] == 1.0]
        assert (s["non_ties"], s["ties"], s["pairs"]) == (non_ties, ties, non_ties + ties)
        assert (len(pairs[split]), len(tie_pairs)) == (non_ties + ties, ties)
    # Win sides are spread over the Pass videos, not concentrated on a few.
    train_wins = {p["win"]["video_path"] for p in pairs["train"] if p["meta"]["lose"]["quality"] == 0.0}
    assert len(train_wins) == summary["splits"]["train"]["pass"]


def test_in_prompt_pairs_share_prompts(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    assert run_cli("pairs", "--labels", labels, "--output_dir", out, "--pairing", "in_prompt",
                   "--pairs_per_video", 1, "--tie_ratio", 0.25) == 0
    pairs, videos, summary = _load(out)
    _check_pairs(pairs, videos, in_prompt=True)
    train = summary["splits"]["train"]
    assert train["cross_prompt_pairs"] == 0
    assert train["non_ties"] == round(train["videos"] / 2) and train["ties"] == round(train["non_ties"] / 3)


def test_request_beyond_available_pairs_is_capped(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    assert run_cli("pairs", "--labels", labels, "--output_dir", out, "--pairing", "in_prompt",
                   "--pairs_per_video", 50, "--split", 1, 0, 0) == 0
    pairs, videos, summary = _load(out)
    _check_pairs(pairs, videos, in_prompt=True)
    # Each prompt has 4 Pass x 2 Fail = 8 in-prompt win-lose pairs and C(4,2) = 6 win-tie pairs;
    # prompt 02 also has fail_and_null (+4 win-lose).
    assert summary["splits"]["train"]["non_ties"] == N_PROMPTS * 8 + 4
    assert summary["splits"]["train"]["ties"] == N_PROMPTS * 6
    assert pairs["val"] == [] and pairs["test"] == []


def test_num_pairs_shared_by_split(labels: Path, tmp_path: Path) -> None:
    out = tmp_path / "pairs"
    assert run_cli("pairs", "--labels", labels, "--output_dir", out, "--num_pairs", 200, "--tie_ratio", 0.1) == 0
    _, videos, summary = _load(out)
    total_videos = sum(len(v) for v in videos.values())
    requested = 0
    for split, s in summary["splits"].items():
        expected = round(200 * len(videos[split]) / total_videos)
        assert (s["requested_non_ties"], s["requested_ties"]) == (expected - round(expected * 0.1),
                                                                  round(expected * 0.1))
        requested += expected
    assert abs(requested - 200) <= 2
    train = summary["splits"]["train"]           # val/test (2 prompts) may hold fewer distinct pairs
    assert (train["non_ties"], train["ties"]) == (train["requested_non_ties"], train["requested_ties"])


def test_same_seed_same_files_other_seed_differs(labels: Path, tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        assert run_cli("pairs", "--labels", labels, "--output_dir", tmp_path / name, "--seed", seed) == 0
        runs[name] = {f.name: f.read_bytes() for f in sorted((tmp_path / name).iterdir())}
    assert runs["a"] == runs["b"]
    assert runs["a"]["train.json"] != runs["c"]["train.json"]


def test_custom_dimensions_and_errors(labels: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "pairs"
    assert run_cli("pairs", "--labels", labels, "--output_dir", out, "--task", "phys_only",
                   "--dimensions", "physics") == 0
    _, videos, summary = _load(out)
    assert summary["dimensions"] == ["physics"] and summary["videos_dropped_incomplete"] == 0
    labels_by_video = {v["video_path"]: v["label"] for v in chain(*videos.values())}
    assert labels_by_video["/data/p03_v1.mp4"] == 1 and labels_by_video["/data/half_null.mp4"] == 1

    assert run_cli("pairs", "--labels", labels, "--output_dir", out, "--dimensions", "physics", "colour") == 2
    assert "dimension(s) colour not in the label table; it has: deformity, physics" in capsys.readouterr().err
    assert run_cli("pairs", "--labels", labels, "--output_dir", out, "--task", "beauty") == 2
    assert "unknown task 'beauty'; known tasks: phy_deform, text_alignment" in capsys.readouterr().err

    all_pass = _label_table(tmp_path / "all_pass.jsonl", all_pass=True)
    assert run_cli("pairs", "--labels", all_pass, "--output_dir", tmp_path / "none") == 2
    err = capsys.readouterr().err
    assert "the train split has" in err and "Pass and 0 Fail videos for task 'phy_deform'" in err
    assert not (tmp_path / "none" / "train.json").exists()

    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps({"video_path": "/x.mp4", "prompt": "p", "dimension": "physics"}) + "\n")
    assert run_cli("pairs", "--labels", broken, "--output_dir", out) == 2
    assert f"{broken}, field 'label': missing column" in capsys.readouterr().err


def _pairwise_csv(folder: Path, rows: list[tuple[str, str, str, str, str]]) -> Path:
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    for row in rows:
        for video in row[1:3]:
            if video:
                (folder / video).write_bytes(b"\0")
    path = folder / "pairwise.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt", "video_a", "video_b", "choice", "annotator"])
        writer.writerows(rows)
    return path


PAIRWISE = [
    ("P0", "videos/a0.mp4", "videos/a1.mp4", "a", "x"), ("P0", "videos/a0.mp4", "videos/a1.mp4", "A", "y"),
    ("P0", "videos/a0.mp4", "videos/a1.mp4", "b", "z"),                       # a0 beats a1 2:1
    ("P0", "videos/a1.mp4", "videos/a2.mp4", "b", "x"), ("P0", "videos/a2.mp4", "videos/a1.mp4", "a", "y"),
    ("P1", "videos/b0.mp4", "videos/b1.mp4", "tie", "x"), ("P1", "videos/b0.mp4", "videos/b1.mp4", "TIE", "y"),
    ("P1", "videos/b0.mp4", "videos/b1.mp4", "a", "z"),                       # tie 2:1
    ("P1", "videos/b1.mp4", "videos/b2.mp4", "a", "x"), ("P1", "videos/b1.mp4", "videos/b2.mp4", "b", "y"),  # split
    ("P2", "videos/c0.mp4", "videos/c1.mp4", "b", "x"),
    ("P3", "videos/d0.mp4", "videos/d1.mp4", "a", "x"),
]


def test_pairwise_annotations_majority(tmp_path: Path, capsys) -> None:
    source = _pairwise_csv(tmp_path, PAIRWISE)
    out = tmp_path / "pairs"
    assert run_cli("pairs", "--pairwise_annotations", source, "--output_dir", out, "--split", 1, 0, 0) == 0
    pairs, videos, summary = _load(out)
    v = lambda name: str((tmp_path / "videos" / name).resolve())  # noqa: E731
    got = {(Path(p["win"]["video_path"]).stem, Path(p["lose"]["video_path"]).stem,
            p["meta"]["win"]["quality"], p["meta"]["lose"]["quality"]) for p in pairs["train"]}
    assert len(pairs["train"]) == 5
    assert {g for g in got if g[2] == 1.0} == {("a0", "a1", 1.0, 0.0), ("a2", "a1", 1.0, 0.0),
                                               ("c1", "c0", 1.0, 0.0), ("d0", "d1", 1.0, 0.0)}
    assert {frozenset(g[:2]) for g in got if g[2] == 0.5} == {frozenset(("b0", "b1"))}
    assert all(p["win"]["prompt"] == p["lose"]["prompt"] for p in pairs["train"])
    assert summary["pairwise_pairs_undecided"] == 1 and summary["splits"]["train"]["ties"] == 1
    assert v("a0.mp4") in {r["video_path"] for r in videos["train"]}

    assert run_cli("pairs", "--pairwise_annotations", source, "--output_dir", tmp_path / "split",
                   "--split", 0.5, 0.25, 0.25, "--seed", 1) == 0
    pairs, _, summary = _load(tmp_path / "split")
    prompts = {s: {p["win"]["prompt"] for p in ps} for s, ps in pairs.items()}
    assert sorted(s["prompts"] for s in summary["splits"].values()) == [1, 1, 2]
    assert not (prompts["train"] & prompts["val"]) and not (prompts["train"] & prompts["test"]) \
        and not (prompts["val"] & prompts["test"])

    bad = _pairwise_csv(tmp_path / "bad", PAIRWISE[:2] + [("P0", "videos/a0.mp4", "videos/a1.mp4", "left", "q")])
    assert run_cli("pairs", "--pairwise_annotations", bad, "--output_dir", tmp_path / "bad_out") == 2
    assert f"{bad}, row 4, field 'choice': line 4 (CSV header = line 1): unknown choice 'left'" in capsys.readouterr().err
