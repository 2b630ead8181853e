"""Public pairwise benchmark formats and VideoAlign-style preference CSVs: import, then evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from solireward.data.benchmarks import FORMATS, parse_pairs
from solireward.errors import InputError
from tests.conftest import run_cli

# rows of each format over videos v0..v3 (v9 does not exist): (video A, video B, label values)
LAYOUTS = {
    "videogen_rewardbench": (("path_A", "path_B"), {"prompt": "a ball", "fps_A": "8", "fps_B": "8"},
                             ("Overall", "VQ", "MQ", "TA"),
                             [(0, 1, ("A", "A", "B", "same")), (2, 1, ("B", "same", "B", "A")),
                              (3, 0, ("same", "A", "A", "B")), (0, 9, ("A", "A", "A", "A"))]),
    "genai_bench": (("left_video", "right_video"), {"prompt": "a ball"}, ("vote_type",),
                    [(0, 1, ("leftvote",)), (2, 1, ("rightvote",)), (3, 0, ("bothbad_vote",)), (0, 9, ("tievote",))]),
    "mj_bench_video": (("video_0_path", "video_1_path"), {"caption": "a ball"}, ("overall_preference",),
                       [(0, 1, ("Video 1 better",)), (2, 1, ("Video 2 better",)), (3, 0, ("Same",)),
                        (0, 9, ("Video 1 better",))]),
    "visionreward_video": (("video1_path", "video2_path"), {}, ("standard_answer",),
                           [(0, 1, ("video1",)), (2, 1, ("video2",)), (3, 0, ("tie",)), (0, 9, ("video1",))]),
    "videoalign": (("path_A", "path_B"), {"prompt": "a ball"}, ("label",),
                   [(0, 1, ("A",)), (2, 1, ("B",)), (3, 0, ("same",)), (0, 9, ("a",))]),
}
SCORES = {0: 3.0, 1: 1.0, 2: 0.5, 3: 3.2}   # v0 > v1 > v2; v3 within 0.2 of v0


def _write(path: Path, fmt: str, rows: list[tuple[int, int, tuple[str, ...]]] | None = None,
           drop: str | None = None) -> Path:
    (video_a, video_b), extra, labels, default_rows = LAYOUTS[fmt]
    header = [c for c in (video_a, video_b, *extra, *labels) if c != drop]
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for a, b, values in rows or default_rows:
            record = {video_a: f"v{a}.mp4", video_b: f"v{b}.mp4", **extra, **dict(zip(labels, values))}
            writer.writerow([record[c] for c in header])
    return path


@pytest.fixture(scope="module")
def videos(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four generated demo videos as v0..v3.mp4 in one folder."""
    root = tmp_path_factory.mktemp("bench_videos")
    for i, source in enumerate(sorted((demo_dir / "videos").glob("*.mp4"))[:4]):
        (root / f"v{i}.mp4").write_bytes(source.read_bytes())
    return root


@pytest.mark.parametrize("fmt", list(LAYOUTS))
def test_each_format_imports_and_evaluates(fmt: str, videos: Path, tmp_path: Path) -> None:
    source = _write(tmp_path / f"{fmt}.csv", fmt)
    out = tmp_path / "imported"
    assert run_cli("import-bench", "--input", source, "--format", fmt, "--video_root", videos,
                   "--output_dir", out) == 0
    pairs = json.loads((out / "pairs.json").read_text())
    assert [(Path(p["win"]["video_path"]).name, Path(p["lose"]["video_path"]).name) for p in pairs] == [
        ("v0.mp4", "v1.mp4"), ("v2.mp4", "v1.mp4"), ("v3.mp4", "v0.mp4"), ("v0.mp4", "v9.mp4")]
    primary = FORMATS[fmt].labels[0]
    relations = [p["meta"]["labels"][primary] for p in pairs]
    expected_last = 0 if fmt == "genai_bench" else 1   # tievote; the others say A
    assert relations == [1, -1, 0, expected_last]
    assert [p["meta"]["win"]["quality"] - p["meta"]["lose"]["quality"] for p in pairs][:3] == [1.0, -1.0, 0.0]
    listed = sorted(Path(v["video_path"]).name for v in json.loads((out / "videos.json").read_text()))
    assert listed == ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"]            # v9 is missing
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pairs"] == 4 and summary["videos_missing"] == 1 and summary["pairs_with_missing_video"] == 1
    assert ("bothbad_vote is scored as a tie" in summary.get("note", "")) == (fmt == "genai_bench")
    with (out / "preferences.csv").open() as f:   # the VideoAlign form, paths relative to the output folder
        first = next(csv.DictReader(f))
    assert (out / first["path_A"]).resolve() == (videos / "v0.mp4").resolve() and first["label"] == "A"

    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps([{"video_path": str(videos / f"v{i}.mp4"), "score": s} for i, s in SCORES.items()]))
    metrics = tmp_path / "metrics.json"
    assert run_cli("evaluate", "--scores", scores, "--pairs", out / "pairs.json", "--output", metrics,
                   "--tie_epsilon", "0.3") == 0
    result = json.loads(metrics.read_text())
    p = result["pairs"]
    # d: +2.0 (A better: right), -0.5 (B better: right), +0.2 (same); the v9 pair is skipped
    assert p["skipped_missing"] == 1 and p["evaluated"] == 3 and p["win_lose"] == 2 and p["ties"] == 1
    assert p["accuracy"] == 1.0 and p["accuracy_cd"] == 1.0 and p["concordant"] == 2 and p["discordant"] == 0
    assert p["accuracy_with_ties"] == 1.0 and p["tie_threshold"] == pytest.approx(0.2)
    assert p["tie_epsilon"] == 0.3 and p["accuracy_with_ties_fixed"] == 1.0
    assert "not comparable across papers unless ε is stated" in result["notes"]["pairs.accuracy_with_ties"]
    assert result["per_pair"]["row"] == [1, 2, 3]
    if fmt == "videogen_rewardbench":   # per-dimension split: VQ A,same,A; MQ B,B,A; TA same,A,B
        dims = p["by_dimension"]
        assert set(dims) == {"Overall", "VQ", "MQ", "TA"}
        assert dims["VQ"]["win_lose"] == 2 and dims["VQ"]["accuracy"] == 1.0     # A on d = 2 and on d = 0.2
        assert dims["MQ"]["accuracy"] == pytest.approx(2 / 3)                    # B on d = 2 is wrong
        assert dims["TA"]["ties"] == 1 and dims["TA"]["accuracy"] == 0.0
        assert "Pairs per label dimension" in (tmp_path / "metrics.md").read_text()
    else:
        assert "by_dimension" not in p


