"""`solireward audit-labels`: which cheap video statistics predict the annotators' Pass within a prompt.

Before any training, a shortcut in the labels shows as a video statistic that separates Pass from Fail
videos *of the same prompt* (across prompts, content differs for good reasons). For every dimension,
every annotator and the majority label (``overall``; ties dropped, as `solireward labels` aggregates),
and every statistic of :mod:`solireward.data.video_stats`, the audit compares the Pass and the Fail
videos of each prompt:

* **Test**: a stratified Mann-Whitney test (a rank-sum test with the prompts as strata, van Elteren's
  test with equal weight per pair). In prompt s with n1 Pass and n0 Fail videos, U_s counts the (Pass,
  Fail) pairs in which the Pass video has the larger value (ties 1/2); under "the statistic says nothing
  about the label within a prompt" U_s has mean n1 n0 / 2 and the tie-corrected variance
  n1 n0 / 12 ((n + 1) - Σ(t³ - t) / (n (n - 1))). z = Σ(U_s - n1 n0 / 2) / √(Σ Var U_s), two-sided
  normal p. A prompt (a stratum) whose videos are all Pass or all Fail carries no information and is left out.
* **Effect sizes**: the within-prompt AUC, ΣU_s / Σ n1 n0 (the probability that a Pass video shows the
  larger value than a Fail video of the same prompt; 0.5 = no association), and the difference,
  Pass minus Fail mean of the statistic in its own unit, averaged over prompts with weight n1 n0 / n.
  Their intervals are percentile bootstrap intervals that resample prompts (the unit that is independent).
* **Family-wise error rate**: Holm's step-down over every test that could be computed (statistics x
  annotators and overall x dimensions); a test is *flagged* when its Holm-adjusted p is at most ``alpha``,
  so the chance of any false flag is at most ``alpha`` when no statistic predicts any label.

With ``--reference`` (trusted labels of some videos in the same format, e.g. an expert's; their majority
per video and dimension), the strata are (prompt, reference label) and only referenced videos count: the
audit then asks which statistic predicts where the annotators depart from the reference, which separates a
shortcut from a statistic that genuinely goes with quality (a wrong motion moves differently; without a
reference such content statistics are flagged too, rightly: they do predict the label).

A statistic that never varies within a prompt (the same duration everywhere), or that leaves fewer than
``min_prompts`` prompts with both classes, is listed as not tested. A video that cannot be read is reported
and its labels are left out; bad annotation rows are rejected and counted as `solireward labels` does.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from tqdm import tqdm

from solireward.config import arg
from solireward.data.annotations import LabelImportConfig, aggregate, validate
from solireward.data.annotation_files import read_annotation_files
from solireward.data.video_stats import STATISTICS, video_statistics
from solireward.errors import ConfigError, InputError, VideoReadError
from solireward.io import markdown_cell, write_json, write_text
from solireward.table import markdown_table

logger = logging.getLogger(__name__)

OVERALL = "overall"  # the annotator name of the majority label


@dataclasses.dataclass
class LabelAuditConfig:
    """Options of `solireward audit-labels`."""

    input: list[str] = arg("annotation files (.csv or .jsonl) as `solireward labels` reads them: columns "
                           "video_path, prompt, dimension, label, annotator")
    output: str = arg("report to write (.json); the same report as Markdown goes beside it (.md)")
    video_root: str | None = arg("folder that relative video_path values are resolved against "
                                 "(default: each annotation file's own folder)", None)
    reference: list[str] | None = arg("trusted labels of some of the videos (same format, e.g. an expert's): "
                                      "compare within prompt and reference label, on those videos only", None)
    alpha: float = arg("family-wise error rate of the flags (Holm over statistics x annotators x dimensions)",
                       0.05)
    confidence: float = arg("confidence of the effect sizes' bootstrap intervals", 0.95)
    bootstrap: int = arg("bootstrap resamples of prompts for the intervals", 2000)
    min_prompts: int = arg("fewest prompts with both a Pass and a Fail video a test needs", 5)
    max_frames: int = arg("most frames read per video (evenly spaced; all of a shorter video)", 64)
    seed: int = arg("random seed of the bootstrap", 0)
    progress: bool = arg("show a progress bar even when stderr is not a terminal", False)

    def __post_init__(self) -> None:
        checks = [("alpha", 0 < self.alpha < 1, "between 0 and 1"),
                  ("confidence", 0 < self.confidence < 1, "between 0 and 1"),
                  ("bootstrap", self.bootstrap >= 100, "at least 100"),
                  ("min_prompts", self.min_prompts >= 1, "at least 1"),
                  ("max_frames", self.max_frames >= 2, "at least 2"),
                  ("output", Path(self.output).suffix.lower() == ".json", "a .json file")]
        for name, ok, expected in checks:
            if not ok:
                raise ConfigError(f"expected {expected}, got {getattr(self, name)!r}", field=name)


def within_prompt_test(values: np.ndarray, labels: np.ndarray, prompts: np.ndarray, rng: np.random.Generator,
                       bootstrap: int = 2000, confidence: float = 0.95, min_prompts: int = 5
                       ) -> dict[str, Any]:
    """The stratified Mann-Whitney test of one statistic against 1/0 labels, prompts as strata (module
    docstring): n_prompts, auc, difference, their intervals, z and p; or a ``not_tested`` reason."""
    strata, y = np.unique(prompts, return_inverse=True)[1].ravel(), np.asarray(labels, dtype=float)
    x = np.asarray(values, dtype=float)
    order = np.lexsort((x, strata))
    s_sorted, x_sorted = strata[order], x[order]
    k = int(strata.max()) + 1 if len(strata) else 0
    n = np.bincount(strata, minlength=k).astype(float)
    start = np.concatenate([[0], np.cumsum(n)[:-1]])
    # runs of equal (prompt, value) in sorted order: their midrank within the prompt, and their size
    new_run = np.r_[True, (s_sorted[1:] != s_sorted[:-1]) | (x_sorted[1:] != x_sorted[:-1])]
    run = np.cumsum(new_run) - 1
    run_start = np.flatnonzero(new_run)
    run_size = np.diff(np.r_[run_start, len(x)]).astype(float)
    ranks = np.empty(len(x))
    ranks[order] = run_start[run] + (run_size[run] - 1) / 2 - start[s_sorted] + 1
    n1 = np.bincount(strata, weights=y, minlength=k)
    n0 = n - n1
    rank_sum = np.bincount(strata, weights=ranks * y, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        pass_mean = np.bincount(strata, weights=x * y, minlength=k) / n1
        fail_mean = np.bincount(strata, weights=x * (1 - y), minlength=k) / n0
    tie_term = np.bincount(s_sorted[run_start], weights=run_size ** 3 - run_size, minlength=k)
    both = (n1 > 0) & (n0 > 0)
    n, n1, n0, tie_term = n[both], n1[both], n0[both], tie_term[both]
    u = rank_sum[both] - n1 * (n1 + 1) / 2
    pairs = n1 * n0
    variance = pairs / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    result: dict[str, Any] = {"n_strata": int(both.sum()), "n_pairs": int(pairs.sum())}
    if both.sum() < min_prompts:
        return {**result, "not_tested": f"fewer than {min_prompts} prompts with both a Pass and a Fail video"}
    if variance.sum() <= 0:
        return {**result, "not_tested": "the statistic does not vary within any prompt"}
    z = float((u - pairs / 2).sum() / np.sqrt(variance.sum()))
    weight, difference = pairs / n, pass_mean[both] - fail_mean[both]
    counts = rng.multinomial(len(u), np.full(len(u), 1 / len(u)), size=bootstrap).astype(float)
    tail = 50 * (1 - confidence)
    auc_boot = (counts @ u) / (counts @ pairs)
    diff_boot = (counts @ (weight * difference)) / (counts @ weight)
    return {**result, "auc": float(u.sum() / pairs.sum()),
            "auc_interval": [float(v) for v in np.percentile(auc_boot, [tail, 100 - tail])],
            "difference": float((weight * difference).sum() / weight.sum()),
            "difference_interval": [float(v) for v in np.percentile(diff_boot, [tail, 100 - tail])],
            "z": z, "p": float(2 * stats.norm.sf(abs(z)))}


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error rate) of `p`."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


def audit(statistics: pd.DataFrame, ratings: pd.DataFrame, alpha: float = 0.05, confidence: float = 0.95,
          bootstrap: int = 2000, min_prompts: int = 5, seed: int = 0, reference: pd.DataFrame | None = None
          ) -> tuple[list[dict], list[dict]]:
    """(tests, not tested) of every dimension x annotator x statistic, with Holm-adjusted p and flags.

    `statistics`: one row per video, column ``video_path`` and any of :data:`STATISTICS`; `ratings`: one
    row per label with ``video_path``, ``prompt``, ``dimension``, ``annotator`` and ``label`` (1/0);
    `reference`: ``video_path``, ``dimension`` and ``label`` of trusted labels (strata: prompt x that label).
    """
    rng = np.random.default_rng(seed)
    names = [s for s in STATISTICS if s in statistics.columns]
    merged = ratings.merge(statistics, on="video_path", how="inner")
    if reference is not None:
        merged = merged.merge(reference[["video_path", "dimension", "label"]].rename(columns={"label": "ref"}),
                              on=["video_path", "dimension"], how="inner")
        merged["prompt"] = merged["prompt"] + np.where(merged["ref"] == 1, "\x1fpass", "\x1ffail")
    merged["stratum"] = pd.factorize(merged["prompt"])[0]
    tests, skipped = [], []
    for (dimension, annotator), group in merged.groupby(["dimension", "annotator"], sort=True):
        for name in names:
            result = within_prompt_test(group[name].to_numpy(float), group["label"].to_numpy(),
                                        group["stratum"].to_numpy(), rng, bootstrap, confidence, min_prompts)
            row = {"dimension": str(dimension), "annotator": str(annotator), "statistic": name, **result}
            (skipped if "not_tested" in result else tests).append(row)
    adjusted = holm(np.array([t["p"] for t in tests])) if tests else np.zeros(0)
    for test, p_holm in zip(tests, adjusted):
        test.update(p_holm=float(p_holm), flagged=bool(p_holm <= alpha))
    tests.sort(key=lambda t: (t["p_holm"], t["p"], t["dimension"], t["annotator"], t["statistic"]))
    return tests, skipped


def _rating_frame(files: list[str], config: LabelAuditConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Every valid annotator label of `files` and the majority label (annotator ``overall``), and the import
    counts."""
    frame, files, _ = read_annotation_files(files, config.progress)
    import_config = LabelImportConfig(input=files, output="unused.jsonl", video_root=config.video_root,
                                      on_error="skip")  # validation only: nothing is written
    clean, rejections, _ = validate(frame, files, import_config)
    if clean.rows.empty:
        raise InputError("no valid annotation rows remain", file=", ".join(files))
    rows, names = clean.rows, clean.names
    ratings = pd.DataFrame({column: names[key][rows[key].to_numpy()] for column, key in (
        ("video_path", "video"), ("prompt", "prompt"), ("dimension", "dimension"), ("annotator", "annotator"))})
    ratings["label"] = rows["label"].to_numpy()
    if OVERALL in set(ratings["annotator"]):
        raise InputError(f"annotator name '{OVERALL}' is reserved for the majority label", field="annotator",
                         file=", ".join(files))
    table, _ = aggregate(clean, 0.5)
    majority = table[table["label"].notna()][["video_path", "prompt", "dimension", "label"]].assign(
        annotator=OVERALL)
    majority["label"] = majority["label"].astype(int)
    kinds = pd.Series(rejections.kind[rejections.rejected]).value_counts().sort_index()
    counts = {"files": files, "rows_read": int(len(frame)), "rows_rejected": int(rejections.rejected.sum()),
              "rejected_by_kind": {str(k): int(v) for k, v in kinds.items()}}
    return pd.concat([ratings, majority], ignore_index=True), counts


