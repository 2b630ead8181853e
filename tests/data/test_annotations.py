"""`solireward labels`: import, aggregation, min_agreement, reports and one named error per bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import run_cli

HEADER = ["video_path", "prompt", "dimension", "label", "annotator"]


def _videos(folder: Path, *names: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).write_bytes(b"not really a video")


def _write_csv(path: Path, rows: list[list[str]], header: list[str] = HEADER) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _read_table(path: Path) -> dict[tuple[str, str], dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {(Path(r["video_path"]).name, r["dimension"]): r for r in rows}


def test_import_csv_and_jsonl_aggregates_by_majority(tmp_path: Path) -> None:
    _videos(tmp_path / "clips", "a.mp4", "b.mp4", "c.mp4")
    _write_csv(tmp_path / "ann.csv", [
        ["clips/a.mp4", "a red ball falls", "physics", "Pass", "ann1"],
        ["clips/a.mp4", "a red ball falls", "physics", "1", "ann2"],
        ["clips/a.mp4", "a red ball falls", "physics", "FALSE", "ann3"],
        ["clips/b.mp4", "a cube slides", "physics", "f", "ann1"],
        ["clips/b.mp4", "a cube slides", "physics", "true", "ann2"],           # 1-1: split
        ["clips/c.mp4", "a cube slides", "physics", "no", "ann1"],
        ["clips/c.mp4", "a cube slides", "physics", "no", "ann1"],             # exact duplicate
    ])
    records = [{"video_path": "clips/a.mp4", "prompt": "a red ball falls", "dimension": "deformity",
                "label": lab, "annotator": who} for lab, who in [(True, "ann1"), (1, "ann2"), ("p", "ann3")]]
    (tmp_path / "more.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    out = tmp_path / "out" / "labels.jsonl"
    assert run_cli("labels", "--input", tmp_path / "ann.csv", tmp_path / "more.jsonl", "--output", out,
                   "--report_dir", tmp_path / "report") == 0
    table = _read_table(out)
    assert len(table) == 4                                    # a/physics, a/deformity, b/physics, c/physics
    assert list(json.loads(out.read_text().splitlines()[0])) == [
        "video_path", "prompt", "dimension", "label", "n_pass", "n_fail", "n_annotators", "agreement", "status"]
    a = table[("a.mp4", "physics")]
    assert a["video_path"] == str((tmp_path / "clips" / "a.mp4").resolve())
    assert (a["label"], a["n_pass"], a["n_fail"], a["n_annotators"], a["status"]) == (1, 2, 1, 3, "ok")
    assert a["agreement"] == pytest.approx(2 / 3)
    assert table[("a.mp4", "deformity")]["label"] == 1
    b = table[("b.mp4", "physics")]
    assert (b["label"], b["status"], b["agreement"]) == (None, "split", 0.5)
    c = table[("c.mp4", "physics")]
    assert (c["label"], c["n_annotators"]) == (0, 1)        # the exact duplicate counted once
    report = json.loads((tmp_path / "report" / "label_report.json").read_text())
    summary = report["summary"]
    assert (summary["rows_read"], summary["rows_rejected"], summary["duplicates_removed"]) == (10, 0, 1)
    assert (summary["videos"], summary["dimensions"], summary["split"]) == (3, ["deformity", "physics"], 1)
    assert report["dimensions"]["physics"]["split"] == 1
    assert set(report["annotators"]) == {"ann1", "ann2", "ann3"}
    assert "| physics |" in (tmp_path / "report" / "label_report.md").read_text()


def test_min_agreement_parquet_and_video_root(tmp_path: Path) -> None:
    _videos(tmp_path / "root", "x.mp4", "y.mp4")
    rows = [["x.mp4", "p1", "text_alignment", lab, f"a{i}"] for i, lab in enumerate(["pass", "pass", "fail"])]
    rows += [["y.mp4", "p2", "text_alignment", lab, f"a{i}"] for i, lab in enumerate(["pass"] * 4 + ["fail"])]
    _write_csv(tmp_path / "ann.csv", rows)
    out = tmp_path / "labels.parquet"
    assert run_cli("labels", "--input", tmp_path / "ann.csv", "--output", out, "--video_root", tmp_path / "root",
                   "--min_agreement", 0.75) == 0
    table = pd.read_parquet(out).set_index("prompt")
    assert table.loc["p1", "status"] == "low_agreement" and pd.isna(table.loc["p1", "label"])   # 2/3 < 0.75
    assert table.loc["p2", "status"] == "ok" and table.loc["p2", "label"] == 1                  # 4/5 >= 0.75
    assert table.loc["p1", "video_path"] == str((tmp_path / "root" / "x.mp4").resolve())
    assert (tmp_path / "label_report.json").is_file()         # report defaults to the table's folder


GOOD = ["v/ok.mp4", "a prompt", "physics", "pass", "ann1"]


@pytest.mark.parametrize("rows, line, field, words", [
    ([GOOD, ["v/ok.mp4", "a prompt", "physics", "maybe", "ann2"]], 3, "label", "unknown label 'maybe'"),
    ([GOOD, GOOD, ["v/ok.mp4", "", "physics", "pass", "ann2"]], 4, "prompt", "empty or missing prompt"),
    ([["", "a prompt", "physics", "pass", "ann2"], GOOD], 2, "video_path", "empty or missing video_path"),
    ([GOOD, ["v/gone.mp4", "a prompt", "physics", "pass", "ann2"]], 3, "video_path", "does not exist"),
    ([GOOD, ["v/ok.mp4", "a prompt", "physics", "fail", "ann1"]], 2, "label", "conflicting duplicate"),
    ([GOOD, ["v/ok.mp4", "another prompt", "physics", "pass", "ann2"],
      ["v/ok.mp4", "a prompt", "physics", "pass", "ann3"]], 3, "prompt", "inconsistent prompt"),
])
def test_bad_rows_fail_naming_file_line_and_field(tmp_path: Path, capsys, rows, line, field, words) -> None:
    _videos(tmp_path / "v", "ok.mp4")
    source = _write_csv(tmp_path / "bad.csv", rows)
    out = tmp_path / "out" / "labels.jsonl"
    assert run_cli("labels", "--input", source, "--output", out) == 2
    err = capsys.readouterr().err
    assert f"{source}, row {line}, field '{field}'" in err
    assert f"line {line} (CSV header = line 1)" in err and words in err
    assert not (tmp_path / "out").exists()                   # nothing written


def test_missing_column_and_bad_json_line(tmp_path: Path, capsys) -> None:
    _videos(tmp_path / "v", "ok.mp4")
    source = _write_csv(tmp_path / "nolabel.csv", [GOOD[:3] + GOOD[4:]],
                        header=["video_path", "prompt", "dimension", "annotator"])
    assert run_cli("labels", "--input", source, "--output", tmp_path / "t.jsonl") == 2
    err = capsys.readouterr().err
    assert f"{source}, field 'label': missing column" in err
    jsonl = tmp_path / "bad.jsonl"
    jsonl.write_text(json.dumps(dict(zip(HEADER, GOOD))) + "\n\n{not json\n")
    assert run_cli("labels", "--input", jsonl, "--output", tmp_path / "t.jsonl") == 2
    assert f"{jsonl}, row 3: line 3: not valid JSON" in capsys.readouterr().err
    # Uniformly typed JSONL takes the columnar reader; line numbers still count blank lines.
    good = dict(zip(HEADER, GOOD))
    rows = [good, {**good, "annotator": "ann2"}, {**good, "prompt": "", "annotator": "ann3"}]
    columnar = tmp_path / "columnar.jsonl"
    columnar.write_text(json.dumps(rows[0]) + "\n  \n" + json.dumps(rows[1]) + "\n" + json.dumps(rows[2]) + "\n")
    assert run_cli("labels", "--input", columnar, "--output", tmp_path / "t.jsonl") == 2
    assert f"{columnar}, row 4, field 'prompt': line 4: empty or missing prompt" in capsys.readouterr().err
    assert not (tmp_path / "t.jsonl").exists()


def test_skip_writes_rejects_and_keeps_good_rows(tmp_path: Path) -> None:
    _videos(tmp_path / "v", "a.mp4", "b.mp4")
    source = _write_csv(tmp_path / "ann.csv", [
        ["v/a.mp4", "p", "physics", "pass", "ann1"],            # line 2 kept
        ["v/a.mp4", "p", "physics", "???", "ann2"],             # line 3 unknown label
        ["v/missing.mp4", "p", "physics", "pass", "ann1"],      # line 4 missing video
        ["v/b.mp4", "q", "physics", "fail", "ann1"],            # line 5 conflicting with line 6
        ["v/b.mp4", "q", "physics", "pass", "ann1"],            # line 6
        ["v/b.mp4", "q", "physics", "fail", "ann2"],            # line 7 kept
    ])
    rejects = tmp_path / "rejects.csv"
    out = tmp_path / "labels.jsonl"
    assert run_cli("labels", "--input", source, "--output", out, "--on_error", "skip", "--rejects", rejects) == 0
    rejected = pd.read_csv(rejects, dtype=str, keep_default_na=False)
    assert list(rejected.columns) == HEADER + ["source_file", "row", "reason"]
    assert rejected["row"].tolist() == ["3", "4", "5", "6"]
    assert rejected["label"].tolist() == ["???", "pass", "fail", "pass"]     # original fields kept
    assert rejected["video_path"].tolist()[1] == "v/missing.mp4"
    assert set(rejected["source_file"]) == {str(source)}
    assert "unknown label '???'" in rejected["reason"][0]
    assert "does not exist" in rejected["reason"][1]
    assert "conflicting duplicate" in rejected["reason"][2] and "line 6" in rejected["reason"][2]
    table = _read_table(out)
    assert {k: (r["label"], r["n_annotators"]) for k, r in table.items()} == {
        ("a.mp4", "physics"): (1, 1), ("b.mp4", "physics"): (0, 1)}
    summary = json.loads((tmp_path / "label_report.json").read_text())["summary"]
    assert (summary["rows_read"], summary["rows_rejected"], summary["videos"]) == (6, 4, 2)
    assert summary["rejected_by_kind"] == {"conflicting_duplicate": 2, "missing_video": 1, "unknown_label": 1}


def test_check_videos_off_accepts_missing_files(tmp_path: Path) -> None:
    source = _write_csv(tmp_path / "ann.csv", [["/nowhere/x.mp4", "p", "physics", "pass", "a"]])
    assert run_cli("labels", "--input", source, "--output", tmp_path / "t.jsonl", "--check_videos", "false") == 0
    assert _read_table(tmp_path / "t.jsonl")[("x.mp4", "physics")]["video_path"] == "/nowhere/x.mp4"
