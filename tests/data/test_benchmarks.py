"""Public pairwise benchmark formats and VideoAlign-style preference CSVs: import, then evaluate."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from solireward.data.benchmarks import parse_pairs
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


SAMPLES = Path(__file__).parent / "bench_samples"
SCORES = {0: 3.0, 1: 1.0, 2: 0.5, 3: 3.2}   # v0 > v1 > v2; v3 within 0.2 of v0; v9 does not exist


@pytest.fixture(scope="module")
def videos(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with four generated demo videos as videos/v0..v3.mp4 (the samples' relative paths)."""
    root = tmp_path_factory.mktemp("bench_videos")
    (root / "videos").mkdir()
    for i, source in enumerate(sorted((demo_dir / "videos").glob("*.mp4"))[:4]):
        (root / "videos" / f"v{i}.mp4").write_bytes(source.read_bytes())
    return root


# sample file, format, primary label, its relation per kept row, ties among the three evaluable pairs,
# further dimensions, skipped rows by label
PUBLISHED = [
    ("videoalign_train.csv", "videoalign", "VQ", [1, -1, 0, 1], 1, {"MQ", "TA"}, {}),
    ("videogen_rewardbench.csv", "videogen_rewardbench", "Overall", [1, -1, 0, 1], 1, {"VQ", "MQ", "TA"}, {}),
    ("videogen_rewardbench_all.csv", "videogen_rewardbench", "ALL", [1, -1, 0, 1], 1, {"VQ", "MQ", "TA"}, {}),
    ("genai_bench_video.csv", "genai_bench", "vote_type", [1, -1, 0, 0], 1, set(), {}),
    ("genai_bench_video.json", "genai_bench", "vote_type", [1, -1, 0, 0], 1, set(), {}),
    ("genai_bench_video.parquet", "genai_bench", "vote_type", [1, -1, 0, 0], 1, set(), {}),
    ("mj_bench_video.json", "mj_bench_video", "overall_preference", [1, -1, 0, 1], 1,
     {"Alignment", "Safety", "Fineness", "Coherence & Consistency", "Bias"}, {"Hard to judge": 1}),
    ("mj_bench_2.json", "mj_bench_2", "video0_body.chosen", [1, -1, 1, 1], 0, set(), {}),
    ("mj_bench_2_chosen_reject.json", "chosen_reject", "chosen", [1, 1, 1, 1], 0, set(), {}),
    ("visionreward_video.parquet", "visionreward_video", "standard_answer", [1, -1, 0, 1], 1, set(), {}),
]


@pytest.mark.parametrize("sample, fmt, primary, relations, ties, dimensions, skipped", PUBLISHED,
                         ids=[p[0] for p in PUBLISHED])
def test_each_published_layout_imports_and_evaluates(sample, fmt, primary, relations, ties, dimensions, skipped,
                                                     videos: Path, tmp_path: Path) -> None:
    out = tmp_path / "imported"
    assert run_cli("import-bench", "--input", SAMPLES / sample, "--format", fmt, "--video_root", videos,
                   "--output_dir", out) == 0
    pairs = json.loads((out / "pairs.json").read_text())
    assert [p["meta"]["labels"][primary] for p in pairs] == relations
    assert set(pairs[0]["meta"]["labels"]) == {primary} | dimensions
    summary = json.loads((out / "summary.json").read_text())
    assert summary["primary_label"] == primary and summary["rows_skipped"] == skipped and summary["note"]
    assert summary["pairs"] == 4 and summary["videos_missing"] == 1 and summary["pairs_with_missing_video"] == 1
    listed = sorted(Path(v["video_path"]).name for v in json.loads((out / "videos.json").read_text()))
    assert listed == ["v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4"]
    with (out / "preferences.csv").open() as f:   # the VideoAlign form, paths relative to the output folder
        first = next(csv.DictReader(f))
    assert (out / first["path_A"]).resolve() == (videos / "videos" / "v0.mp4").resolve() and first["label"] == "A"

    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps([{"video_path": str(videos / "videos" / f"v{i}.mp4"), "score": s}
                                  for i, s in SCORES.items()]))
    metrics = tmp_path / "metrics.json"
    assert run_cli("evaluate", "--scores", scores, "--pairs", out / "pairs.json", "--output", metrics) == 0
    p = json.loads(metrics.read_text())["pairs"]
    assert p["skipped_missing"] == 1 and p["evaluated"] == 3 and p["ties"] == ties and p["win_lose"] == 3 - ties
    assert p["accuracy"] == 1.0 and p["accuracy_videoalign"] == 1.0 and p["accuracy_with_ties"] == 1.0
    # VideoAlign's scan always predicts at least one tie: without a tie label that costs one of the three pairs
    assert p["accuracy_with_ties_videoalign"] == pytest.approx(1.0 if ties else 2 / 3)
    assert ("by_dimension" in p) == bool(dimensions)
    if fmt == "mj_bench_video":   # Fineness: A on row 1, 'Hard to judge' (null) on row 2, 'Same' on row 3
        assert p["by_dimension"]["Fineness"]["evaluated"] == 2 and p["by_dimension"]["Fineness"]["ties"] == 1
    if fmt == "videogen_rewardbench":   # MQ: B on d = 2 (wrong), B on d = −0.5 (right), A on d = 0.2 (right)
        assert p["by_dimension"]["MQ"]["accuracy"] == pytest.approx(2 / 3)