def run_audit(config: LabelAuditConfig) -> dict[str, Any]:
    """Read the labels and videos of `config`, audit them and write the report (.json and .md); return it."""
    ratings, counts = _rating_frame(config.input, config)
    reference, reference_counts = (None, None) if not config.reference else _rating_frame(config.reference, config)
    if reference is not None:
        reference = reference[reference["annotator"] == OVERALL]
    show = config.progress or sys.stderr.isatty()
    rows, unreadable = [], []
    for path in tqdm(sorted(ratings["video_path"].unique()), desc="video statistics", unit="video",
                     disable=not show):
        try:
            rows.append({"video_path": path, **video_statistics(path, config.max_frames)})
        except VideoReadError as exc:
            logger.warning("skipped %s", exc)
            unreadable.append({"video_path": path, "reason": exc.reason})
    if not rows:
        raise InputError("no video could be read", file=", ".join(counts["files"]))
    statistics = pd.DataFrame(rows)
    tests, skipped = audit(statistics, ratings, config.alpha, config.confidence, config.bootstrap,
                           config.min_prompts, config.seed, reference)
    report = {"summary": {**counts, "videos": len(rows), "videos_unreadable": len(unreadable),
                          "annotators": sorted(set(ratings["annotator"]) - {OVERALL}),
                          "dimensions": sorted(set(ratings["dimension"])), "statistics": list(STATISTICS),
                          "family_size": len(tests), "alpha": config.alpha, "confidence": config.confidence,
                          "flagged": sum(t["flagged"] for t in tests),
                          "reference": reference_counts and {**reference_counts,
                                                             "videos": int(reference["video_path"].nunique())}},
              "flags": [t for t in tests if t["flagged"]], "tests": tests, "not_tested": skipped,
              "unreadable_videos": unreadable, "video_statistics": statistics.to_dict(orient="records")}
    write_json(config.output, report)
    write_text(Path(config.output).with_suffix(".md"), audit_markdown(report))
    logger.info("audited %d tests of %d videos: %d flagged at family-wise %g; report %s", len(tests), len(rows),
                report["summary"]["flagged"], config.alpha, config.output)
    return report


