"""Krippendorff's alpha and raw agreement against hand-computed examples (API and `labels` CLI)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from solireward.data.agreement import (coincidence_matrix, krippendorff_alpha_nominal, pairwise_agreement,
                                       rating_counts)
from tests.conftest import run_cli

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the nominal example with
# missing values: 4 observers x 12 units, values 1..5 (None = not rated).
TEXTBOOK = [
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def _textbook_counts() -> np.ndarray:
    units, values = [], []
    for observer in TEXTBOOK:
        for unit, value in enumerate(observer):
            if value is not None:
                units.append(unit)
                values.append(value)
    counts, categories = rating_counts(units, values)
    assert categories == [1, 2, 3, 4, 5]
    return counts


def test_textbook_nominal_alpha_by_hand() -> None:
    # Unit 12 has one value and is not pairable; the other 11 units hold n = 40 pairable values.
    # Coincidences o_cc (diagonal) = 7, 10, 8, 4, 3 -> sum 32; so 8 off-diagonal coincidences.
    # Marginals n_c = 9, 13, 10, 5, 3; sum n_c^2 = 81 + 169 + 100 + 25 + 9 = 384.
    # alpha = 1 - (n - 1) * 8 / (n^2 - sum n_c^2) = 1 - 39 * 8 / (1600 - 384) = 1 - 312 / 1216 = 0.74342...
    counts = _textbook_counts()
    o = coincidence_matrix(counts)
    assert np.allclose(np.diag(o), [7, 10, 8, 4, 3])
    assert np.allclose(o.sum(axis=1), [9, 13, 10, 5, 3])
    assert np.allclose(o, o.T)
    assert krippendorff_alpha_nominal(counts) == pytest.approx(1 - 312 / 1216, abs=1e-12)
    assert round(krippendorff_alpha_nominal(counts), 3) == 0.743      # the value in the paper
    # Pairwise agreement: agreeing ordered pairs 6+6+12+12+12+0+12+6+12+6+2 = 86 of 6+12*8+6+2 = 110.
    assert pairwise_agreement(counts) == pytest.approx(86 / 110)


def test_alpha_edge_cases() -> None:
    perfect = np.array([[3, 0], [0, 2], [1, 1]])[:2]          # full agreement, both categories used
    assert krippendorff_alpha_nominal(perfect) == pytest.approx(1.0)
    assert math.isnan(krippendorff_alpha_nominal(np.array([[3, 0], [2, 0]])))   # one category only
    assert math.isnan(krippendorff_alpha_nominal(np.array([[1, 0], [0, 1]])))   # nothing pairable
    assert math.isnan(pairwise_agreement(np.array([[1, 0]])))
    # Systematic disagreement is worse than chance.
    assert krippendorff_alpha_nominal(np.array([[1, 1], [1, 1], [1, 1]])) < 0


def test_binary_alpha_through_labels_cli(tmp_path) -> None:
    # video: votes (annotator A, B, C) -> counts (fail, pass)
    # v1: P P P -> (0, 3); v2: F F F -> (3, 0); v3: P P F -> (1, 2); v4: P F -> (1, 1) split;
    # v5: P (one rating, not pairable).
    # o_PP = 3*2/2 + 2*1/2 = 4;  o_FF = 3*2/2 = 3;  o_PF = o_FP = 2*1/2 (v3) + 1*1/1 (v4) = 2.
    # n_P = 6, n_F = 5, n = 11;  alpha = 1 - (n-1) * (o_PF + o_FP) / (2 n_P n_F) = 1 - 10*4/60 = 1/3.
    # Pairwise agreement: (6 + 6 + 2 + 0) / (6 + 6 + 6 + 2) = 14/20 = 0.7.
    votes = {"v1": "PPP", "v2": "FFF", "v3": "PPF", "v4": "PF", "v5": "P"}
    lines = ["video_path,prompt,dimension,label,annotator"]
    for video, marks in votes.items():
        (tmp_path / f"{video}.mp4").write_bytes(b"\0")
        for annotator, mark in zip("ABC", marks):
            lines.append(f"{video}.mp4,prompt of {video},physics,{'pass' if mark == 'P' else 'fail'},{annotator}")
    (tmp_path / "ann.csv").write_text("\n".join(lines) + "\n")
    assert run_cli("labels", "--input", tmp_path / "ann.csv", "--output", tmp_path / "t.jsonl",
                   "--report_dir", tmp_path / "rep") == 0
    report = json.loads((tmp_path / "rep" / "label_report.json").read_text())
    physics = report["dimensions"]["physics"]
    assert physics["krippendorff_alpha"] == pytest.approx(1 / 3)
    assert physics["pairwise_agreement"] == pytest.approx(0.7)
    assert (physics["videos"], physics["ratings"], physics["split"], physics["ok"]) == (5, 12, 1, 4)
    assert physics["pass_rate"] == pytest.approx(3 / 4)          # v1, v3, v5 Pass; v2 Fail; v4 split
    annotators = report["annotators"]
    # A: P F P P P -> pass 4/5, agrees with every decided majority (v1, v2, v3, v5).
    assert annotators["A"] == {"n_labels": 5, "pass_rate": 0.8, "agreement_with_majority": 1.0, "n_compared": 4}
    # C: P F F -> pass 1/3; disagrees on v3 only.
    assert annotators["C"]["pass_rate"] == pytest.approx(1 / 3)
    assert annotators["C"]["agreement_with_majority"] == pytest.approx(2 / 3)
    markdown = (tmp_path / "rep" / "label_report.md").read_text()
    assert "| physics | 5 | 12 | 0.333 | 0.700 |" in markdown