def test_url_video_fields_need_a_map_or_a_root(videos: Path, tmp_path: Path, capsys) -> None:
    source = tmp_path / "genai.csv"
    source.write_text("prompt,left_model,left_video,right_model,right_video,vote_type\n"
                      "p,a,https://cdn.example.org/clips/v0.mp4,b,https://cdn.example.org/clips/v1.mp4,leftvote\n"
                      "p,a,https://cdn.example.org/clips/v2.mp4,b,videos/v1.mp4,rightvote\n")
    assert run_cli("import-bench", "--input", source, "--format", "genai_bench", "--output_dir", tmp_path / "o") == 2
    err = capsys.readouterr().err
    assert "3 video field(s) are URLs" in err and "https://cdn.example.org/clips/v0.mp4" in err and "--url_map" in err
    assert "row 1, field 'left_video'" in err
    url_map = tmp_path / "downloads.csv"
    url_map.write_text("url,path\n" + "".join(f"https://cdn.example.org/clips/v{i}.mp4,{videos}/videos/v{i}.mp4\n"
                                              for i in (0, 1)))
    assert run_cli("import-bench", "--input", source, "--format", "genai_bench", "--url_map", url_map,
                   "--output_dir", tmp_path / "o") == 2   # v2's URL is not in the map
    assert "1 video field(s) are URLs" in capsys.readouterr().err
    for flags in (["--video_root", videos / "videos"],):    # URL -> <root>/<last part of the URL>
        assert run_cli("import-bench", "--input", source, "--format", "genai_bench", *flags,
                       "--output_dir", tmp_path / "o") == 0
        pairs = json.loads((tmp_path / "o" / "pairs.json").read_text())
        assert Path(pairs[0]["win"]["video_path"]) == videos / "videos" / "v0.mp4"
    url_map.write_text(url_map.read_text() + f"https://cdn.example.org/clips/v2.mp4,{videos}/videos/v2.mp4\n")
    assert run_cli("import-bench", "--input", source, "--format", "genai_bench", "--url_map", url_map,
                   "--video_root", videos, "--output_dir", tmp_path / "m") == 0
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary["videos_missing"] == 0


def test_unreadable_parquet_is_a_clear_error(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bench.parquet"
    bad.write_bytes(b"\xff\xfe not parquet")
    assert run_cli("import-bench", "--input", bad, "--format", "genai_bench", "--output_dir", tmp_path / "o") == 2
    assert "bench.parquet" in capsys.readouterr().err


def test_videoalign_votes_train_the_pairs_command(videos: Path, tmp_path: Path) -> None:
    """votes.csv is what `solireward pairs --pairwise_annotations` reads."""
    source = _write(tmp_path / "prefs.csv", "videoalign", rows=[(0, 1, ("A",)), (2, 1, ("B",)), (3, 0, ("same",))])
    out = tmp_path / "imported"
    assert run_cli("import-bench", "--input", source, "--format", "videoalign", "--video_root", videos / "videos",
                   "--output_dir", out) == 0
    with (out / "votes.csv").open() as f:
        votes = list(csv.DictReader(f))
    assert [v["choice"] for v in votes] == ["a", "b", "tie"] and votes[0]["prompt"] == "a ball"
    assert (out / votes[1]["video_a"]).resolve() == (videos / "videos" / "v2.mp4").resolve()
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
    ("videoalign", None, "prompt", "missing field", None, "prompt"),
    ("genai_bench", None, "vote_type", "missing field", None, "vote_type"),
    ("mj_bench_video", None, "video_1_path", "missing field", None, "video_1_path"),
])
def test_bad_rows_and_missing_columns_are_clear_errors(fmt, rows, drop, message, row, field, tmp_path, capsys):
    source = _write(tmp_path / "bad.csv", fmt, rows=rows, drop=drop)
    with pytest.raises(InputError) as info:
        parse_pairs(str(source), fmt)
    assert message in str(info.value) and info.value.row == row and info.value.field == field
    assert "bad.csv" in str(info.value) and (row is None or f"row {row}" in str(info.value))
    assert run_cli("import-bench", "--input", source, "--format", fmt, "--output_dir", tmp_path / "o") == 2
    assert message in capsys.readouterr().err