def _test_row(t: dict[str, Any]) -> list[str]:
    fmt = lambda v: markdown_cell(v, digits=3)  # noqa: E731
    return [t["dimension"], t["annotator"], t["statistic"], str(t["n_strata"]),
            f"{fmt(t['auc'])} [{fmt(t['auc_interval'][0])}, {fmt(t['auc_interval'][1])}]",
            f"{markdown_cell(t['difference'], 3, signed=True)} [{fmt(t['difference_interval'][0])}, "
            f"{fmt(t['difference_interval'][1])}]", f"{t['p']:.2g}", f"{t['p_holm']:.2g}", "yes" if t["flagged"] else ""]


def audit_markdown(report: dict[str, Any]) -> str:
    """The audit report as Markdown: the flags, then every overall test, then what was not tested."""
    s = report["summary"]
    header = ["dimension", "annotator", "statistic", "strata", "AUC within prompt [CI]",
              "Pass − Fail [CI]", "p", "p (Holm)", "flagged"]
    level = f"{100 * s['confidence']:g} %"
    lines = ["# Label audit", "",
             f"- Files: {', '.join(s['files'])}; rows read {s['rows_read']}, rejected {s['rows_rejected']}"
             + (f" ({', '.join(f'{k} {v}' for k, v in s['rejected_by_kind'].items())})" if s["rejected_by_kind"] else ""),
             f"- Videos: {s['videos']} read, {s['videos_unreadable']} unreadable (left out)",
             f"- Reference labels: {', '.join(s['reference']['files'])} ({s['reference']['videos']} videos); "
             "compared within prompt and reference label" if s["reference"] else "- No reference labels",
             f"- {s['family_size']} tests (statistics x annotators and overall x dimensions); Holm's family-wise "
             f"error rate {s['alpha']:g}; {s['flagged']} flagged", "",
             "Within each prompt, Pass videos are compared with Fail videos (stratified Mann-Whitney test). "
             "AUC: the chance that a Pass video has the larger value than a Fail video of the same prompt (0.5: "
             f"none); Pass − Fail: the mean difference in the statistic's unit; [CI]: {level} bootstrap "
             "intervals over prompts. A flagged statistic predicts the label within prompts: a shortcut a "
             "reward model may learn, unless the statistic is what the dimension is about.", "",
             "## Flagged", ""]
    lines += [markdown_table(header, [_test_row(t) for t in report["flags"]], 3) if report["flags"]
              else "Nothing is flagged.", "", "## Majority label (overall), every statistic", ""]
    overall = [t for t in report["tests"] if t["annotator"] == OVERALL]
    overall.sort(key=lambda t: (t["dimension"], t["statistic"]))
    lines += [markdown_table(header, [_test_row(t) for t in overall], 3) if overall else "No test.", ""]
    if report["not_tested"]:
        reasons = pd.DataFrame(report["not_tested"]).groupby(["statistic", "not_tested"]).size()
        lines += ["## Not tested", "", markdown_table(["statistic", "why", "tests"],
                                                      [[k[0], k[1], str(v)] for k, v in reasons.items()], 2), ""]
    if report["unreadable_videos"]:
        lines += ["## Unreadable videos (left out)", "",
                  markdown_table(["video", "reason"], [[u["video_path"], u["reason"]]
                                                       for u in report["unreadable_videos"]], 2), ""]
    return "\n".join(lines)