def test_videoalign_votes_train_the_pairs_command(videos: Path, tmp_path: Path) -> None:
    """votes.csv is what `solireward pairs --pairwise_annotations` reads."""
    source = _write(tmp_path / "prefs.csv", "videoalign", rows=[(0, 1, ("A",)), (2, 1, ("B",)), (3, 0, ("same",))])
    out = tmp_path / "imported"
    assert run_cli("import-bench", "--input", source, "--format", "videoalign", "--video_root", videos,
                   "--output_dir", out) == 0
    with (out / "votes.csv").open() as f:
        votes = list(csv.DictReader(f))
    assert [v["choice"] for v in votes] == ["a", "b", "tie"] and votes[0]["prompt"] == "a ball"
    assert (out / votes[1]["video_a"]).resolve() == (videos / "v2.mp4").resolve()
    # and back: the votes format gives the same pairs (one vote each; each pair ordered by path)
    again = parse_pairs(str(out / "votes.csv"), "votes")
    assert sorted(zip(map(lambda v: Path(v).name, again.video_a), map(lambda v: Path(v).name, again.video_b),
                      again.labels["choice"].tolist())) == [("v0.mp4", "v1.mp4", 1), ("v0.mp4", "v3.mp4", 0),
                                                            ("v1.mp4", "v2.mp4", 1)]


def test_votes_plurality_drops_split_pairs(tmp_path: Path) -> None:
    votes = tmp_path / "votes.csv"
    votes.write_text("prompt,video_a,video_b,choice,annotator\n"
                     "p,x.mp4,y.mp4,a,a1\np,y.mp4,x.mp4,b,a2\np,x.mp4,y.mp4,tie,a3\n"   # x better 2:1
                     "p,x.mp4,z.mp4,a,a1\np,x.mp4,z.mp4,b,a2\n")                       # split: dropped
    pairs = parse_pairs(str(votes), "votes")
    assert len(pairs.row) == 1 and pairs.dropped == 1
    assert Path(pairs.video_a[0]).name == "x.mp4" and pairs.labels["choice"].tolist() == [1]


@pytest.mark.parametrize("fmt, rows, drop, message, row, field", [
    ("videogen_rewardbench", [(0, 1, ("A", "A", "B", "same")), (2, 1, ("C", "A", "B", "A"))], None,
     "unknown label 'C'", 2, "Overall"),
    ("videogen_rewardbench", [(0, 1, ("A", "A", "maybe", "A"))], None, "unknown label 'maybe'", 1, "MQ"),
    ("genai_bench", [(0, 1, ("leftvote",)), (1, 2, ("rightvote",)), (0, 2, ("left",))], None,
     "unknown label 'left'", 3, "vote_type"),
    ("mj_bench_video", [(0, 1, ("Video 3 better",))], None, "unknown label 'Video 3 better'", 1,
     "overall_preference"),
    ("visionreward_video", [(0, 1, ("video1",)), (0, 2, ("both",))], None, "unknown label 'both'", 2,
     "standard_answer"),
    ("videoalign", [(0, 1, ("B",)), (0, 0, ("A",))], None, "both sides name the same video", 2, "path_B"),
    ("videoalign", None, "prompt", "missing column", None, "prompt"),
    ("genai_bench", None, "vote_type", "missing column", None, "vote_type"),
    ("mj_bench_video", None, "video_1_path", "missing column", None, "video_1_path"),
])
def test_bad_rows_and_missing_columns_are_clear_errors(fmt, rows, drop, message, row, field, tmp_path, capsys):
    source = _write(tmp_path / "bad.csv", fmt, rows=rows, drop=drop)
    with pytest.raises(InputError) as info:
        parse_pairs(str(source), fmt)
    assert message in str(info.value) and info.value.row == row and info.value.field == field
    assert "bad.csv" in str(info.value) and (row is None or f"row {row}" in str(info.value))
    assert run_cli("import-bench", "--input", source, "--format", fmt, "--output_dir", tmp_path / "o") == 2
    assert message in capsys.readouterr().err
